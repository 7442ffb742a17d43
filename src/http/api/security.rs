//! Account security (password change, sign out everywhere, forgot password, two-factor
//! enrolment), an organization's security policy (`/orgs/{org}/security`: two-factor
//! requirement, IP allowlist, session and token lifetimes, API rate limit) and ending a
//! member's access.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{created, no_content, ok};
use crate::domain::UserId;
use crate::error::AppError;
use crate::error::Result;
use crate::http::extract::{ApiJson, CurrentUser, OrgCtx};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::services::identity::{self, PasswordChange, SignedOut};
use crate::services::security::{self, Revoked, SecurityInput, SecurityView};
use crate::services::sso::{self, SsoInput, SsoView};
use crate::services::two_factor::{self, Enrolment, OrgPolicy, Status};
use crate::services::{ClientMeta, admin};
use axum::extract::Path;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/forgot-password", post(forgot_password))
        .route("/api/v1/auth/reset-password", post(reset_password))
        .route("/api/v1/me/password", post(change_password))
        .route("/api/v1/me/sign-out-everywhere", post(sign_out_everywhere))
        .route("/api/v1/me/2fa", get(two_factor_status))
        .route("/api/v1/me/2fa/totp", post(start_totp).delete(disable_totp))
        .route("/api/v1/me/2fa/totp/confirm", post(confirm_totp))
        .route("/api/v1/me/2fa/recovery-codes", post(regenerate_codes))
        .route("/api/v1/orgs/{org}/security", get(show).patch(update))
        .route("/api/v1/orgs/{org}/security/sso/test", post(test_sso))
        .route(
            "/api/v1/orgs/{org}/members/{user_id}/revoke-access",
            post(revoke_access),
        )
}

/// A response that carries a secret shown once: never stored by a cache.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

// ---------------------------------------------------------------- password

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ForgotBody {
    /// the account's email
    #[schema(max_length = 254, format = Email)]
    email: String,
}

