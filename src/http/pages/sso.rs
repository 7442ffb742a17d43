//! Single sign-on in the browser: "Sign in with single sign-on" (an email whose domain an
//! organization routes to its provider), the way to the provider and back
//! (`/sso/{org}/start`, `/sso/{org}/callback`), and the organization's single sign-on
//! settings (`/o/{org}/settings/sso`, `security.manage`).
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cookie::{Cookie, SameSite, time::Duration};
use serde::Deserialize;

use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render, render_status, see_other, urlencode};
use crate::db::OrgContext;
use crate::db::scope::has_permission;
use crate::domain::sso::fields;
use crate::domain::{OrgKind, Permission, Role};
use crate::error::{AppError, Result};
use crate::http::extract::{CurrentUser, OrgCtx, OrgForm, PublicForm, cookie_value};
use crate::http::session_cookie;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, Layout, SsoLoginPage, SsoSettingsPage, SsoTestView};
use crate::services::ClientMeta;
use crate::services::sso::{self, Callback, STATE_COOKIE, SsoInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/sso", get(sso_login_form).post(sso_login))
        .route("/sso/{org}/start", get(start))
        .route("/sso/{org}/callback", get(callback))
        .route("/o/{org}/settings/sso", get(show).post(save))
        .route("/o/{org}/settings/sso/test", post(test))
        .route("/o/{org}/settings/sso/remove", post(remove))
}

// ---------------------------------------------------------------- signing in

fn login_layout() -> Layout {
    Layout {
        title: "Sign in with single sign-on".into(),
        ..Default::default()
    }
}

#[derive(Deserialize, Default)]
struct EmailQuery {
    #[serde(default)]
    email: Option<String>,
}

async fn sso_login_form(Query(q): Query<EmailQuery>) -> Result<Response> {
    render(&SsoLoginPage {
        layout: login_layout(),
        email: q.email.unwrap_or_default(),
        errors: FormErrors::default(),
    })
}

#[derive(Deserialize)]
struct SsoLoginForm {
    #[serde(default)]
    email: String,
}

/// The email's domain decides the organization; its provider is where the browser goes.
async fn sso_login(
    State(s): State<AppState>,
    PublicForm(f): PublicForm<SsoLoginForm>,
) -> Result<Response> {
    let refused = |status: StatusCode, message: &str, email: String| {
        render_status(
            status,
            &SsoLoginPage {
                layout: login_layout(),
                email,
                errors: FormErrors::one("email", message),
            },
        )
    };
    match sso::route_for_email(&s.svc, &f.email).await {
        Ok(Some(org)) => Ok(see_other(&format!(
            "/sso/{org}/start?email={}",
            urlencode(f.email.trim())
        ))),
        Ok(None) => refused(
            StatusCode::NOT_FOUND,
            "No organization signs in people of this email domain with single sign-on; sign in with your password.",
            f.email,
        ),
        Err(AppError::BadRequest { .. }) => refused(
            StatusCode::BAD_REQUEST,
            "Enter an email address like name@example.com.",
            f.email,
        ),
        Err(e) => Err(e),
    }
}

/// The state cookie: sent back only to this organization's callback, for the few minutes
/// a sign-in may take (SameSite=Lax: the provider's redirect is a top-level navigation).
fn state_cookie(s: &AppState, org: &str, value: &str, max_age_secs: i64) -> String {
    Cookie::build((STATE_COOKIE, value))
        .path(format!("/sso/{org}/"))
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(Duration::seconds(max_age_secs))
        .secure(s.config.secure_cookies())
        .build()
        .to_string()
}

async fn start(
    State(s): State<AppState>,
    meta: ClientMeta,
    Path(org): Path<String>,
    Query(q): Query<EmailQuery>,
) -> Result<Response> {
    let started = sso::start(&s.svc, &s.throttle, &org, q.email.as_deref(), &meta).await?;
    // The callback is addressed by the organization's id, whatever `org` said here.
    let cookie = state_cookie(
        &s,
        &started.org_id.to_string(),
        &started.state,
        sso::LOGIN_TTL_MINUTES * 60,
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, started.authorize_url),
        ],
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn callback(
    State(s): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response> {
    let cb = Callback {
        code: q.code,
        state: q.state,
        error: q.error,
        cookie_state: cookie_value(&headers, STATE_COOKIE).map(str::to_string),
    };
    let clear = state_cookie(&s, &org, "", 0);
    match sso::finish(&s.svc, s.session_policy(), &s.throttle, &org, cb, &meta).await {
        Ok(signed) => {
            let mut res = see_other(&format!("/o/{}", signed.org_slug));
            for c in [
                session_cookie::set(&s, &signed.session.session_token),
                clear,
            ] {
                if let Ok(v) = c.parse() {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            Ok(res)
        }
        Err(e) => {
            let mut res = e.into_response();
            if let Ok(v) = clear.parse() {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(res)
        }
    }
}

// ---------------------------------------------------------------- settings

fn page_url(ctx: &OrgContext) -> String {
    format!("/o/{}/settings/sso", ctx.org().slug)
}

/// The page with what is stored.
async fn settings_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
) -> Result<SsoSettingsPage> {
    let title = format!("Single sign-on · {}", ctx.org().name);
    let can_manage = has_permission(ctx, Permission::SecurityManage);
    let stored = if can_manage {
        sso::settings(&s.svc, ctx).await?
    } else {
        None
    };
    let mut page = SsoSettingsPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "settings"),
        slug: ctx.org().slug.clone(),
        can_manage,
        personal: ctx.org().kind == OrgKind::Personal,
        configured: stored.is_some(),
        issuer: String::new(),
        client_id: String::new(),
        secret_hint: None,
        allowed_domains: String::new(),
        default_role: Role::Member.as_str().to_string(),
        sso_only: false,
        redirect_uri: sso::redirect_uri(&s.svc, ctx.org_id()),
        errors: FormErrors::default(),
        notice: None,
        test: None,
    };
    if let Some(v) = stored {
        page.issuer = v.issuer;
        page.client_id = v.client_id;
        page.secret_hint = v.client_secret_hint;
        page.allowed_domains = v.allowed_domains.join("\n");
        page.default_role = v.default_role.as_str().to_string();
        page.sso_only = v.sso_only;
    }
    Ok(page)
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    removed: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<NoticeQuery>,
) -> Result<Response> {
    let mut page = settings_page(&s, &user, &ctx).await?;
    if q.saved.is_some() {
        page.notice = Some("Single sign-on saved.".into());
    } else if q.removed.is_some() {
        page.notice = Some("Single sign-on removed.".into());
    }
    render(&page)
}

#[derive(Deserialize)]
struct SsoForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    remove_secret: Option<String>,
    #[serde(default)]
    allowed_domains: String,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    sso_only: Option<String>,
}

