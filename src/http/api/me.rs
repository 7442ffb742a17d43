//! The signed-in user: profile, current organization, API tokens, sessions.
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, put};
use serde::Deserialize;
use serde_json::json;

use super::pagination::{Page, paginate, time_key};
use super::views::identity::{SessionOut, TokenOut, UserOut};
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
    Ok(ok(json!({
        "user": UserOut::from(&me.user),
        "memberships": memberships,
        "current_organization_id": current,
    })))
}

#[derive(Deserialize)]
struct CurrentOrgBody {
    organization_id: String,
}

async fn set_current(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CurrentOrgBody>,
) -> Result<Response> {
    user.require_session()?;
    let ctx = identity::set_current_org(&s.svc, user.user.id, b.organization_id).await?;
    Ok(ok(json!({
        "current_organization_id": ctx.org_id(),
        "organization": OrgOut::from(ctx.org()),
        "role": ctx.role(),
    })))
}

#[derive(Deserialize)]
struct CreateTokenBody {
    name: String,
    organization_id: String,
    #[serde(default)]
    expires_at: Option<String>,
}

async fn create_token(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CreateTokenBody>,
) -> Result<Response> {
    user.require_session()?;
    let new = identity::create_api_token(
        &s.svc,
        &user.actor(),
        &b.name,
        b.organization_id,
        b.expires_at.as_deref(),
    )
    .await?;
    let mut body = views::value(&TokenOut::from(&new.token));
    body["token"] = json!(new.secret);
    Ok(created(body))
}

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

#[derive(Deserialize)]
struct MoveBody {
    from_organization_id: String,
    to_organization_id: String,
}

/// Moves everything the caller owns in their personal workspace into an organization.
async fn move_to_org(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<MoveBody>,
) -> Result<Response> {
    user.require_session()?;
    let out = crate::services::resources::move_to_organization(
        &s.svc,
        &user.actor(),
        b.from_organization_id,
        b.to_organization_id,
    )
    .await?;
    Ok(ok(out))
}
