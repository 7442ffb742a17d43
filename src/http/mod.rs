//! The axum router: API, pages, assets, health, and the layers around them.
pub mod api;
mod assets;
pub mod extract;
pub mod gateway;
pub mod metrics;
pub mod pages;
pub mod state;
pub mod views;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use api::openapi::{Health, HealthStatus};
use state::AppState;

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'";

pub fn router(state: AppState) -> Router {
    install_panic_hook();
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.config.request_timeout;
    let counted = state.svc.metrics.clone();
    let body_limit = state.config.body_limit_bytes;
    let hsts = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let routes = Router::new()
        .merge(api::router_with_prefix(state.config.upload_limit_bytes))
        .merge(pages::router())
        .merge(assets::router())
        .merge(metrics::router(&state))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // Debug builds only: lets the tests prove a panic answers a clean 500.
    #[cfg(debug_assertions)]
    let routes = routes
        .route("/api/v1/debug/panic", get(debug_panic))
        .route("/debug/panic", get(debug_panic));
    // The gateway stays outside the request timeout (completions and streams may run for
    // minutes; upstream calls have their own limits), the same-origin check (it is called
    // with bearer tokens, never cookies) and the HTML error pages (it renders OpenAI-style
    // errors); everything below the merge — request id, tracing, compression, security
    // headers, the panic guard — covers both.
    let app = pages::html_errors(routes)
        .layer(middleware::from_fn(same_origin_writes))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .merge(gateway_routes());
    app.layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(panic_response))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let path = loggable_path(req.uri().path());
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %path)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                // Event streams are left uncompressed by the default predicate: each
                // event has to reach the client when it is sent.
                .layer(CompressionLayer::new())
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ))
                // Pages load scripts and styles only from /assets: no inline script or
                // style, no eval, no framing, no plugins.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                ))
                // Only when people reach the server over https (its public URL says so):
                // over plain http the header would be ignored, and a wrong one locks out.
                .option_layer(hsts.then(|| {
                    SetResponseHeaderLayer::if_not_present(
                        header::STRICT_TRANSPORT_SECURITY,
                        HeaderValue::from_static("max-age=31536000"),
                    )
                })),
        )
        // Outermost, so the time counted is the whole stack's. A router's layer wraps each
        // route, so the matched route's template is known here.
        .layer(middleware::from_fn_with_state(counted, metrics::track))
        .with_state(state)
}

fn gateway_routes() -> Router<AppState> {
    let routes = gateway::router();
    #[cfg(debug_assertions)]
    let routes = routes.route("/v1/debug/panic", get(debug_panic));
    routes
}

#[cfg(debug_assertions)]
#[allow(clippy::panic)]
async fn debug_panic() -> Response {
    panic!("debug panic route")
}

tokio::task_local! {
    /// Set while a request is handled: where the panic hook leaves the message and place
    /// of a panic for `panic_response` to log, once, with the request id and route.
    static PANIC_NOTE: std::cell::RefCell<Option<String>>;
}

/// A panic inside a request is noted for `panic_response` instead of printed (the default
/// hook would log it a second time, without the request); any other panic goes to the
/// hook that was there before.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let note: String = format!("{message} at {at}").chars().take(300).collect();
            let noted = PANIC_NOTE
                .try_with(|n| *n.borrow_mut() = Some(note))
                .is_ok();
            if !noted {
                previous(info);
            }
        }));
    });
}

/// Marks the bare 500 that `CatchPanicLayer` answers, for `panic_response` to shape.
#[derive(Clone, Copy)]
struct Panicked;

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    res.extensions_mut().insert(Panicked);
    res
}

/// Turns a caught panic into the error the route's clients read (the JSON envelope for
/// /api and /v1, the error page otherwise) and logs it once; the panic message itself is
/// not shown, it may carry anything.
async fn panic_response(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let method = req.method().clone();
    let (res, note) = PANIC_NOTE
        .scope(std::cell::RefCell::new(None), async move {
            let res = next.run(req).await;
            (res, PANIC_NOTE.with(|n| n.borrow_mut().take()))
        })
        .await;
    if res.extensions().get::<Panicked>().is_none() {
        return res;
    }
    let route = route.unwrap_or_else(|| loggable_path(&path).into_owned());
    let panic = note.unwrap_or_default();
    tracing::error!(request_id = %id, method = %method, route = %route, panic = %panic, "request panicked");
    if path == "/api" || path.starts_with("/api/") || path.starts_with("/v1/") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"code": "internal", "message": "internal error"}})),
        )
            .into_response();
    }
    pages::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side; it has been logged.",
        views::Layout::default(),
    )
}

/// The request path as logs may show it: invitation links carry their token in the
/// path, and a token is a secret.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/invite/") {
        Some(rest) => {
            let tail = rest
                .split_once('/')
                .map(|(_, t)| format!("/{t}"))
                .unwrap_or_default();
            std::borrow::Cow::Owned(format!("/invite/[token]{tail}"))
        }
        None => std::borrow::Cow::Borrowed(path),
    }
}

#[utoipa::path(get, path = "/healthz", tag = "health", summary = "Liveness",
    responses((status = 200, description = "Success", body = Health)),
    security(()))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health", summary = "Readiness (database reachable)",
    responses(
        (status = 200, description = "Success", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ),
    security(()))]
pub(crate) async fn readyz(State(s): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), s.svc.db.ping()).await {
        Ok(Ok(())) => Json(Health {
            status: HealthStatus::Ready,
        })
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: HealthStatus::Unavailable,
            }),
        )
            .into_response(),
    }
}

/// Refuses state-changing requests that a browser sent from another origin. With
/// SameSite=Lax cookies and CSRF tokens this is a third, cheap line of defence.
async fn same_origin_writes(req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method
        && let (Some(origin), Some(host)) = (
            req.headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok()),
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok()),
        )
    {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin != "null" && origin_host != host {
            return AppError::Forbidden {
                code: "cross_origin",
                message: "cross-origin request refused".into(),
            }
            .into_response();
        }
    }
    next.run(req).await
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when configured.
pub mod session_cookie {
    use super::state::AppState;
    use crate::http::extract::SESSION_COOKIE;

    use cookie::{Cookie, SameSite, time::Duration};

    fn build(s: &AppState, value: &str, max_age_secs: i64) -> String {
        Cookie::build((SESSION_COOKIE, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(Duration::seconds(max_age_secs))
            .secure(s.config.secure_cookies())
            .build()
            .to_string()
    }

    pub fn set(s: &AppState, token: &str) -> String {
        let max_age = i64::try_from(s.config.session_max_age.as_secs()).unwrap_or(i64::MAX);
        build(s, token, max_age)
    }

    pub fn clear(s: &AppState) -> String {
        build(s, "", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn invitation_tokens_never_reach_the_logs() {
        assert_eq!(
            loggable_path("/invite/abcDEF123/accept"),
            "/invite/[token]/accept"
        );
        assert_eq!(loggable_path("/invite/abcDEF123"), "/invite/[token]");
        assert_eq!(loggable_path("/o/acme/members"), "/o/acme/members");
    }
}
