//! An organization's security policy (API.md "Security policy"): its single sign-on.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ok;
use crate::error::Result;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::services::sso::{self, SsoInput, SsoView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/security", get(show).patch(change))
        .route("/api/v1/orgs/{org}/security/sso/test", post(test_sso))
}

/// The organization's security policy.
#[derive(Serialize, ToSchema)]
pub(crate) struct SecuritySettings {
    /// the organization's single sign-on; null when it has none
    sso: Option<SsoView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "The organization's security policy: its single sign-on (the client secret only as a hint)",
    description = "Needs `security.manage` (owners by default).",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = SecuritySettings),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&SecuritySettings {
        sso: sso::settings(&s.svc, &ctx).await?,
    }))
}

/// A change to the single sign-on: absent fields keep what is stored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SsoPatch {
    /// the OpenID Connect issuer URL, http(s), without query; required when single sign-on is set up
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^\\s*https?://[^\\s/?#@]+[^\\s?#]*\\s*$"
    )]
    #[serde(default)]
    issuer: Option<String>,
    /// the client id registered at the provider; required when single sign-on is set up
    #[schema(min_length = 1, max_length = 255, pattern = "^\\s*[!-~]+\\s*$")]
    #[serde(default)]
    client_id: Option<String>,
    /// write-only, stored encrypted; null removes it, absent keeps it
    #[schema(min_length = 1, max_length = 4096, pattern = "^\\s*[!-~]+\\s*$")]
    #[serde(default, deserialize_with = "super::present")]
    client_secret: Option<Option<String>>,
    /// the email domains whose people sign in here (one domain routes to one organization only); required when single sign-on is set up
    #[schema(min_items = 1, max_items = 50, value_type = Option<Vec<EmailDomain>>)]
    #[serde(default)]
    allowed_domains: Option<Vec<String>>,
    /// the role of members the first sign-in adds (default member); not owner, not above your own
    #[schema(value_type = Option<String>, pattern = "^\\s*(admin|manager|member|viewer|guest)\\s*$")]
    #[serde(default)]
    default_role: Option<String>,
    /// refuse password sign-in to the organization's members (owners with two-factor authentication excepted)
    #[serde(default)]
    sso_only: Option<bool>,
}

/// An email domain: lower- or upper-case labels of letters, digits and hyphens.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    min_length = 3,
    max_length = 253,
    pattern = "^\\s*@?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\\s*$"
)]
#[allow(dead_code)]
struct EmailDomain(String);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SecurityPatch {
    /// null removes single sign-on (provider, secret, domains); an object creates or changes it
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable)]
    sso: Option<Option<SsoPatch>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "Change the security policy: set up, change or remove single sign-on",
    description = "Needs `security.manage` (owners by default) and a browser session (API tokens are refused). 409 domain_taken when another organization routes one of the email domains. Audited as sso.updated / sso.removed (never the secret).",
    params(OrgPath),
    request_body = SecurityPatch,
    responses(
        (status = 200, description = "Success", body = SecuritySettings),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn change(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<SecurityPatch>,
) -> Result<Response> {
    user.require_session()?;
    let actor = user.actor();
    match b.sso {
        None => {}
        Some(None) => match sso::remove(&s.svc, &ctx, &actor).await {
            Ok(()) | Err(crate::error::AppError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        },
        Some(Some(p)) => {
            sso::save(
                &s.svc,
                &ctx,
                &actor,
                SsoInput {
                    issuer: p.issuer,
                    client_id: p.client_id,
                    client_secret: p.client_secret,
                    allowed_domains: p.allowed_domains,
                    default_role: p.default_role,
                    sso_only: p.sso_only,
                },
            )
            .await?;
        }
    }
    Ok(ok(&SecuritySettings {
        sso: sso::settings(&s.svc, &ctx).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SsoTestBody {
    /// the issuer to test; absent tests the saved one
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^\\s*https?://[^\\s/?#@]+[^\\s?#]*\\s*$"
    )]
    #[serde(default)]
    issuer: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/security/sso/test",
    tag = "security",
    summary = "Test the connection: read the issuer's discovery document and signing keys",
    description = "Needs `security.manage`. The answer says ok or why not, in a sentence; nothing of the issuer's own answer is repeated. The issuer is held to the outbound address policy.",
    params(OrgPath),
    request_body = SsoTestBody,
    responses(
        (status = 200, description = "Success", body = sso::TestResult),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn test_sso(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiJson(b): ApiJson<SsoTestBody>,
) -> Result<Response> {
    Ok(ok(&sso::test_connection(&s.svc, &ctx, b.issuer).await?))
}
