//! The organization's audit log: filtered pages and streaming export.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::pagination::encode_cursor;
use crate::db::repo::audit::Filter;
use crate::domain::Invalid;
use crate::domain::audit::ORG_AUDIT_ACTIONS;
use crate::error::{AppError, Result};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::services::audit::{self, ExportFormat};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/audit", get(list))
        .route("/api/v1/orgs/{org}/audit/export", get(export))
}

/// The filters of the audit list and export; the list's page and the export's format are
/// documented by each operation.
#[derive(Deserialize, Default, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// exactly this action (another name is 400)
    #[param(schema_with = super::openapi::audit_action_or_blank)]
    pub action: Option<String>,
    #[param(nullable = false)]
    pub resource_type: Option<String>,
    #[param(nullable = false)]
    pub resource_id: Option<String>,
    #[param(nullable = false)]
    pub actor_id: Option<String>,
    /// inclusive: an RFC 3339 time or a date
    #[param(schema_with = super::openapi::time_or_date_or_blank)]
    pub since: Option<String>,
    /// exclusive: an RFC 3339 time or a date
    #[param(schema_with = super::openapi::time_or_date_or_blank)]
    pub until: Option<String>,
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub cursor: Option<String>,
    #[param(ignore)]
    pub format: Option<String>,
}

fn time_param(v: Option<String>, name: &'static str) -> Result<Option<String>, Invalid> {
    let Some(raw) = v.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| Invalid::new(name, "Enter a date (YYYY-MM-DD) or an RFC 3339 time."))?;
    Ok(Some(crate::domain::fmt_time(parsed)))
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// An action filter outside the vocabulary is a typo, not a wish for an empty log.
fn action_param(v: Option<String>) -> Result<Option<String>, Invalid> {
    let action = nonempty(v);
    match &action {
        Some(a) if !ORG_AUDIT_ACTIONS.contains(&a.as_str()) => Err(Invalid::new(
            "action",
            format!(
                "There is no audit action \"{a}\"; the README lists them (e.g. member.invited)."
            ),
        )),
        _ => Ok(action),
    }
}

impl AuditQuery {
    /// The filters, or every one that is wrong.
    pub fn filter(&self) -> Result<Filter> {
        let mut errors = Vec::new();
        let mut check =
            |r: Result<Option<String>, Invalid>| r.map_err(|e| errors.push(e)).ok().flatten();
        let action = check(action_param(self.action.clone()));
        let since = check(time_param(self.since.clone(), "since"));
        let until = check(time_param(self.until.clone(), "until"));
        if !errors.is_empty() {
            return Err(AppError::invalid_as("invalid_query", errors));
        }
        Ok(Filter {
            action,
            resource_type: nonempty(self.resource_type.clone()),
            resource_id: nonempty(self.resource_id.clone()),
            actor_id: nonempty(self.actor_id.clone()),
            since,
            until,
        })
    }

    pub fn before_seq(&self) -> Result<Option<i64>> {
        let page = super::pagination::Page {
            limit: None,
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        };
        page.after()?
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| AppError::bad_request("invalid_query", "cursor is not valid"))
            })
            .transpose()
    }

    pub fn limit(&self) -> Result<i64> {
        super::pagination::Page {
            limit: self.limit,
            cursor: None,
        }
        .limit()
        .map(|l| l as i64)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/audit",
    tag = "audit",
    summary = "Audit rows, newest first, filtered (audit.view)",
    params(OrgPath, AuditQuery, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<crate::services::audit::Entry>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let (rows, next) = audit::query(&s.svc, &ctx, q.filter()?, q.before_seq()?, q.limit()?).await?;
    let items: Vec<_> = rows.iter().map(audit::export_json).collect();
    Ok(super::items(
        &items,
        next.map(|n| encode_cursor(&n.to_string())),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/audit/export",
    tag = "audit",
    summary = "Stream the filtered audit rows as CSV or NDJSON",
    params(OrgPath, AuditQuery, ExportFormatQuery),
    responses(
        (status = 200, description = "Every matching row, newest first, streamed", content((String = "application/x-ndjson"), (String = "text/csv")), headers(("Content-Disposition" = String, description = ""))),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn export(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let format = export_format(q.format.as_deref())?;
    let slug = ctx.org().slug.clone();
    let stream = audit::export(s.svc.db.clone(), ctx, q.filter()?, format)?;
    Ok(export_response(stream, format, &format!("audit-{slug}")))
}

/// `?format=`: csv or ndjson (the default).
pub(super) fn export_format(raw: Option<&str>) -> Result<ExportFormat> {
    match raw.unwrap_or("ndjson") {
        "csv" => Ok(ExportFormat::Csv),
        "ndjson" => Ok(ExportFormat::Ndjson),
        _ => Err(AppError::bad_request(
            "invalid_query",
            "format must be csv or ndjson",
        )),
    }
}

/// An export streamed as a download named `name` with the format's extension.
pub(super) fn export_response(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes>> + Send + 'static,
    format: ExportFormat,
    name: &str,
) -> Response {
    let (ctype, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