/// Domains as typed: one per line, or separated by commas or spaces.
fn domains_of(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

fn input_of(f: &SsoForm) -> SsoInput {
    let secret = f.client_secret.trim();
    SsoInput {
        issuer: Some(f.issuer.clone()),
        client_id: Some(f.client_id.clone()),
        // An empty secret field keeps the secret; the box removes it.
        client_secret: if f.remove_secret.is_some() {
            Some(None)
        } else if secret.is_empty() {
            None
        } else {
            Some(Some(secret.to_string()))
        },
        allowed_domains: Some(domains_of(&f.allowed_domains)),
        default_role: Some(f.default_role.clone()),
        sso_only: Some(f.sso_only.is_some()),
    }
}

const FIELDS: &[&str] = &[
    fields::ISSUER,
    fields::CLIENT_ID,
    fields::CLIENT_SECRET,
    fields::ALLOWED_DOMAINS,
    fields::DEFAULT_ROLE,
];

async fn save(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<SsoForm>,
) -> Result<Response> {
    match sso::save(&s.svc, &ctx, &user.actor(), input_of(&f)).await {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", page_url(&ctx)))),
        Err(e) => {
            let fallback = if matches!(e, AppError::Conflict { .. }) {
                fields::ALLOWED_DOMAINS
            } else {
                "form"
            };
            let Some(errors) = form_errors(&e, FIELDS, fallback) else {
                return Err(e);
            };
            let mut page = settings_page(&s, &user, &ctx).await?;
            page.issuer = f.issuer;
            page.client_id = f.client_id;
            page.allowed_domains = f.allowed_domains;
            page.default_role = f.default_role;
            page.sso_only = f.sso_only.is_some();
            page.errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &page_url(&ctx)))
        }
    }
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    issuer: String,
}

async fn test(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<TestForm>,
) -> Result<Response> {
    let issuer = Some(f.issuer.clone()).filter(|i| !i.trim().is_empty());
    let result = sso::test_connection(&s.svc, &ctx, issuer).await;
    let mut page = settings_page(&s, &user, &ctx).await?;
    if !f.issuer.trim().is_empty() {
        page.issuer = f.issuer;
    }
    match result {
        Ok(r) => {
            page.test = Some(SsoTestView {
                ok: r.ok,
                message: r.message,
                authorization_endpoint: r.authorization_endpoint.unwrap_or_default(),
                latency_ms: r.latency_ms,
            });
            Ok(shown_at(render(&page)?, &page_url(&ctx)))
        }
        Err(e) => {
            let Some(errors) = form_errors(&e, FIELDS, fields::ISSUER) else {
                return Err(e);
            };
            page.errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &page_url(&ctx)))
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn remove(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    match sso::remove(&s.svc, &ctx, &user.actor()).await {
        Ok(()) | Err(AppError::NotFound { .. }) => {
            Ok(see_other(&format!("{}?removed=1", page_url(&ctx))))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::OrgNav;

    #[test]
    fn domains_are_read_from_lines_commas_and_spaces() {
        assert_eq!(
            domains_of("example.com\r\ncorp.example.org, b.example  c.example"),
            vec!["example.com", "corp.example.org", "b.example", "c.example"]
        );
    }

    fn page() -> SsoSettingsPage {
        SsoSettingsPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "settings", |_| true),
            slug: "acme".into(),
            can_manage: true,
            personal: false,
            configured: true,
            issuer: "https://login.example.com".into(),
            client_id: "xagent".into(),
            secret_hint: Some("abc…wxyz".into()),
            allowed_domains: "example.com".into(),
            default_role: "viewer".into(),
            sso_only: true,
            redirect_uri: "https://x.example/sso/1/callback".into(),
            errors: FormErrors::one("sso.issuer", "Enter the issuer's address."),
            notice: None,
            test: Some(SsoTestView {
                ok: false,
                message: "Discovery failed.".into(),
                authorization_endpoint: String::new(),
                latency_ms: 3,
            }),
        }
    }

    #[test]
    fn the_settings_page_shows_the_hint_never_a_secret_and_ties_errors_to_fields() {
        let html = page().render().unwrap();
        assert!(html.contains("abc…wxyz"));
        assert!(html.contains("id=\"sso-issuer-error\""));
        assert!(html.contains("aria-describedby=\"sso-issuer-error\""));
        assert!(html.contains("https://x.example/sso/1/callback"));
        assert!(html.contains("<option value=\"viewer\" selected>"));
        assert!(html.contains("id=\"sso-test-result\""));
        assert!(html.contains("action=\"/o/acme/settings/sso/remove\""));
        let mut p = page();
        p.can_manage = false;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"sso-form\""));
        assert!(!html.contains("abc…wxyz"));
    }
}
