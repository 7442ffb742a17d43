//! Sign-up, sign-in, sign-out.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::views::identity::{LoginResult, SignupResult, UserOut};
use super::views::{self, OrgOut, OrgWithRole};
use super::{created, no_content};
use crate::error::Result;
use crate::http::extract::{ApiJson, CurrentUser};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::services::two_factor::SecondFactor;
use crate::services::{ClientMeta, identity};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
}

#[derive(Deserialize, ToSchema)]
struct SignupBody {
    /// an email address (compared case-insensitively)
    #[schema(max_length = 254, format = Email)]
    email: String,
    /// 8-256 characters, taken as typed
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "identity",
    summary = "Create an account (only when sign-up is enabled)",
    description = "403 signup_disabled unless open sign-up is on (`xagent admin signup on`); 409 when the email has an account.",
    request_body = SignupBody,
    responses(
        (status = 201, description = "Success", body = SignupResult),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 500, response = InternalError),
        Sent,
    ),
    security(()),
)]
async fn signup(
    State(s): State<AppState>,
    meta: ClientMeta,
    ApiJson(b): ApiJson<SignupBody>,
) -> Result<Response> {
    let (user, org) = identity::signup(&s.svc, &b.email, &b.name, &b.password, &meta).await?;
    Ok(created(&SignupResult {
        user: UserOut::from(&user),
        personal_organization: OrgOut::from(&org),
    }))
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    /// the account email
    #[schema(
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    email: String,
    #[schema(min_length = 1)]
    password: String,
    /// for an account with two-factor: the six-digit code of the authenticator app
    #[serde(default)]
    #[schema(nullable = false)]
    totp: Option<String>,
    /// for an account with two-factor: one of its recovery codes (each works once)
    #[serde(default)]
    #[schema(nullable = false)]
    recovery_code: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "identity",
    summary = "Sign in: sets the session cookie, returns the csrf_token",
    description = "401 invalid_credentials is the same for an unknown email and a wrong password; repeated failures are throttled (429). For an account with two-factor authentication, a right password without `totp` or `recovery_code` is 401 two_factor_required (the message names both), and a wrong or already used code is 401 invalid_two_factor (counted by the throttle like a wrong password).",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Success", body = LoginResult, headers(("Set-Cookie" = String, description = "the session cookie xagent_session (HttpOnly, SameSite=Lax)"))),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        Sent,
    ),
    security(()),
)]
async fn login(
    State(s): State<AppState>,
    meta: ClientMeta,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<Response> {
    let out = identity::login(
        &s.svc,
        s.session_policy(),
        &s.throttle,
        &b.email,
        &b.password,
        &SecondFactor {
            totp: b.totp,
            recovery_code: b.recovery_code,
        },
        &meta,
    )
    .await?;
    let cookie = session_cookie::set(&s, &out.session_token);
    let body = LoginResult {
        user: UserOut::from(&out.user),
        organizations: views::all::<_, OrgWithRole>(&out.memberships),
        current_organization_id: out.current_organization_id,
        csrf_token: &out.csrf_token,
        expires_at: out.expires_at,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "identity",
    summary = "Sign out (ends the session)",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared", headers(("Set-Cookie" = String, description = "the session cookie xagent_session (HttpOnly, SameSite=Lax)"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn logout(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    let session = user.require_session()?.session_id;
    identity::logout(&s.svc, &user.actor(), session).await?;
    let mut res = no_content();
    if let Ok(v) = session_cookie::clear(&s).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
