//! Sign-in, sign-out, and the front door.
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::form_errors;
use super::{render, render_status, safe_next, see_other};
use crate::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CurrentUser, MaybeUser, PublicForm};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::http::views::{ForgotPasswordPage, FormErrors, Layout, LoginPage, ResetPasswordPage};
use crate::services::two_factor::{Code, SecondFactor};
use crate::services::{ClientMeta, identity};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/forgot-password", get(forgot_form).post(forgot))
        .route(
            "/reset-password/{token}",
            get(reset_form).post(reset_password),
        )
}

async fn reset_form(
    State(s): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response> {
    let email = crate::services::admin::reset_link_user(&s.svc, token.clone()).await?;
    let status = if email.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    render_status(
        status,
        &ResetPasswordPage {
            layout: reset_layout(),
            token,
            email,
            errors: FormErrors::default(),
            done: false,
        },
    )
}

fn reset_layout() -> Layout {
    Layout {
        title: "Set a new password".into(),
        ..Default::default()
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    password: String,
}

async fn reset_password(
    State(s): State<AppState>,
    meta: ClientMeta,
    axum::extract::Path(token): axum::extract::Path<String>,
    PublicForm(f): PublicForm<ResetForm>,
) -> Result<Response> {
    match crate::services::admin::reset_password(&s.svc, token.clone(), &f.password, meta).await {
        Ok(()) => render(&ResetPasswordPage {
            layout: reset_layout(),
            token: String::new(),
            email: None,
            errors: FormErrors::default(),
            done: true,
        }),
        Err(e @ AppError::BadRequest { .. }) => {
            let email = crate::services::admin::reset_link_user(&s.svc, token.clone()).await?;
            render_status(
                e.status(),
                &ResetPasswordPage {
                    layout: reset_layout(),
                    token,
                    email,
                    errors: form_errors(&e, &["password"], "password").unwrap_or_default(),
                    done: false,
                },
            )
        }
        Err(AppError::NotFound { .. }) => render_status(
            StatusCode::NOT_FOUND,
            &ResetPasswordPage {
                layout: reset_layout(),
                token,
                email: None,
                errors: FormErrors::default(),
                done: false,
            },
        ),
        Err(e) => Err(e),
    }
}

async fn index(State(s): State<AppState>, MaybeUser(user): MaybeUser) -> Result<Response> {
    let Some(user) = user else {
        return Ok(see_other("/login"));
    };
    let me = identity::me(&s.svc, user.user.id).await?;
    let target = me
        .current_organization_id
        .and_then(|id| me.memberships.iter().find(|m| m.organization.id == id))
        .map(|m| format!("/o/{}", m.organization.slug))
        .unwrap_or_else(|| "/account".to_string());
    Ok(see_other(&target))
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    /// Set when an organization's session policy asks a signed-in user to sign in again.
    #[serde(default)]
    reauth: Option<String>,
}

async fn login_form(
    State(s): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<NextQuery>,
) -> Result<Response> {
    let next = safe_next(q.next.as_deref().unwrap_or("/"));
    let reauth = q.reauth.is_some();
    if user.is_some() && !reauth {
        return Ok(see_other(&next));
    }
    let first_run = identity::user_count(&s.svc).await? == 0;
    render(&LoginPage {
        first_run,
        create_user: s.config.create_user_command(),
        error: reauth.then(|| {
            "This organization's security policy asks you to sign in again to continue.".into()
        }),
        ..login_page(&s, user.map(|u| u.user.email).unwrap_or_default(), next)
    })
}

fn login_page(s: &AppState, email: String, next: String) -> LoginPage {
    LoginPage {
        layout: Layout {
            title: "Sign in".into(),
            ..Default::default()
        },
        email,
        next,
        error: None,
        errors: FormErrors::default(),
        first_run: false,
        create_user: String::new(),
        challenge: None,
        can_reset: s.svc.mail.is_some(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    /// The second step: the token of the sign-in whose password was right, and the code.
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
}

/// The new session's cookie and the way on. Signing in again (an organization's session
/// policy asked for it) replaces the session the browser had.
async fn signed_in(
    s: &AppState,
    out: &identity::LoginOutcome,
    next: String,
    previous: Option<&CurrentUser>,
) -> Result<Response> {
    if let Some(prev) = previous
        && let Some(id) = prev.session_id()
    {
        identity::logout(&s.svc, &prev.actor(), id).await?;
    }
    let cookie = session_cookie::set(s, &out.session_token);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response())
}

/// Sign-in in one or two steps: the email and password, then, for an account with
/// two-factor, a code (the password is not sent again: a token for the pending sign-in
/// is).
async fn login(
    State(s): State<AppState>,
    meta: ClientMeta,
    MaybeUser(previous): MaybeUser,
    PublicForm(f): PublicForm<LoginForm>,
) -> Result<Response> {
    let next = safe_next(&f.next);
    if !f.challenge.is_empty() {
        return second_step(&s, &meta, previous.as_ref(), f).await;
    }
    let checked =
        identity::authenticate_password(&s.svc, &s.throttle, &f.email, &f.password, &meta).await;
    let failed = match checked {
        Ok(user) => {
            let id = user.id;
            let enrolled = s
                .svc
                .db
                .read(move |tx| identity::has_two_factor(tx, id))
                .await?;
            if enrolled {
                let challenge = s.pending_logins.start(user.id, next.clone());
                return render(&LoginPage {
                    challenge: Some(challenge),
                    ..login_page(&s, f.email, next)
                });
            }
            match identity::finish_login(
                &s.svc,
                s.session_policy(),
                &s.throttle,
                user,
                &SecondFactor::default(),
                &meta,
            )
            .await
            {
                Ok(out) => return signed_in(&s, &out, next, previous.as_ref()).await,
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    match failed {
        e @ (AppError::InvalidCredentials
        | AppError::TooManyRequests { .. }
        | AppError::BadRequest { .. }) => {
            let (error, errors) = match &e {
                AppError::InvalidCredentials => (
                    Some("Email or password is incorrect.".to_string()),
                    FormErrors::default(),
                ),
                AppError::BadRequest { .. } => (
                    None,
                    form_errors(&e, &["email", "password"], "email").unwrap_or_default(),
                ),
                other => (Some(other.public_message()), FormErrors::default()),
            };
            render_status(
                e.status(),
                &LoginPage {
                    error,
                    errors,
                    ..login_page(&s, f.email, next)
                },
            )
        }
        e => Err(e),
    }
}

async fn second_step(
    s: &AppState,
    meta: &ClientMeta,
    previous: Option<&CurrentUser>,
    f: LoginForm,
) -> Result<Response> {
    let expired = || {
        render_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                error: Some("The sign-in took too long; enter your password again.".into()),
                ..login_page(s, String::new(), safe_next(&f.next))
            },
        )
    };
    let Some(pending) = s.pending_logins.get(&f.challenge) else {
        return expired();
    };
    let Some(user) = identity::active_user(&s.svc, pending.user_id).await? else {
        s.pending_logins.finish(&f.challenge);
        return expired();
    };
    let second = match Code::guess(&f.code) {
        Code::Totp(c) => SecondFactor {
            totp: Some(c.to_string()),
            recovery_code: None,
        },
        Code::Recovery(c) => SecondFactor {
            totp: None,
            recovery_code: Some(c.to_string()),
        },
    };
    let again = |e: &AppError, challenge: Option<String>| {
        render_status(
            e.status(),
            &LoginPage {
                error: challenge.is_none().then(|| e.public_message()),
                errors: if challenge.is_some() {
                    FormErrors::one("code", e.public_message())
                } else {
                    FormErrors::default()
                },
                challenge,
                ..login_page(s, String::new(), pending.next.clone())
            },
        )
    };
    match identity::finish_login(&s.svc, s.session_policy(), &s.throttle, user, &second, meta).await
    {
        Ok(out) => {
            s.pending_logins.finish(&f.challenge);
            signed_in(s, &out, pending.next.clone(), previous).await
        }
        Err(e @ AppError::TwoFactor { .. }) => {
            s.pending_logins.failed(&f.challenge);
            let still = s
                .pending_logins
                .get(&f.challenge)
                .map(|_| f.challenge.clone());
            again(&e, still)
        }
        Err(e @ AppError::TooManyRequests { .. }) => {
            s.pending_logins.finish(&f.challenge);
            again(&e, None)
        }
        Err(e) => Err(e),
    }
}

async fn forgot_form(State(s): State<AppState>) -> Result<Response> {
    render(&forgot_page(&s))
}

fn forgot_page(s: &AppState) -> ForgotPasswordPage {
    ForgotPasswordPage {
        layout: Layout {
            title: "Forgot your password?".into(),
            ..Default::default()
        },
        email: String::new(),
        errors: FormErrors::default(),
        error: None,
        sent: false,
        available: s.svc.mail.is_some(),
    }
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

async fn forgot(
    State(s): State<AppState>,
    meta: ClientMeta,
    PublicForm(f): PublicForm<ForgotForm>,
) -> Result<Response> {
    match identity::forgot_password(&s.svc, &s.reset_throttle, &f.email, &meta).await {
        Ok(()) => render(&ForgotPasswordPage {
            email: f.email.trim().to_string(),
            sent: true,
            ..forgot_page(&s)
        }),
        Err(e @ AppError::BadRequest { .. }) => render_status(
            e.status(),
            &ForgotPasswordPage {
                errors: form_errors(&e, &["email"], "email").unwrap_or_default(),
                email: f.email,
                ..forgot_page(&s)
            },
        ),
        Err(e @ (AppError::TooManyRequests { .. } | AppError::Conflict { .. })) => render_status(
            e.status(),
            &ForgotPasswordPage {
                error: Some(e.public_message()),
                email: f.email,
                ..forgot_page(&s)
            },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(s): State<AppState>, CsrfForm(user, _): CsrfForm<Empty>) -> Result<Response> {
    if let Some(id) = user.session_id() {
        identity::logout(&s.svc, &user.actor(), id).await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie::clear(&s)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response())
}
