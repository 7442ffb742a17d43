//! Prometheus metrics over HTTP: the layer that counts every request by its route template,
//! and `GET /metrics` — on the main listener behind a bearer token from the configuration,
//! or open on a listener of its own (`--metrics-listen`).
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::state::AppState;
use crate::metrics::Metrics;

/// The `method` label: the methods the router serves, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts the request under its route template (never the path itself: ids, slugs and
/// tokens stay out of the labels) with its method, status and the time to its response.
pub(super) async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    m.http_request(
        method,
        route.as_ref().map(MatchedPath::as_str),
        res.status().as_u16(),
        started.elapsed(),
    );
    res
}

fn exposition(m: &Metrics) -> Response {
    (
        [
            (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.render(),
    )
        .into_response()
}

/// Whether `headers` carry `Authorization: Bearer <expected>`. Both sides are hashed
/// first and compared in constant time, so neither the token's bytes nor its length
/// show in the time a refusal takes.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    !given.is_empty() && bool::from(a.ct_eq(&b))
}

/// `GET /metrics` on the main listener: only with the configured token. The route exists
/// only when a token is configured (`router`), so without one it is the usual 404.
async fn scrape_with_token(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = s.config.metrics_token.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bearer_matches(&headers, token.expose()) {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            "a valid metrics token is required\n",
        )
            .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return res;
    }
    exposition(&s.svc.metrics)
}

/// The route on the main listener, when a token is configured.
pub(super) fn router(state: &AppState) -> Router<AppState> {
    if state.config.metrics_token.is_some() {
        Router::new().route("/metrics", get(scrape_with_token))
    } else {
        Router::new()
    }
}

async fn scrape_open(State(m): State<Arc<Metrics>>) -> Response {
    exposition(&m)
}

/// What the separate metrics listener serves: `GET /metrics`, nothing else, no token.
pub fn separate_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape_open))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(bearer_matches(&with("Bearer s3cret-token"), "s3cret-token"));
        assert!(!bearer_matches(&with("Bearer s3cret-toke"), "s3cret-token"));
        assert!(!bearer_matches(
            &with("Bearer s3cret-token2"),
            "s3cret-token"
        ));
        assert!(!bearer_matches(&with("Basic s3cret-token"), "s3cret-token"));
        assert!(!bearer_matches(&with("Bearer "), ""));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret-token"));
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