#[derive(Serialize, ToSchema)]
struct Accepted {
    message: &'static str,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/forgot-password",
    tag = "identity",
    summary = "Email a one-time link to set a new password (valid 30 minutes)",
    description = "The answer is the same whether or not the email has an account. Needs SMTP (409 smtp_not_configured otherwise). Throttled per email and per address (429).",
    request_body = ForgotBody,
    responses(
        (status = 202, description = "Accepted: a link is on its way if the account exists", body = Accepted),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        Sent,
    ),
    security(()),
)]
async fn forgot_password(
    State(s): State<AppState>,
    meta: ClientMeta,
    ApiJson(b): ApiJson<ForgotBody>,
) -> Result<Response> {
    identity::forgot_password(&s.svc, &s.reset_throttle, &b.email, &meta).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If the email belongs to an account, a link to set a new password is on its way; it works once, for 30 minutes.",
        }),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    /// the token of the reset link (its last path segment)
    #[schema(min_length = 1)]
    token: String,
    /// 8-256 characters
    #[schema(min_length = 8, max_length = 256)]
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/reset-password",
    tag = "identity",
    summary = "Set a new password with a reset link's token (ends every session of the user)",
    description = "An unknown, used or expired token is 404.",
    request_body = ResetBody,
    responses(
        (status = 204, description = "The password is set"),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        Sent,
    ),
    security(()),
)]
async fn reset_password(
    State(s): State<AppState>,
    meta: ClientMeta,
    ApiJson(b): ApiJson<ResetBody>,
) -> Result<Response> {
    admin::reset_password(&s.svc, b.token, &b.password, meta).await?;
    Ok(no_content())
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[schema(min_length = 1)]
    current_password: String,
    /// 8-256 characters
    #[schema(min_length = 8, max_length = 256)]
    new_password: String,
    /// end every other session of yours (default true; this one stays)
    #[serde(default = "yes")]
    end_other_sessions: bool,
    /// revoke every API token of yours (default true)
    #[serde(default = "yes")]
    revoke_tokens: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "identity",
    summary = "Change your password (session only)",
    description = "A wrong current password is 400 with the field current_password, and counts like a failed sign-in (429 when throttled).",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "Changed", body = SignedOut),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn change_password(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<PasswordBody>,
) -> Result<Response> {
    let session = user.require_session()?.session_id;
    let out = identity::change_password(
        &s.svc,
        &s.throttle,
        &user.actor(),
        Some(session),
        &PasswordChange {
            current: b.current_password,
            new: b.new_password,
            end_other_sessions: b.end_other_sessions,
            revoke_tokens: b.revoke_tokens,
        },
    )
    .await?;
    Ok(ok(&out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EverywhereBody {
    /// also revoke every API token of yours (default false)
    #[serde(default)]
    revoke_tokens: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/sign-out-everywhere",
    tag = "identity",
    summary = "End every session of yours, this one too (session only)",
    request_body = EverywhereBody,
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = SignedOut),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn sign_out_everywhere(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<EverywhereBody>,
) -> Result<Response> {
    user.require_session()?;
    let out = identity::sign_out_everywhere(&s.svc, &user.actor(), b.revoke_tokens).await?;
    let mut res = ok(&out);
    if let Ok(v) = session_cookie::clear(&s).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

// ---------------------------------------------------------------- two-factor

#[utoipa::path(
    get,
    path = "/api/v1/me/2fa",
    tag = "identity",
    summary = "Whether your account has two-factor authentication (session only)",
    responses(
        (status = 200, description = "Success", body = Status),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
    ),
    security(("session" = [])),
)]
async fn two_factor_status(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    user.require_session()?;
    Ok(ok(&two_factor::status(&s.svc, user.user.id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/totp",
    tag = "identity",
    summary = "Start enrolling an authenticator app: a new secret, its otpauth URL and QR code (shown once)",
    description = "Two-factor is on only after the confirmation with a code. Starting again replaces a pending enrolment; 409 two_factor_enabled when it is on already.",
    responses(
        (status = 201, description = "Created", body = Enrolment),
        (status = 409, response = Conflict),
        Guarded,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn start_totp(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    user.require_session()?;
    let e = two_factor::start_enrolment(&s.svc, &user.actor()).await?;
    Ok(no_store(created(&e)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    /// the six-digit code the authenticator app shows now
    #[schema(min_length = 1, max_length = 64)]
    code: String,
}

#[derive(Serialize, ToSchema)]
struct RecoveryCodes {
    /// ten one-time codes, shown only now
    recovery_codes: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/totp/confirm",
    tag = "identity",
    summary = "Confirm the enrolment with a code: two-factor is on; returns ten recovery codes (shown once)",
    description = "A wrong code is 400 (field code) and counts like a failed sign-in (429 when throttled); 409 no_enrolment without a pending enrolment.",
    request_body = CodeBody,
    responses(
        (status = 200, description = "Success", body = RecoveryCodes),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn confirm_totp(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CodeBody>,
) -> Result<Response> {
    user.require_session()?;
    let codes = two_factor::confirm(&s.svc, &s.throttle, &user.actor(), &b.code).await?;
    Ok(no_store(ok(&RecoveryCodes {
        recovery_codes: codes,
    })))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/recovery-codes",
    tag = "identity",
    summary = "Replace your recovery codes by ten new ones, for a code of the app (shown once)",
    request_body = CodeBody,
    responses(
        (status = 200, description = "Success", body = RecoveryCodes),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn regenerate_codes(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<CodeBody>,
) -> Result<Response> {
    user.require_session()?;
    let codes =
        two_factor::regenerate_recovery_codes(&s.svc, &s.throttle, &user.actor(), &b.code).await?;
    Ok(no_store(ok(&RecoveryCodes {
        recovery_codes: codes,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[schema(min_length = 1)]
    password: String,
    /// a code of the app, or a recovery code
    #[schema(min_length = 1, max_length = 64)]
    code: String,
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/2fa/totp",
    tag = "identity",
    summary = "Turn two-factor off, with your password and a code (of the app or a recovery code)",
    request_body = DisableBody,
    responses(
        (status = 204, description = "Off"),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn disable_totp(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<DisableBody>,
) -> Result<Response> {
    user.require_session()?;
    two_factor::disable(&s.svc, &s.throttle, &user.actor(), &b.password, &b.code).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------- organization policy

/// The whole policy of an organization.
#[derive(Serialize, ToSchema)]
struct OrgSecurity {
    #[serde(flatten)]
    access: SecurityView,
    #[serde(flatten)]
    two_factor: OrgPolicy,
    /// the organization's single sign-on; null when it has none
    sso: Option<SsoView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "The organization's security policy and the caller's address as the server sees it (security.manage)",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = OrgSecurity),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(State(s): State<AppState>, OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    Ok(ok(&OrgSecurity {
        access: security::get(&ctx, user.ip())?,
        two_factor: two_factor::org_policy(&ctx)?,
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

/// Fields left out stay as they are; `null` clears a limit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SecurityBody {
    /// refuse members without two-factor authentication once the grace period is over
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<bool>, nullable = false)]
    require_2fa: Option<Option<bool>>,
    /// days from turning the requirement on until it is enforced (0-365)
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u32>, nullable = false, minimum = 0, maximum = 365)]
    require_2fa_grace_days: Option<Option<u32>>,
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
    /// null removes single sign-on (provider, secret, domains); an object creates or changes it (needs a browser session)
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable)]
    sso: Option<Option<SsoPatch>>,
}

/// A field sent as `null` where a value is needed (leave it out to keep it as it is).
fn not_null<T>(v: Option<Option<T>>, field: &'static str) -> Result<Option<T>> {
    match v {
        Some(None) => Err(crate::error::AppError::invalid(vec![
            crate::domain::Invalid::new(field, "Give a value, or leave the field out."),
        ])),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/security",
    tag = "security",
    summary = "Change the security policy (security.manage, owners by default)",
    description = "Members without two-factor are refused the organization (403 two_factor_required) from require_2fa_enforced_from on; turning the requirement on needs two-factor on your own account (422 two_factor_required). An allowlist without the caller's address needs confirm_lockout (409 lockout_unconfirmed). Single sign-on changes need a browser session (API tokens get 403) and may answer 409 domain_taken. The access policy is checked before anything is stored; then single sign-on, the two-factor requirement and the access policy are stored in that order, and a refusal stops there. The policy concerns this organization only.",
    params(OrgPath),
    request_body = SecurityBody,
    responses(
        (status = 200, description = "Success", body = OrgSecurity),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
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
    let require = not_null(b.require_2fa, "require_2fa")?;
    let grace = not_null(b.require_2fa_grace_days, "require_2fa_grace_days")?;
    let prepared = security::prepare(
        &ctx,
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
    )?;
    let actor = user.actor();
    match b.sso {
        None => {}
        Some(None) => {
            user.require_session()?;
            match sso::remove(&s.svc, &ctx, &actor).await {
                Ok(()) | Err(AppError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Some(Some(p)) => {
            user.require_session()?;
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
    let two_factor = if require.is_some() || grace.is_some() {
        two_factor::set_org_policy(&s.svc, &ctx, &user.actor(), require, grace).await?
    } else {
        two_factor::org_policy(&ctx)?
    };
    let access = security::store(&s.svc, &ctx, &actor, user.ip(), prepared).await?;
    Ok(ok(&OrgSecurity {
        access,
        two_factor,
        sso: sso::settings(&s.svc, &ctx).await?,
    }))
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
