//! Organizations the caller belongs to.
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

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

async fn list(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    let mut all = orgs::list_mine(&s.svc, user.user.id).await?;
    if let AuthKind::Token(t) = &user.kind {
        all.retain(|m| m.organization.id == t.organization_id);
    }
    Ok(items(&views::all::<_, OrgWithRole>(&all), None))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    plan: Option<String>,
}

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
    let mut body = json!(OrgOut::from(&org));
    body["role"] = json!(Role::Owner);
    Ok(created(body))
}

async fn show(OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    let mut body = json!(OrgOut::from(ctx.org()));
    body["role"] = json!(ctx.role());
    body["permissions"] = json!(ctx.permissions().iter().collect::<Vec<_>>());
    Ok(ok(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
}

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
    let mut body = json!(OrgOut::from(&org));
    body["role"] = json!(ctx.role());
    Ok(ok(body))
}

async fn delete_org(State(s): State<AppState>, OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    orgs::delete(&s.svc, &ctx, &user.actor()).await?;
    Ok(super::no_content())
}

/// The six roles and their default permissions (the table every check starts from).
async fn roles(_user: CurrentUser) -> Response {
    let roles: Vec<_> = Role::ALL
        .iter()
        .map(|r| json!({"role": r, "permissions": r.default_permissions()}))
        .collect();
    ok(json!({"items": roles, "permissions": crate::domain::PERMISSIONS}))
}
