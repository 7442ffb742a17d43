//! The one error type. Rendered as the JSON envelope of API.md for `/api` and `/v1`, and
//! as an HTML page for browser pages (see `http::pages::html_errors`). Internal causes
//! are logged with the request's id and never shown.
use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::DbError;
use crate::domain::Invalid;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("not signed in")]
    Unauthorized,
    /// The credential is valid but no longer good enough here (an organization's stricter
    /// session or token lifetime): sign in again, or make a new token.
    #[error("{message}")]
    Reauthenticate { code: &'static str, message: String },
    /// The same for an unknown email and a wrong password.
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// The password was right; the second factor is missing, wrong or replayed (401).
    #[error("{message}")]
    TwoFactor { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("not found")]
    NotFound { code: &'static str },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// Something the request depends on is missing (no provider key to call with).
    #[error("{message}")]
    FailedDependency { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// A model provider failed or answered with something unusable.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    #[error("internal error")]
    Internal(String),
}

/// What a page-rendering layer needs to turn an error response into HTML.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AppError {
    pub fn not_found() -> Self {
        AppError::NotFound { code: "not_found" }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Validation failures, with the field each concerns. Several problems with one field
    /// are told together; a field inside a document (`settings.invitation_ttl_days`) is
    /// also reported under the document's own name (`settings`), which is what the client
    /// sent. The message is the reasons, which are sentences that name no field.
    pub fn invalid(errors: Vec<Invalid>) -> Self {
        Self::invalid_as("validation_failed", errors)
    }

    /// Like `invalid`, with another code (`invalid_query` for query parameters).
    pub fn invalid_as(code: &'static str, errors: Vec<Invalid>) -> Self {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut add = |field: &str, reason: &str| match fields.get_mut(field) {
            Some(m) if !m.contains(reason) => {
                m.push(' ');
                m.push_str(reason);
            }
            Some(_) => {}
            None => {
                fields.insert(field.to_string(), reason.to_string());
            }
        };
        for e in &errors {
            add(e.field, &e.reason);
            if let Some((document, _)) = e.field.split_once('.') {
                add(document, &e.reason);
            }
        }
        let mut message = String::new();
        for e in &errors {
            if !message.contains(&e.reason) {
                if !message.is_empty() {
                    message.push(' ');
                }
                message.push_str(&e.reason);
            }
        }
        AppError::BadRequest {
            code,
            message,
            fields,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized
            | AppError::InvalidCredentials
            | AppError::Reauthenticate { .. }
            | AppError::TwoFactor { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::FailedDependency { .. } => StatusCode::FAILED_DEPENDENCY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::TwoFactor { code, .. }
            | AppError::NotFound { code }
            | AppError::Conflict { code, .. }
            | AppError::Unprocessable { code, .. }
            | AppError::FailedDependency { code, .. }
            | AppError::TooManyRequests { code, .. }
            | AppError::Reauthenticate { code, .. }
            | AppError::BadGateway { code, .. } => code,
            AppError::Unauthorized => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::Internal(_) => "internal",
        }
    }

    /// The text shown to the client: never the internal cause.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "Something went wrong on our side; it has been logged.".into(),
            AppError::NotFound {
                code: "invitation_invalid",
            } => {
                "This invitation is not valid: it may have expired, been cancelled or used.".into()
            }
            AppError::NotFound { .. } => "Not found.".into(),
            AppError::Unauthorized => "Sign in first.".into(),
            other => other.to_string(),
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<crate::auth::HashError> for AppError {
    fn from(e: crate::auth::HashError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(format!("template: {e}"))
    }
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::invalid(vec![e])
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "internal error");
        }
        let mut body = json!({"code": self.code(), "message": self.public_message()});
        if let AppError::BadRequest { fields, .. } = &self
            && !fields.is_empty()
        {
            body["fields"] = json!(fields);
        }
        let info = ErrorInfo {
            status,
            code: self.code(),
            message: self.public_message(),
        };
        let mut res = (status, Json(json!({ "error": body }))).into_response();
        if let AppError::TooManyRequests {
            retry_after_secs: Some(s),
            ..
        } = self
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.extensions_mut().insert(info);
        res
    }
}
