//! The invitation link `/invite/{token}`: for a signed-in user with the invited email an
//! Accept button; for a visitor without an account a sign-up form that joins at once; for
//! a visitor with an account a way to sign in first; for someone else a way to switch.
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::org_frame::{form_errors, no_store};
use super::{error_page, layout, render_status, see_other, urlencode};
use crate::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CurrentUser, MaybeUser, PublicForm};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, InvitePage, Layout};
use crate::services::invitations::{self, Preview};
use crate::services::{ClientMeta, identity};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invite/{token}", get(show).post(sign_up))
        .route("/invite/{token}/accept", get(back).post(accept))
        .route("/invite/{token}/sign-out", get(back).post(sign_out))
}

fn invite_url(token: &str) -> String {
    format!("/invite/{}", urlencode(token))
}

async fn back(Path(token): Path<String>) -> Response {
    see_other(&invite_url(&token))
}

/// Which of the four ways in the page offers.
fn mode(user: Option<&CurrentUser>, p: &Preview) -> &'static str {
    match user {
        Some(u) if u.user.email.eq_ignore_ascii_case(&p.email) => "accept",
        Some(_) => "other_account",
        None if p.account_exists => "sign_in",
        None => "sign_up",
    }
}

async fn page_layout(s: &AppState, user: Option<&CurrentUser>, title: &str) -> Layout {
    let fallback = || Layout {
        title: title.to_string(),
        ..Default::default()
    };
    match user {
        Some(u) => layout(s, u, title, None)
            .await
            .unwrap_or_else(|_| fallback()),
        None => fallback(),
    }
}

async fn invite_page(
    s: &AppState,
    user: Option<&CurrentUser>,
    token: &str,
    p: &Preview,
) -> InvitePage {
    let title = format!("Join {}", p.org_name);
    InvitePage {
        layout: page_layout(s, user, &title).await,
        token: urlencode(token),
        org_name: p.org_name.clone(),
        email: p.email.clone(),
        role: p.role.to_string(),
        expires: crate::domain::format::time_at(p.expires_at),
        inviter: p.inviter_name.clone(),
        mode: mode(user, p).to_string(),
        signed_in_as: user.map(|u| u.user.email.clone()).unwrap_or_default(),
        name: String::new(),
        errors: FormErrors::default(),
        error: None,
    }
}

/// The 404 page of a link that is unknown, expired, cancelled or used.
async fn invalid(s: &AppState, user: Option<&CurrentUser>, e: &AppError) -> Response {
    let layout = page_layout(s, user, "Invitation").await;
    no_store(error_page(
        StatusCode::NOT_FOUND,
        &e.public_message(),
        layout,
    ))
}

/// The invitation, or the page to show instead.
async fn preview(
    s: &AppState,
    user: Option<&CurrentUser>,
    token: &str,
) -> Result<std::result::Result<Preview, Response>> {
    match invitations::preview(&s.svc, token).await {
        Ok(p) => Ok(Ok(p)),
        Err(e @ AppError::NotFound { .. }) => Ok(Err(invalid(s, user, &e).await)),
        Err(e) => Err(e),
    }
}

async fn show(
    State(s): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(token): Path<String>,
) -> Result<Response> {
    let p = match preview(&s, user.as_ref(), &token).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let page = invite_page(&s, user.as_ref(), &token, &p).await;
    Ok(no_store(render_status(StatusCode::OK, &page)?))
}

#[derive(Deserialize)]
struct Empty {}

