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
use crate::http::extract::{CsrfForm, MaybeUser, PublicForm};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, Layout, LoginPage, ResetPasswordPage};
use crate::services::{ClientMeta, identity};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
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
        layout: Layout {
            title: "Sign in".into(),
            ..Default::default()
        },
        email: user.map(|u| u.user.email).unwrap_or_default(),
        next,
        error: reauth.then(|| {
            "This organization's security policy asks you to sign in again to continue.".into()
        }),
        errors: FormErrors::default(),
        first_run,
        create_user: s.config.create_user_command(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(s): State<AppState>,
    meta: ClientMeta,
    MaybeUser(previous): MaybeUser,
    PublicForm(f): PublicForm<LoginForm>,
) -> Result<Response> {
    let next = safe_next(&f.next);
    match identity::login(
        &s.svc,
        s.session_policy(),
        &s.throttle,
        &f.email,
        &f.password,
        &meta,
    )
    .await
    {
        Ok(out) => {
            // Signing in again (an organization's session policy asked for it) replaces
            // the session the browser had.
            if let Some(prev) = previous
                && let Some(id) = prev.session_id()
            {
                identity::logout(&s.svc, &prev.actor(), id).await?;
            }
            let cookie = session_cookie::set(&s, &out.session_token);
            Ok((
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
            )
                .into_response())
        }
        Err(
            e @ (AppError::InvalidCredentials
            | AppError::TooManyRequests { .. }
            | AppError::BadRequest { .. }),
        ) => {
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
                    layout: Layout {
                        title: "Sign in".into(),
                        ..Default::default()
                    },
                    email: f.email,
                    next,
                    error,
                    errors,
                    first_run: false,
                    create_user: String::new(),
                },
            )
        }
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
