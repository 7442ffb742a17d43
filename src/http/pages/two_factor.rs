//! The account's security pages: two-factor authentication (enrolment with a QR code,
//! recovery codes, turning it off), changing the password, signing out everywhere.
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::{form_errors, no_store};
use super::{layout, render_status, see_other};
use crate::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CurrentUser};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, TwoFactorPage};
use crate::services::identity::{self, PasswordChange};
use crate::services::two_factor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/two-factor", get(show))
        .route("/account/two-factor/start", post(start))
        .route("/account/two-factor/confirm", post(confirm))
        .route("/account/two-factor/recovery-codes", post(regenerate))
        .route("/account/two-factor/disable", post(disable))
        .route(
            "/account/password",
            get(|| async { see_other("/account#password") }).post(change_password),
        )
        .route("/account/sign-out-everywhere", post(sign_out_everywhere))
}

async fn page(s: &AppState, user: &CurrentUser) -> Result<TwoFactorPage> {
    user.require_session()?;
    Ok(TwoFactorPage {
        layout: layout(s, user, "Two-factor authentication", None).await?,
        status: two_factor::status(&s.svc, user.user.id).await?,
        enrolment: two_factor::pending_enrolment(&s.svc, &user.actor()).await?,
        recovery_codes: Vec::new(),
        errors: FormErrors::default(),
        notice: None,
        required_by: None,
    })
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    #[serde(default)]
    required: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ShowQuery>,
) -> Result<Response> {
    let mut p = page(&s, &user).await?;
    p.required_by = q.required.filter(|_| !p.status.enabled);
    render_status(StatusCode::OK, &p).map(no_store)
}

/// The page again with a service error next to `field` (or at the top).
async fn with_error(
    s: &AppState,
    user: &CurrentUser,
    e: AppError,
    fields: &[&str],
) -> Result<Response> {
    let Some(errors) = form_errors(&e, fields, "form") else {
        if let AppError::TooManyRequests { .. } = e {
            let mut p = page(s, user).await?;
            p.errors = FormErrors::one("form", e.public_message());
            return render_status(e.status(), &p).map(no_store);
        }
        return Err(e);
    };
    let mut p = page(s, user).await?;
    p.errors = errors;
    render_status(e.status(), &p).map(no_store)
}

#[derive(Deserialize)]
struct Empty {}

async fn start(State(s): State<AppState>, CsrfForm(user, _): CsrfForm<Empty>) -> Result<Response> {
    match two_factor::start_enrolment(&s.svc, &user.actor()).await {
        Ok(e) => {
            let mut p = page(&s, &user).await?;
            p.enrolment = Some(e);
            render_status(StatusCode::OK, &p).map(no_store)
        }
        Err(e) => with_error(&s, &user, e, &[]).await,
    }
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn confirm(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<CodeForm>,
) -> Result<Response> {
    match two_factor::confirm(&s.svc, &s.throttle, &user.actor(), &f.code).await {
        Ok(codes) => {
            let mut p = page(&s, &user).await?;
            p.recovery_codes = codes;
            p.notice = Some("Two-factor authentication is on.".into());
            render_status(StatusCode::OK, &p).map(no_store)
        }
        Err(e) => with_error(&s, &user, e, &["code"]).await,
    }
}

async fn regenerate(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<CodeForm>,
) -> Result<Response> {
    match two_factor::regenerate_recovery_codes(&s.svc, &s.throttle, &user.actor(), &f.code).await {
        Ok(codes) => {
            let mut p = page(&s, &user).await?;
            p.recovery_codes = codes;
            p.notice = Some("New recovery codes: the old ones no longer work.".into());
            render_status(StatusCode::OK, &p).map(no_store)
        }
        Err(AppError::BadRequest {
            code,
            message,
            mut fields,
        }) => {
            // The form's field is named apart from the turn-off form's code.
            if let Some(m) = fields.remove("code") {
                fields.insert("regen_code".into(), m);
            }
            let e = AppError::BadRequest {
                code,
                message,
                fields,
            };
            with_error(&s, &user, e, &["regen_code"]).await
        }
        Err(e) => with_error(&s, &user, e, &[]).await,
    }
}

#[derive(Deserialize)]
struct DisableForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn disable(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<DisableForm>,
) -> Result<Response> {
    match two_factor::disable(&s.svc, &s.throttle, &user.actor(), &f.password, &f.code).await {
        Ok(()) => {
            let mut p = page(&s, &user).await?;
            p.notice = Some("Two-factor authentication is off.".into());
            render_status(StatusCode::OK, &p).map(no_store)
        }
        Err(e) => with_error(&s, &user, e, &["password", "code"]).await,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    /// Checkboxes: present when ticked.
    #[serde(default)]
    end_other_sessions: Option<String>,
    #[serde(default)]
    revoke_tokens: Option<String>,
}

async fn change_password(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<PasswordForm>,
) -> Result<Response> {
    let session = user.require_session()?.session_id;
    let change = PasswordChange {
        current: f.current_password,
        new: f.new_password,
        end_other_sessions: f.end_other_sessions.is_some(),
        revoke_tokens: f.revoke_tokens.is_some(),
    };
    let done =
        identity::change_password(&s.svc, &s.throttle, &user.actor(), Some(session), &change).await;
    let mut p = super::account::page(&s, &user).await?;
    match done {
        Ok(out) => {
            p.notice = Some(format!(
                "Your password is changed. {} other sessions ended, {} API tokens revoked.",
                out.sessions_ended, out.tokens_revoked
            ));
            render_status(StatusCode::OK, &p)
        }
        Err(e) => {
            let errors = match &e {
                AppError::TooManyRequests { .. } => FormErrors::one("form", e.public_message()),
                _ => match form_errors(&e, &["current_password", "new_password"], "form") {
                    Some(errors) => errors,
                    None => return Err(e),
                },
            };
            p.password_errors = errors;
            render_status(e.status(), &p)
        }
    }
}

#[derive(Deserialize)]
struct EverywhereForm {
    #[serde(default)]
    revoke_tokens: Option<String>,
}

async fn sign_out_everywhere(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<EverywhereForm>,
) -> Result<Response> {
    user.require_session()?;
    identity::sign_out_everywhere(&s.svc, &user.actor(), f.revoke_tokens.is_some()).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie::clear(&s)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response())
}
