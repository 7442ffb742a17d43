//! Quotas and usage (API.md "Quotas, usage, billing").
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::ok_typed;
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

async fn notifications(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    let list = crate::services::notifications::mine(&s.svc, &ctx).await?;
    Ok(super::items(
        &views::all::<_, out::NotificationOut>(&list),
        None,
    ))
}

async fn read_notification(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    crate::services::notifications::mark_read(&s.svc, &ctx, id).await?;
    Ok(super::no_content())
}

#[derive(Deserialize)]
struct UsageQuery {
    #[serde(default)]
    period: Option<String>,
}

async fn usage(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response> {
    let report = quota::report(&s.svc, &ctx, q.period, s.svc.now()).await?;
    Ok(ok_typed(&out::UsageReportOut::from(&report)))
}

async fn show(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok_typed(&quota::settings(&s.svc, &ctx).await?))
}

/// For the limits, `null` means no limit (for credits: the plan's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    #[serde(default, deserialize_with = "super::present")]
    monthly_credits_micros: Option<Option<Micros>>,
    #[serde(default, deserialize_with = "super::present")]
    monthly_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::present")]
    rate_limit_rpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::present")]
    rate_limit_tpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::present")]
    member_monthly_credits_micros: Option<Option<Micros>>,
    #[serde(default)]
    billing_anchor_day: Option<u32>,
    #[serde(default)]
    alert_thresholds: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "super::present")]
    webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    webhook_secret: Option<Option<String>>,
}

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
    Ok(ok_typed(&v))
}

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

async fn invoices(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    let list = crate::services::invoices::list(&s.svc, &ctx).await?;
    Ok(super::items(&views::all::<_, out::InvoiceOut>(&list), None))
}

/// One invoice as JSON, or as CSV when the id ends in `.csv`.
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
        return Ok(ok_typed(&out::InvoiceOut::from(&inv)));
    }
    let body = crate::services::invoices::csv(&inv);
    let disposition = format!("attachment; filename=\"invoice-{}.csv\"", inv.period);
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
