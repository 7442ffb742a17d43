//! Organizations the caller belongs to.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use utoipa::ToSchema;

use super::views::orgs::{OrgDetail, RoleDefaults, Roles};
use super::views::{self, OrgOut, OrgWithRole};
use super::{created, items, ok};
use crate::domain::Role;
use crate::error::Result;
use crate::http::extract::{ApiJson, AuthKind, CurrentUser};
use crate::http::state::AppState;
use crate::services::orgs::{self, CreateOrg};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs", get(list).post(create))
        .route(
            "/api/v1/orgs/{org}",
            get(show).patch(update).delete(delete_org),
        )
        .route("/api/v1/roles", get(roles))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs",
    tag = "organizations",
    summary = "Organizations the caller belongs to, with their role",
    responses(
        (status = 200, description = "Success", body = ListPage<OrgWithRole>),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    let mut all = orgs::list_mine(&s.svc, user.user.id).await?;
    if let AuthKind::Token(t) = &user.kind {
        all.retain(|m| m.organization.id == t.organization_id);
    }
    Ok(items(&views::all::<_, OrgWithRole>(&all), None))
}

#[derive(Deserialize, ToSchema)]
struct CreateBody {
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    /// 3-40 of a-z, 0-9 and single hyphens; some words are reserved (409 slug_taken when taken); absent: derived from the name
    #[schema(min_length = 3, max_length = 40, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    #[serde(default)]
    slug: Option<String>,
    /// free (default); other plans only for instance administrators (403 plan_requires_admin)
    #[serde(default)]
    #[schema(schema_with = super::openapi::plan_or_null)]
    plan: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs",
    tag = "organizations",
    summary = "Create an organization; the caller becomes owner (session only)",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Success", body = OrgWithRole),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 500, response = InternalError),
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn create(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response> {
    user.require_session()?;
    let org = orgs::create(
        &s.svc,
        &user.actor(),
        user.user.is_superuser,
        CreateOrg {
            name: b.name,
            slug: b.slug,
            plan: b.plan,
        },
    )
    .await?;
    Ok(created(&OrgWithRole {
        organization: OrgOut::from(&org),
        role: Role::Owner,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}",
    tag = "organizations",
    summary = "An organization the caller belongs to",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = OrgDetail),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&OrgDetail {
        organization: OrgOut::from(ctx.org()),
        role: ctx.role(),
        permissions: ctx.permissions().iter().collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    #[serde(default)]
    name: Option<String>,
    #[schema(min_length = 3, max_length = 40, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::org_settings_patch)]
    settings: Option<serde_json::Value>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}",
    tag = "organizations",
    summary = "Update name, slug or settings (org.update)",
    params(OrgPath),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Success", body = OrgWithRole),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn update(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<UpdateBody>,
) -> Result<Response> {
    let org = orgs::update(
        &s.svc,
        &ctx,
        &user.actor(),
        orgs::UpdateOrg {
            name: b.name,
            slug: b.slug,
            settings: b.settings,
        },
    )
    .await?;
    Ok(ok(&OrgWithRole {
        organization: OrgOut::from(&org),
        role: ctx.role(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}",
    tag = "organizations",
    summary = "Delete the organization and all its data (owners; not personal workspaces)",
    params(OrgPath),
    responses(
        (status = 204, description = "Deleted with all its data"),
        (status = 409, response = Conflict),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn delete_org(State(s): State<AppState>, OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    orgs::delete(&s.svc, &ctx, &user.actor()).await?;
    Ok(super::no_content())
}

/// The six roles and their default permissions (the table every check starts from).
#[utoipa::path(
    get,
    path = "/api/v1/roles",
    tag = "organizations",
    summary = "The roles and their default permissions",
    responses(
        (status = 200, description = "Success", body = Roles),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn roles(_user: CurrentUser) -> Response {
    let items = Role::ALL
        .iter()
        .map(|&role| RoleDefaults {
            role,
            permissions: role.default_permissions(),
        })
        .collect();
    ok(&Roles {
        items,
        permissions: crate::domain::PERMISSIONS,
    })
}
