//! Sign-up, sign-in, sign-out.
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::views::identity::UserOut;
use super::views::{self, OrgOut, OrgWithRole};
use super::{created, no_content};
use crate::error::Result;
use crate::http::extract::{ApiJson, CurrentUser};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::services::{ClientMeta, identity};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
}

#[derive(Deserialize)]
struct SignupBody {
    email: String,
    password: String,
    name: String,
}

async fn signup(
    State(s): State<AppState>,
    meta: ClientMeta,
    ApiJson(b): ApiJson<SignupBody>,
) -> Result<Response> {
    let (user, org) = identity::signup(&s.svc, &b.email, &b.name, &b.password, &meta).await?;
    Ok(created(
        json!({"user": UserOut::from(&user), "personal_organization": OrgOut::from(&org)}),
    ))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

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
        &meta,
    )
    .await?;
    let cookie = session_cookie::set(&s, &out.session_token);
    let body = json!({
        "user": UserOut::from(&out.user),
        "organizations": views::all::<_, OrgWithRole>(&out.memberships),
        "current_organization_id": out.current_organization_id,
        "csrf_token": out.csrf_token,
        "expires_at": crate::domain::fmt_time(out.expires_at),
    });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

async fn logout(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    let session = user.require_session()?.session_id;
    identity::logout(&s.svc, &user.actor(), session).await?;
    let mut res = no_content();
    if let Ok(v) = session_cookie::clear(&s).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
