//! Browser pages: server-rendered HTML that works without JavaScript; htmx only enhances.
mod account;
mod admin;
mod audit;
mod auth;
mod billing;
mod chart;
mod dashboard;
mod gallery;
mod invite;
mod llm;
mod members;
mod org_frame;
mod orgs;
mod resource_forms;
mod resources;
mod security;
mod settings;
mod sso;
mod teams;
mod two_factor;
mod usage;

use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::extract::{CurrentUser, MaybeUser};
use super::state::AppState;
use super::views::{ErrorPage, Layout, NavOrg, NavUser};
use crate::domain::OrgId;
use crate::error::{ErrorInfo, Result};
use crate::services::identity;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(account::router())
        .merge(security::router())
        .merge(orgs::router())
        .merge(members::router())
        .merge(invite::router())
        .merge(teams::router())
        .merge(settings::router())
        .merge(two_factor::router())
        .merge(sso::router())
        .merge(audit::router())
        .merge(resources::router())
        .merge(gallery::router())
        .merge(llm::router())
        .merge(usage::router())
        .merge(billing::router())
        .merge(admin::router())
        .fallback(not_found)
}

/// Turns every page error into an HTML page, and "not signed in" into the sign-in page.
pub fn html_errors<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(middleware::from_fn(render_errors))
}

async fn render_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let is_api = path.starts_with("/api/") || path == "/api" || path.starts_with("/v1/");
    let res = next.run(req).await;
    if is_api {
        return res;
    }
    let Some(info) = res.extensions().get::<ErrorInfo>().cloned() else {
        return res;
    };
    // An organization that requires two-factor sends its members without it to enrolment.
    if info.status == StatusCode::FORBIDDEN && info.code == "two_factor_required" {
        return Redirect::to("/account/two-factor?required=1").into_response();
    }
    if info.status == StatusCode::UNAUTHORIZED {
        let next = format!("{path}{query}");
        // Still signed in, but not good enough for this organization's session policy:
        // the sign-in page must ask again rather than send a signed-in user straight back.
        let again = if info.code == "session_expired" {
            "&reauth=1"
        } else {
            ""
        };
        let target = format!("/login?next={}{again}", urlencode(&next));
        return Redirect::to(&target).into_response();
    }
    error_page(info.status, &info.message, Layout::default())
}

pub fn error_page(status: StatusCode, message: &str, layout: Layout) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found".to_string(),
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::TOO_MANY_REQUESTS => "Slow down".to_string(),
        s if s.is_server_error() => "Something went wrong".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    let page = ErrorPage {
        layout: Layout {
            title: heading.clone(),
            ..layout
        },
        status: status.as_u16(),
        heading,
        message: message.to_string(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

async fn not_found(MaybeUser(user): MaybeUser, State(s): State<AppState>) -> Response {
    let layout = match &user {
        Some(u) => layout(&s, u, "Not found", None).await.unwrap_or_default(),
        None => Layout::default(),
    };
    error_page(
        StatusCode::NOT_FOUND,
        "There is nothing at this address.",
        layout,
    )
}

/// A query-string value, percent-encoded (UTF-8).
pub fn urlencode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // Unreserved characters and `/` (paths are passed whole, e.g. `next=/o/acme`) stay.
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, KEEP).to_string()
}

/// Only same-site paths are followed after sign-in (no open redirect).
pub fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// The header data of a page for a signed-in user; `current` overrides the stored
/// current organization (on an organization's own pages).
pub async fn layout(
    s: &AppState,
    user: &CurrentUser,
    title: &str,
    current: Option<OrgId>,
) -> Result<Layout> {
    let me = identity::me(&s.svc, user.user.id).await?;
    let current = current.or(me.current_organization_id);
    let labels = crate::domain::format::told_apart(
        me.memberships
            .iter()
            .map(|m| (m.organization.name.as_str(), m.organization.slug.clone())),
    );
    let orgs: Vec<NavOrg> = me
        .memberships
        .iter()
        .zip(labels)
        .map(|(m, label)| NavOrg {
            id: m.organization.id.to_string(),
            name: m.organization.name.clone(),
            label,
            slug: m.organization.slug.clone(),
            role: m.role.to_string(),
            personal: m.organization.kind == crate::domain::OrgKind::Personal,
            current: Some(m.organization.id) == current,
        })
        .collect();
    Ok(Layout {
        title: title.to_string(),
        user: Some(NavUser {
            name: me.user.name.clone(),
            email: me.user.email.clone(),
            is_superuser: me.user.is_superuser,
        }),
        csrf_token: user.csrf_token().to_string(),
        current_org: orgs.iter().find(|o| o.current).cloned(),
        orgs,
    })
}

pub fn render(t: &impl Template) -> Result<Response> {
    Ok(Html(t.render()?).into_response())
}

pub fn render_status(status: StatusCode, t: &impl Template) -> Result<Response> {
    Ok((status, Html(t.render()?)).into_response())
}

/// 303 See Other: after a form post, the browser loads the target with GET.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded_as_utf8_and_paths_keep_their_slashes() {
        assert_eq!(super::urlencode("/o/acme"), "/o/acme");
        assert_eq!(super::urlencode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(super::urlencode("Łódź"), "%C5%81%C3%B3d%C5%BA");
        assert_eq!(super::urlencode("x-y_z.~"), "x-y_z.~");
    }
}
