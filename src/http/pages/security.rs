//! An organization's security page (`security.manage`): IP allowlist, session and token
//! lifetimes, API rate limit; and ending a member's access from the members page.
use crate::http::extract::{OrgCtx, OrgForm};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render, render_status, see_other};
use crate::db::OrgContext;
use crate::domain::{Invalid, UserId};
use crate::error::{AppError, Result};
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, SecurityPage};
use crate::services::security::{self, SecurityInput, SecurityView};
use crate::services::two_factor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/security", get(show).post(save))
        .route(
            "/o/{org}/members/{user_id}/revoke-access",
            post(revoke_access),
        )
}

fn number(n: Option<u32>) -> String {
    n.map(|v| v.to_string()).unwrap_or_default()
}

async fn page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    v: &SecurityView,
) -> Result<SecurityPage> {
    let title = format!("Security · {}", ctx.org().name);
    let tf = two_factor::org_policy(ctx)?;
    Ok(SecurityPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "security"),
        ip_allowlist: v.ip_allowlist.join("\n"),
        session_idle_minutes: number(v.session_idle_minutes),
        session_max_hours: number(v.session_max_hours),
        token_max_days: number(v.token_max_days),
        api_rate_limit_rpm: number(v.api_rate_limit_rpm),
        your_ip: v.your_ip.clone().unwrap_or_else(|| "unknown".into()),
        lockout: false,
        require_2fa: tf.require_2fa,
        require_2fa_grace_days: tf.require_2fa_grace_days.to_string(),
        require_2fa_enforced_from: tf
            .require_2fa_enforced_from
            .map(crate::domain::format::time_at)
            .unwrap_or_default(),
        errors: FormErrors::default(),
        saved: false,
    })
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<SavedQuery>,
) -> Result<Response> {
    let v = security::get(&ctx, user.ip())?;
    let mut p = page(&s, &user, &ctx, &v).await?;
    p.saved = q.saved.is_some();
    render(&p)
}

#[derive(Deserialize)]
struct SecurityForm {
    #[serde(default)]
    ip_allowlist: String,
    #[serde(default)]
    session_idle_minutes: String,
    #[serde(default)]
    session_max_hours: String,
    #[serde(default)]
    token_max_days: String,
    #[serde(default)]
    api_rate_limit_rpm: String,
    #[serde(default)]
    confirm_lockout: Option<String>,
    #[serde(default)]
    require_2fa: Option<String>,
    #[serde(default)]
    require_2fa_grace_days: String,
}

/// A limit as typed: empty clears it; what is not a whole number is reported with the
/// service's other findings.
fn typed(field: &'static str, raw: &str, unreadable: &mut Vec<Invalid>) -> Option<Option<i64>> {
    let t = raw.trim();
    if t.is_empty() {
        return Some(None);
    }
    match t.parse::<i64>() {
        Ok(n) => Some(Some(n)),
        Err(_) => {
            unreadable.push(Invalid::new(
                field,
                "Enter a whole number, or leave it empty.",
            ));
            None
        }
    }
}

const FIELDS: &[&str] = &[
    "require_2fa",
    "require_2fa_grace_days",
    "ip_allowlist",
    "session_idle_minutes",
    "session_max_hours",
    "token_max_days",
    "api_rate_limit_rpm",
];

async fn save(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<SecurityForm>,
) -> Result<Response> {
    let mut unreadable = Vec::new();
    let input = SecurityInput {
        ip_allowlist: Some(
            f.ip_allowlist
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ),
        session_idle_minutes: typed(
            "session_idle_minutes",
            &f.session_idle_minutes,
            &mut unreadable,
        ),
        session_max_hours: typed("session_max_hours", &f.session_max_hours, &mut unreadable),
        token_max_days: typed("token_max_days", &f.token_max_days, &mut unreadable),
        api_rate_limit_rpm: typed("api_rate_limit_rpm", &f.api_rate_limit_rpm, &mut unreadable),
        confirm_lockout: f.confirm_lockout.as_deref() == Some("true"),
        unreadable,
    };
    let grace = f.require_2fa_grace_days.trim();
    let grace = if grace.is_empty() {
        Ok(None)
    } else {
        grace.parse::<u32>().map(Some).map_err(|_| {
            AppError::invalid(vec![Invalid::new(
                "require_2fa_grace_days",
                "Enter a whole number of days from 0 to 365.",
            )])
        })
    };
    let require = f.require_2fa.as_deref() == Some("true");
    let actor = user.actor();
    // The access policy is checked first, so that a refusal there changes nothing.
    let result = match (security::prepare(&ctx, user.ip(), input), grace) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(prepared), Ok(grace)) => {
            match two_factor::set_org_policy(&s.svc, &ctx, &actor, Some(require), grace).await {
                Err(e) => Err(e),
                Ok(_) => security::store(&s.svc, &ctx, &actor, user.ip(), prepared).await,
            }
        }
    };
    let Err(e) = result else {
        return Ok(see_other(&format!(
            "/o/{}/security?saved=1",
            ctx.org().slug
        )));
    };
    let lockout = matches!(
        e,
        AppError::Conflict {
            code: "lockout_unconfirmed",
            ..
        }
    );
    let Some(errors) = form_errors(&e, FIELDS, "form") else {
        return Err(e);
    };
    let v = security::get(&ctx, user.ip())?;
    let mut p = page(&s, &user, &ctx, &v).await?;
    p.ip_allowlist = f.ip_allowlist;
    p.session_idle_minutes = f.session_idle_minutes;
    p.session_max_hours = f.session_max_hours;
    p.token_max_days = f.token_max_days;
    p.api_rate_limit_rpm = f.api_rate_limit_rpm;
    p.require_2fa = f.require_2fa.as_deref() == Some("true");
    p.require_2fa_grace_days = f.require_2fa_grace_days;
    p.lockout = lockout;
    p.errors = errors;
    let status = if lockout {
        StatusCode::CONFLICT
    } else {
        e.status()
    };
    Ok(shown_at(
        render_status(status, &p)?,
        &format!("/o/{}/security", ctx.org().slug),
    ))
}

#[derive(Deserialize)]
struct Empty {}

async fn revoke_access(
    State(s): State<AppState>,
    Path((_, member)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let member = UserId::parse(&member).ok_or_else(AppError::not_found)?;
    security::revoke_member_access(&s.svc, &ctx, &user.actor(), member).await?;
    Ok(see_other(&format!(
        "/o/{}/members/{member}?access_revoked=1",
        ctx.org().slug
    )))
}
