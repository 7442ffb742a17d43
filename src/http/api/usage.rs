//! Quotas and usage (API.md "Quotas, usage, billing").
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ok;
use super::views::{self, usage as out};
use crate::domain::Micros;
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::services::quota::{self, QuotaInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/usage", get(usage))
        .route("/api/v1/orgs/{org}/usage.csv", get(usage_csv))
        .route("/api/v1/orgs/{org}/quota", get(show).patch(update))
        .route("/api/v1/orgs/{org}/invoices", get(invoices))
        .route("/api/v1/orgs/{org}/invoices/{id}", get(invoice))
        .route(
            "/api/v1/orgs/{org}/invoices/{id}/credit-notes",
            get(list_credit_notes).post(issue_credit_note),
        )
        .route("/api/v1/orgs/{org}/notifications", get(notifications))
        .route(
            "/api/v1/orgs/{org}/quota/webhook-deliveries",
            get(webhook_deliveries),
        )
        .route(
            "/api/v1/orgs/{org}/notifications/{id}/read",
            axum::routing::post(read_notification),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/notifications",
    tag = "usage",
    summary = "The caller's notifications in the organization (quota alerts), newest first",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = ListPage<out::NotificationOut>),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn notifications(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    let list = crate::services::notifications::mine(&s.svc, &ctx).await?;
    Ok(super::items(
        &views::all::<_, out::NotificationOut>(&list),
        None,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/notifications/{id}/read",
    tag = "usage",
    summary = "Mark one of the caller's notifications read",
    params(OrgPath, IdPath),
    responses(
        (status = 204, description = "Marked read"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn read_notification(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    crate::services::notifications::mark_read(&s.svc, &ctx, id).await?;
    Ok(super::no_content())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// YYYY-MM (default: the current period)
    #[serde(default)]
    #[param(
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
        nullable = false
    )]
    period: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/usage",
    tag = "usage",
    summary = "Usage of a period: totals, by model, by member, by day, the quota and every limit that applies to the caller",
    params(OrgPath, UsageQuery),
    responses(
        (status = 200, description = "Success", body = out::UsageReportOut),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn usage(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response> {
    let report = quota::report(&s.svc, &ctx, q.period, s.svc.now()).await?;
    Ok(ok(&out::UsageReportOut::from(&report)))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/quota",
    tag = "usage",
    summary = "Quota settings",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = quota::QuotaView),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&quota::settings(&s.svc, &ctx).await?))
}

/// For the limits, `null` means no limit (for credits: the plan's).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    /// micro-USD; null: the plan's credits
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    monthly_credits_micros: Option<Option<Micros>>,
    /// null: no limit
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    monthly_requests: Option<Option<i64>>,
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    rate_limit_rpm: Option<Option<i64>>,
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    rate_limit_tpm: Option<Option<i64>>,
    #[schema(schema_with = super::openapi::limit_or_null)]
    #[serde(default, deserialize_with = "super::present")]
    member_monthly_credits_micros: Option<Option<Micros>>,
    #[schema(minimum = 1, maximum = 28)]
    #[serde(default)]
    billing_anchor_day: Option<u32>,
    #[schema(max_items = 10, value_type = Option<Vec<crate::domain::schemas::Percent>>)]
    #[serde(default)]
    alert_thresholds: Option<Vec<u8>>,
    /// alerts are POSTed here, signed; null: none
    #[schema(max_length = 2048, pattern = "^https?://[^\\s/]\\S*$")]
    #[serde(default, deserialize_with = "super::present")]
    webhook_url: Option<Option<String>>,
    /// write-only HMAC-SHA256 signing secret
    #[schema(min_length = 16, max_length = 256)]
    #[serde(default, deserialize_with = "super::present")]
    webhook_secret: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/quota",
    tag = "usage",
    summary = "Change limits (credits, requests, rates, member cap), the billing anchor day and alert thresholds (quota.manage)",
    params(OrgPath),
    request_body = QuotaBody,
    responses(
        (status = 200, description = "Success", body = quota::QuotaView),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn update(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<QuotaBody>,
) -> Result<Response> {
    let v = quota::patch(
        &s.svc,
        &ctx,
        &user.actor(),
        QuotaInput {
            monthly_credits_micros: b.monthly_credits_micros,
            monthly_requests: b.monthly_requests,
            rate_limit_rpm: b.rate_limit_rpm,
            rate_limit_tpm: b.rate_limit_tpm,
            member_monthly_credits_micros: b.member_monthly_credits_micros,
            billing_anchor_day: b.billing_anchor_day,
            alert_thresholds: b.alert_thresholds,
            webhook_url: b.webhook_url,
            webhook_secret: b.webhook_secret,
            unreadable: Vec::new(),
        },
    )
    .await?;
    Ok(ok(&v))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/quota/webhook-deliveries",
    tag = "usage",
    summary = "Alert webhook deliveries and their status (pending, delivered, failed; attempts, last status code)",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = ListPage<out::DeliveryOut>),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn webhook_deliveries(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
) -> Result<Response> {
    let list = quota::deliveries(&s.svc, &ctx).await?;
    Ok(super::items(
        &views::all::<_, out::DeliveryOut>(&list),
        None,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/invoices",
    tag = "usage",
    summary = "Invoices of closed billing periods, newest first (billing.view)",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = ListPage<out::InvoiceOut>),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn invoices(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    let list = crate::services::invoices::list(&s.svc, &ctx).await?;
    Ok(super::items(&views::all::<_, out::InvoiceOut>(&list), None))
}

/// One invoice as JSON, or as CSV when the id ends in `.csv`.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/invoices/{id}",
    tag = "usage",
    summary = "One invoice with its line items by model; `{id}.csv` gives it as CSV",
    params(OrgPath, InvoicePath),
    responses(
        (status = 200, description = "The invoice with its credit notes (as CSV when the id ends in .csv)", content((out::CreditedInvoiceOut = "application/json"), (String = "text/csv"))),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn invoice(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let (id, as_csv) = match id.strip_suffix(".csv") {
        Some(id) => (id.to_string(), true),
        None => (id, false),
    };
    let inv = crate::services::invoices::get(&s.svc, &ctx, id).await?;
    if !as_csv {
        return Ok(ok(&out::CreditedInvoiceOut::from(&inv)));
    }
    let body = crate::services::invoices::csv(&inv);
    let disposition = format!(
        "attachment; filename=\"invoice-{}.csv\"",
        inv.invoice.period
    );
    Ok(axum::response::IntoResponse::into_response((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/invoices/{id}/credit-notes",
    tag = "usage",
    summary = "The credit notes of an invoice, oldest first (billing.view)",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "Success", body = ListPage<out::CreditNoteOut>),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list_credit_notes(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let notes = crate::services::invoices::credit_notes(&s.svc, &ctx, id).await?;
    Ok(super::items(
        &views::all::<_, out::CreditNoteOut>(&notes),
        None,
    ))
}

/// A credit note: issued invoices are never edited.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreditNoteBody {
    /// micro-USD, at most the invoice's total less its earlier credit notes
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    amount_micros: i64,
    /// why the invoice is credited: 1-500 characters, no control characters
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/invoices/{id}/credit-notes",
    tag = "usage",
    summary = "Issue a credit note against an invoice (billing.manage); the invoice itself never changes",
    params(OrgPath, IdPath),
    request_body = CreditNoteBody,
    responses(
        (status = 201, description = "Issued", body = out::CreditNoteOut),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn issue_credit_note(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<CreditNoteBody>,
) -> Result<Response> {
    let note = crate::services::invoices::issue_credit_note(
        &s.svc,
        &ctx,
        &user.actor(),
        id,
        Micros::new(b.amount_micros),
        &b.reason,
    )
    .await?;
    Ok(super::created(&out::CreditNoteOut::from(&note)))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/usage.csv",
    tag = "usage",
    summary = "The usage of a period as CSV: a row per day, model and member",
    params(OrgPath, UsageQuery),
    responses(
        (status = 200, description = "A row per day, model and member", content((String = "text/csv")), headers(("Content-Disposition" = String, description = ""))),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn usage_csv(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response> {
    let report = quota::report(&s.svc, &ctx, q.period, s.svc.now()).await?;
    let period = report.period.clone();
    Ok(axum::response::IntoResponse::into_response((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"usage-{period}.csv\""),
            ),
        ],
        quota::report_csv(&report),
    )))
}
