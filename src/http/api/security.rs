//! An organization's security policy (API.md "Security policy") and ending a member's
//! access.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::ToSchema;

use super::ok;
use crate::domain::UserId;
use crate::error::{AppError, Result};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::services::security::{self, Revoked, SecurityInput, SecurityView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/security", get(show).patch(update))
        .route(
            "/api/v1/orgs/{org}/members/{user_id}/revoke-access",
            post(revoke_access),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "The organization's security policy and the caller's address as the server sees it (security.manage)",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = SecurityView),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    Ok(ok(&security::get(&ctx, user.ip())?))
}

/// Fields left out stay as they are; `null` clears a limit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SecurityBody {
    /// networks (CIDR, IPv4 or IPv6) or single addresses; empty: any address
    #[schema(max_items = 200, value_type = Option<Vec<String>>)]
    #[serde(default)]
    ip_allowlist: Option<Vec<String>>,
    /// null: the instance's idle timeout
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    session_idle_minutes: Option<Option<i64>>,
    /// null: the instance's session lifetime
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    session_max_hours: Option<Option<i64>>,
    /// null: tokens of any lifetime
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    token_max_days: Option<Option<i64>>,
    /// null: no API rate limit
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    api_rate_limit_rpm: Option<Option<i64>>,
    /// needed to save an allowlist that leaves out the caller's own address
    #[serde(default)]
    confirm_lockout: bool,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "Change the security policy (security.manage); an allowlist without the caller's address needs confirm_lockout (409 lockout_unconfirmed)",
    params(OrgPath),
    request_body = SecurityBody,
    responses(
        (status = 200, description = "Success", body = SecurityView),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn update(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<SecurityBody>,
) -> Result<Response> {
    let v = security::patch(
        &s.svc,
        &ctx,
        &user.actor(),
        user.ip(),
        SecurityInput {
            ip_allowlist: b.ip_allowlist,
            session_idle_minutes: b.session_idle_minutes,
            session_max_hours: b.session_max_hours,
            token_max_days: b.token_max_days,
            api_rate_limit_rpm: b.api_rate_limit_rpm,
            confirm_lockout: b.confirm_lockout,
            unreadable: Vec::new(),
        },
    )
    .await?;
    Ok(ok(&v))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/members/{user_id}/revoke-access",
    tag = "security",
    summary = "End a member's sessions in this organization and revoke their API tokens of it (members.manage); their other organizations are not touched",
    params(OrgPath, ("user_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Success", body = Revoked),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn revoke_access(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, member)): Path<(String, String)>,
) -> Result<Response> {
    let member = UserId::parse(&member).ok_or_else(AppError::not_found)?;
    let out = security::revoke_member_access(&s.svc, &ctx, &user.actor(), member).await?;
    Ok(ok(&out))
}
