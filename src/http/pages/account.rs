//! The account page: sessions (with revoke) and API tokens (create, shown once; revoke).
use crate::domain::format::time_at;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::form_errors;
use super::{layout, render, render_status, see_other};
use crate::domain::{ApiTokenId, SessionId};
use crate::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CurrentUser};
use crate::http::state::AppState;
use crate::http::views::{
    AccountPage, FormErrors, NewTokenView, SessionRow, TokenFormValues, TokenRow,
};
use crate::services::identity;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route(
            "/account/tokens",
            get(|| async { see_other("/account") }).post(create_token),
        )
        .route("/account/tokens/{id}/revoke", post(revoke_token))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
}

pub(super) async fn page(s: &AppState, user: &CurrentUser) -> Result<AccountPage> {
    user.require_session()?;
    let layout = layout(s, user, "Account", None).await?;
    let current = user.session_id();
    let sessions = identity::list_sessions(&s.svc, s.session_policy(), user.user.id)
        .await?
        .into_iter()
        .map(|session| SessionRow {
            current: Some(session.id) == current,
            created: time_at(session.created_at),
            last_seen: time_at(session.last_seen_at),
            session,
        })
        .collect();
    let tokens = identity::list_api_tokens(&s.svc, user.user.id)
        .await?
        .into_iter()
        .map(|token| {
            let org_name = layout
                .orgs
                .iter()
                .find(|o| o.id == token.organization_id.to_string())
                .map(|o| o.name.clone())
                .unwrap_or_else(|| "(no longer a member)".into());
            let active =
                token.revoked_at.is_none() && token.expires_at.is_none_or(|e| e > s.svc.now());
            TokenRow {
                org_name,
                created: time_at(token.created_at),
                expires: token.expires_at.map_or_else(|| "never".into(), time_at),
                last_used: token.last_used_at.map_or_else(|| "never".into(), time_at),
                active,
                token,
            }
        })
        .collect();
    Ok(AccountPage {
        layout,
        sessions,
        tokens,
        new_token: None,
        form: TokenFormValues::default(),
        form_errors: FormErrors::default(),
        two_factor: crate::services::two_factor::status(&s.svc, user.user.id).await?,
        password_errors: FormErrors::default(),
        notice: None,
    })
}

async fn show(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    render(&page(&s, &user).await?)
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    organization_id: String,
    #[serde(default)]
    expires_at: String,
}

async fn create_token(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<TokenForm>,
) -> Result<Response> {
    user.require_session()?;
    // Making a token acts in its organization: the policy's address and session checks.
    let created = match user.org_context_in(&s.svc, f.organization_id.clone()).await {
        Ok(_) => {
            identity::create_api_token(
                &s.svc,
                &user.actor(),
                &f.name,
                f.organization_id.clone(),
                Some(&f.expires_at),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let mut p = page(&s, &user).await?;
    match created {
        Ok(new) => {
            let org_name = p
                .layout
                .orgs
                .iter()
                .find(|o| o.id == new.token.organization_id.to_string())
                .map(|o| o.name.clone())
                .unwrap_or_default();
            p.new_token = Some(NewTokenView {
                name: new.token.name.clone(),
                secret: new.secret,
                org_name,
            });
            // The secret is in this response only: never cache it.
            let mut res = render_status(StatusCode::CREATED, &p)?;
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res.headers_mut().insert(
                "hx-push-url",
                axum::http::HeaderValue::from_static("/account"),
            );
            Ok(res)
        }
        Err(e) => {
            let Some(errors) = form_errors(&e, &["name", "organization_id", "expires_at"], "form")
            else {
                return Err(e);
            };
            p.form_errors = errors;
            p.form = TokenFormValues {
                name: f.name,
                organization_id: f.organization_id,
                expires_at: f.expires_at,
            };
            let mut res = render_status(e.status(), &p)?;
            res.headers_mut().insert(
                "hx-push-url",
                axum::http::HeaderValue::from_static("/account"),
            );
            Ok(res)
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    user.require_session()?;
    let id = ApiTokenId::parse(&id).ok_or_else(AppError::not_found)?;
    identity::revoke_api_token(&s.svc, &user.actor(), id).await?;
    Ok(see_other("/account#tokens"))
}

async fn revoke_session(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    user.require_session()?;
    let id = SessionId::parse(&id).ok_or_else(AppError::not_found)?;
    identity::revoke_session(&s.svc, &user.actor(), id).await?;
    if Some(id) == user.session_id() {
        return Ok(see_other("/login"));
    }
    Ok(see_other("/account#sessions"))
}
