//! The signed-in user: profile, current organization, API tokens, sessions.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, put};
use serde::Deserialize;
use utoipa::ToSchema;

use super::pagination::{Page, paginate, time_key};
use super::views::identity::{
    CurrentOrganization, MeOut, SessionOut, TokenCreated, TokenOut, UserOut,
};
use super::views::{self, MembershipOut, OrgOut};
use super::{created, items, no_content, ok};
use crate::domain::{ApiTokenId, SessionId};
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, AuthKind, CurrentUser};
use crate::http::state::AppState;
use crate::services::identity;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/current-organization", put(set_current))
        .route("/api/v1/me/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/me/tokens/{id}", delete(revoke_token))
        .route("/api/v1/me/sessions", get(list_sessions))
        .route("/api/v1/me/sessions/{id}", delete(revoke_session))
        .route(
            "/api/v1/me/move-to-organization",
            axum::routing::post(move_to_org),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "identity",
    summary = "The caller, their memberships and current organization",
    description = "With an API token, only the token's organization is shown.",
    responses(
        (status = 200, description = "Success", body = MeOut),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn me(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    let mut me = identity::me(&s.svc, user.user.id).await?;
    let mut current = me.current_organization_id;
    // A token acts in its organization only; it sees nothing of the user's others.
    if let AuthKind::Token(t) = &user.kind {
        me.memberships
            .retain(|m| m.organization.id == t.organization_id);
        current = Some(t.organization_id);
    }
    let memberships: Vec<MembershipOut> = views::all(&me.memberships);
    Ok(ok(&MeOut {
        user: UserOut::from(&me.user),
        memberships,
        current_organization_id: current,
    }))
}

#[derive(Deserialize, ToSchema)]
struct CurrentOrgBody {
    /// organization id or slug
    #[schema(min_length = 1)]
    organization_id: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/me/current-organization",
    tag = "identity",
    summary = "Switch the current organization (session only)",
    request_body = CurrentOrgBody,
    responses(
        (status = 200, description = "Success", body = CurrentOrganization),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn set_current(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CurrentOrgBody>,
) -> Result<Response> {
    user.require_session()?;
    let ctx = identity::set_current_org(&s.svc, user.user.id, b.organization_id).await?;
    Ok(ok(&CurrentOrganization {
        current_organization_id: ctx.org_id(),
        organization: OrgOut::from(ctx.org()),
        role: ctx.role(),
    }))
}

#[derive(Deserialize, ToSchema)]
struct CreateTokenBody {
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    /// organization id or slug
    #[schema(min_length = 1)]
    organization_id: String,
    /// in the future: an RFC 3339 time, or a date (the end of that day, UTC); absent or null: no expiry
    #[serde(default)]
    #[schema(schema_with = super::openapi::time_or_date_or_null)]
    expires_at: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/tokens",
    tag = "identity",
    summary = "Create an API token for one organization; the secret is returned once",
    request_body = CreateTokenBody,
    responses(
        (status = 201, description = "Success", body = TokenCreated),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn create_token(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CreateTokenBody>,
) -> Result<Response> {
    user.require_session()?;
    // Making a token acts in its organization: the policy's address and session checks.
    user.org_context_in(&s.svc, b.organization_id.clone())
        .await?;
    let new = identity::create_api_token(
        &s.svc,
        &user.actor(),
        &b.name,
        b.organization_id,
        b.expires_at.as_deref(),
    )
    .await?;
    Ok(created(&TokenCreated {
        row: TokenOut::from(&new.token),
        token: &new.secret,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/me/tokens",
    tag = "identity",
    summary = "List the caller's API tokens (never the secret)",
    params(PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<TokenOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
    ),
    security(("session" = [])),
)]
async fn list_tokens(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    user.require_session()?;
    let all = identity::list_api_tokens(&s.svc, user.user.id).await?;
    let (page_items, next) = paginate(all, &page, |t| time_key(t.created_at, t.id))?;
    Ok(items(&views::all::<_, TokenOut>(&page_items), next))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/tokens/{id}",
    tag = "identity",
    summary = "Revoke an API token",
    params(IdPath),
    responses(
        (status = 204, description = "Revoked"),
        Guarded,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn revoke_token(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response> {
    user.require_session()?;
    let id = ApiTokenId::parse(&id).ok_or_else(AppError::not_found)?;
    identity::revoke_api_token(&s.svc, &user.actor(), id).await?;
    Ok(no_content())
}

#[utoipa::path(
    get,
    path = "/api/v1/me/sessions",
    tag = "identity",
    summary = "List the caller's active sessions",
    params(PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<SessionOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
    ),
    security(("session" = [])),
)]
async fn list_sessions(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let current = user.require_session()?.session_id;
    let all = identity::list_sessions(&s.svc, s.session_policy(), user.user.id).await?;
    let (page_items, next) = paginate(all, &page, |s| time_key(s.created_at, s.id))?;
    let out: Vec<SessionOut> = page_items
        .iter()
        .map(|s| SessionOut::new(s, current))
        .collect();
    Ok(items(&out, next))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/sessions/{id}",
    tag = "identity",
    summary = "End a session",
    params(IdPath),
    responses(
        (status = 204, description = "Ended"),
        Guarded,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn revoke_session(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response> {
    user.require_session()?;
    let id = SessionId::parse(&id).ok_or_else(AppError::not_found)?;
    identity::revoke_session(&s.svc, &user.actor(), id).await?;
    Ok(no_content())
}

#[derive(Deserialize, ToSchema)]
struct MoveBody {
    /// your personal workspace (id or slug)
    #[schema(min_length = 1)]
    from_organization_id: String,
    /// id or slug
    #[schema(min_length = 1)]
    to_organization_id: String,
}

/// Moves everything the caller owns in their personal workspace into an organization.
#[utoipa::path(
    post,
    path = "/api/v1/me/move-to-organization",
    tag = "resources",
    summary = "Move everything you own in your personal workspace into an organization where you may create it (plan limits apply; shares are dropped, team visibility becomes private)",
    request_body = MoveBody,
    responses(
        (status = 200, description = "Success", body = crate::services::resources::MoveResult),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn move_to_org(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<MoveBody>,
) -> Result<Response> {
    user.require_session()?;
    let from = crate::domain::OrgId::parse(&b.from_organization_id);
    let out = crate::services::resources::move_to_organization(
        &s.svc,
        &user.actor(),
        b.from_organization_id,
        b.to_organization_id,
    )
    .await?;
    // Moved chunks belong to the other organization's partition of the index now.
    for org in from.into_iter().chain([out.organization_id]) {
        crate::services::knowledge::load_org(&s.svc, &s.knowledge, org).await?;
    }
    Ok(ok(&out))
}