async fn accept(
    State(s): State<AppState>,
    Path(token): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    user.require_session()?;
    match invitations::accept(&s.svc, user.user.id, &token, &user.meta).await {
        Ok((org, _role)) => Ok(see_other(&format!("/o/{}", org.slug))),
        Err(e @ AppError::NotFound { .. }) => Ok(invalid(&s, Some(&user), &e).await),
        Err(e @ (AppError::Forbidden { .. } | AppError::Conflict { .. })) => {
            let p = match preview(&s, Some(&user), &token).await? {
                Ok(p) => p,
                Err(page) => return Ok(page),
            };
            let mut page = invite_page(&s, Some(&user), &token, &p).await;
            page.error = Some(e.public_message());
            let res = render_status(e.status(), &page)?;
            Ok(no_store(super::org_frame::shown_at(
                res,
                &invite_url(&token),
            )))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct SignUpForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// A visitor makes the invited account and joins; then they are signed in.
async fn sign_up(
    State(s): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(token): Path<String>,
    meta: ClientMeta,
    PublicForm(f): PublicForm<SignUpForm>,
) -> Result<Response> {
    let p = match preview(&s, user.as_ref(), &token).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let result = if f.password != f.confirm {
        // Told together with what else is wrong with the name and the password.
        let mut errors = Vec::new();
        errors.extend(crate::domain::PersonName::parse(&f.name).err());
        errors.extend(crate::domain::Password::parse(&f.password).err());
        errors.push(crate::domain::Invalid::new(
            "confirm",
            "The two passwords differ.",
        ));
        Err(AppError::invalid(errors))
    } else {
        invitations::accept_with_new_account(&s.svc, &token, &f.name, &f.password, &meta).await
    };
    let (new_user, org) = match result {
        Ok((new_user, org, _role)) => (new_user, org),
        Err(e @ AppError::NotFound { .. }) => return Ok(invalid(&s, user.as_ref(), &e).await),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["name", "password", "confirm"], "name") else {
                return Err(e);
            };
            // The account may have been made meanwhile: the page then offers signing in.
            let p = match preview(&s, user.as_ref(), &token).await? {
                Ok(fresh) => fresh,
                Err(_) => p,
            };
            let mut page = invite_page(&s, user.as_ref(), &token, &p).await;
            page.name = f.name;
            if page.mode == "sign_up" {
                page.errors = errors;
            } else {
                page.error = Some(e.public_message());
            }
            let res = render_status(e.status(), &page)?;
            return Ok(no_store(super::org_frame::shown_at(
                res,
                &invite_url(&token),
            )));
        }
    };
    let target = format!("/o/{}", org.slug);
    // Signed in the way the sign-in page does it: a session for the new account.
    match identity::login(
        &s.svc,
        s.session_policy(),
        &s.throttle,
        &new_user.email,
        &f.password,
        &crate::services::two_factor::SecondFactor::default(),
        &meta,
    )
    .await
    {
        Ok(out) => Ok((
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    session_cookie::set(&s, &out.session_token),
                ),
                (header::LOCATION, target),
            ],
        )
            .into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "sign-in after accepting an invitation failed");
            Ok(see_other(&format!("/login?next={}", urlencode(&target))))
        }
    }
}

/// Signed in as someone else: sign out here and come back to the link.
async fn sign_out(
    State(s): State<AppState>,
    Path(token): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    if let Some(id) = user.session_id() {
        identity::logout(&s.svc, &user.actor(), id).await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie::clear(&s)),
            (header::LOCATION, invite_url(&token)),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;

    fn page(mode: &str) -> InvitePage {
        InvitePage {
            layout: Layout {
                title: "Join Acme".into(),
                csrf_token: "csrf-1".into(),
                ..Default::default()
            },
            token: "tok123".into(),
            org_name: "Acme <Labs>".into(),
            email: "bob@example.com".into(),
            role: "member".into(),
            expires: "2026-12-05 14:05 UTC".into(),
            inviter: Some("Ada".into()),
            mode: mode.into(),
            signed_in_as: "eve@example.com".into(),
            name: "Bob".into(),
            errors: FormErrors::one("confirm", "The two passwords differ."),
            error: None,
        }
    }

    #[test]
    fn each_way_in_renders_its_own_action() {
        let html = page("accept").render().unwrap();
        assert!(html.contains("action=\"/invite/tok123/accept\""));
        assert!(html.contains("value=\"csrf-1\""));
        assert!(!html.contains("Acme <Labs>"));
        assert!(html.contains("Ada invited"));

        let html = page("other_account").render().unwrap();
        assert!(html.contains("eve@example.com"));
        assert!(html.contains("action=\"/invite/tok123/sign-out\""));

        let html = page("sign_in").render().unwrap();
        assert!(html.contains("href=\"/login?next=/invite/tok123\""));
        assert!(!html.contains("<form"));

        let html = page("sign_up").render().unwrap();
        assert!(html.contains("action=\"/invite/tok123\""));
        assert!(html.contains("id=\"sign-up-confirm-error\""));
        assert!(html.contains("value=\"Bob\""));
        assert!(html.contains("autocomplete=\"new-password\""));
    }
}
