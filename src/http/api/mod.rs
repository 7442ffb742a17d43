//! JSON API under `/api/v1` (see API.md). Each area owns its router.
mod admin;
pub(crate) use admin::instance_filter as admin_audit_filter;
mod agents;
pub mod audit;
mod auth;
mod llm;
mod me;
mod members;
pub mod openapi;
mod orgs;
pub mod pagination;
mod resources;
mod security;
mod usage;
pub mod views;
mod workflows;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::state::AppState;
use crate::error::AppError;

/// The API routes, with a JSON 404 for any other path under `/api`.
pub fn router_with_prefix(upload_limit: usize) -> Router<AppState> {
    let unknown = || async { AppError::not_found() };
    Router::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(orgs::router())
        .merge(members::router())
        .merge(audit::router())
        .merge(llm::router())
        .merge(security::router())
        .merge(usage::router())
        .merge(resources::router(upload_limit))
        .merge(agents::router())
        .merge(workflows::router())
        .merge(admin::router())
        .route("/api/openapi.json", axum::routing::get(openapi))
        .route("/api", axum::routing::any(unknown))
        .route("/api/{*rest}", axum::routing::any(unknown))
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// The OpenAPI description of this API, generated from the handlers and their types.
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::DOCUMENT.as_str(),
    )
        .into_response()
}

/// 201 with the body as JSON.
pub fn created<T: Serialize>(body: &T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// For PATCH-like bodies: absent → `None` (unchanged), `null` → `Some(None)` (remove or
/// unset), a value → `Some(Some(v))`. Use with `#[serde(default, deserialize_with = …)]`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// 200 with the body as JSON, serialized straight from its type.
pub fn ok<T: Serialize>(body: &T) -> Response {
    axum::Json(body).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

// Serialized straight into the body: going through a `json!` value first copied every
// item into a tree of maps (a tenth of a list request's CPU time).
/// A page of a list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<'a, T> {
    items: &'a [T],
    /// pass as ?cursor= for the next page
    next_cursor: Option<String>,
}

/// A whole list, never paged.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemsOnly<T> {
    pub items: Vec<T>,
}

pub fn items<T: Serialize>(items: &[T], next_cursor: Option<String>) -> Response {
    axum::Json(Page { items, next_cursor }).into_response()
}
