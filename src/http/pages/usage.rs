//! The usage page: every limit that applies to the viewer with a bar, the period's totals,
//! the daily cost chart (SVG drawn here), breakdowns by model and member, invoices, quota
//! alerts, and the quota form for those who may change it. All from `GET …/usage`'s report.
use crate::domain::Permission;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Deserialize;

use super::chart::daily_cost_svg;
use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render_status, see_other};
use crate::db::OrgContext;
use crate::db::repo::usage::Totals;
use crate::db::scope::has_permission;
use crate::domain::period::period_at;
use crate::domain::{Invalid, Micros, format};
use crate::error::Result;
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{
    FormErrors, InvoiceRow, NotificationRow, QuotaFields, UsageMeter, UsagePage, UsageRow,
};
use crate::services::quota::LimitKind;
use crate::services::{invoices, notifications, quota};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/usage", get(show))
        .route("/o/{org}/usage/quota", post(save_quota))
        .route("/o/{org}/usage/notifications/{id}/read", post(read))
}

fn usage_url(ctx: &OrgContext) -> String {
    format!("/o/{}/usage", ctx.org().slug)
}

fn row(label: String, sub: String, t: &Totals) -> UsageRow {
    UsageRow {
        label,
        sub,
        requests: format::count(t.requests),
        input_tokens: format::count(t.input_tokens),
        output_tokens: format::count(t.output_tokens),
        cost: t.cost_micros.money(),
    }
}

/// A bar per counted limit; rate limits (no running count) as sentences.
fn limits_of(limits: &[quota::Limit]) -> (Vec<UsageMeter>, Vec<String>) {
    let mut meters = Vec::new();
    let mut rates = Vec::new();
    for l in limits {
        let (name, limit) = (l.name, l.limit);
        let Some(used) = l.used else {
            rates.push(match name {
                LimitKind::RateTpm => format!(
                    "{} tokens per minute, for the whole organization",
                    format::count(limit)
                ),
                LimitKind::RateRpm
                | LimitKind::OrgCredits
                | LimitKind::OrgRequests
                | LimitKind::MemberCredits => format!(
                    "{} requests per minute, for the whole organization",
                    format::count(limit)
                ),
            });
            continue;
        };
        let money = |m| Micros::new(m).money();
        let (label, show): (&str, fn(i64) -> String) = match name {
            LimitKind::OrgCredits => ("The organization's AI credits", money),
            LimitKind::MemberCredits => ("Your AI credits in this organization", money),
            LimitKind::OrgRequests | LimitKind::RateRpm | LimitKind::RateTpm => {
                ("The organization's requests", format::count)
            }
        };
        let percent = l.percent.unwrap_or(0.0);
        let level = if used >= limit {
            "full"
        } else if percent >= 80.0 {
            "warn"
        } else {
            "ok"
        };
        meters.push(UsageMeter {
            id: format!("limit-{}", name.as_str().replace('_', "-")),
            label: label.to_string(),
            used,
            max: Some(limit),
            text: format!("{} of {} ({percent}%)", show(used), show(limit)),
            percent: (percent.round() as i64).clamp(0, 100),
            level: level.to_string(),
        });
    }
    (meters, rates)
}

/// Every day of the period with its cost (days without calls at zero).
fn days_of(
    start: NaiveDate,
    end: NaiveDate,
    by_day: &[(String, Micros)],
) -> Vec<(NaiveDate, Micros)> {
    let mut out = Vec::new();
    let mut d = start;
    while d < end && out.len() < 31 {
        let key = d.format("%Y-%m-%d").to_string();
        let cost = by_day
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
            .unwrap_or_default();
        out.push((d, cost));
        d = d + Days::new(1);
    }
    out
}

/// Dollars as the form shows them: every digit that is there (`25`, `1.234567`), so that
/// saving the form unchanged keeps the amount.
fn form_dollars(amount: Option<Micros>) -> String {
    amount
        .map(|m| {
            let d = m.usd();
            d.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .unwrap_or_default()
}

fn quota_fields(q: &quota::QuotaView) -> QuotaFields {
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    QuotaFields {
        monthly_credits: form_dollars(q.monthly_credits_micros),
        monthly_requests: num(q.monthly_requests),
        rate_limit_rpm: num(q.rate_limit_rpm),
        rate_limit_tpm: num(q.rate_limit_tpm),
        member_monthly_credits: form_dollars(q.member_monthly_credits_micros),
        billing_anchor_day: q.billing_anchor_day.to_string(),
        alert_thresholds: q
            .alert_thresholds
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        webhook_url: q.webhook_url.clone().unwrap_or_default(),
    }
}

async fn usage_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    period: Option<String>,
) -> Result<UsagePage> {
    let now = s.svc.now();
    let report = quota::report(&s.svc, ctx, period, now).await?;
    let invoices = if has_permission(ctx, Permission::BillingView) {
        Some(invoices::list(&s.svc, ctx).await?)
    } else {
        None
    };
    let notes = notifications::mine(&s.svc, ctx).await?;
    let title = format!("Usage · {}", ctx.org().name);
    let layout = layout(s, user, &title, Some(ctx.org_id())).await?;
    usage_view(layout, ctx, &report, invoices, notes, now)
}

/// The usage page from what it read (no I/O): the report of one period, the invoices when
/// the member may see billing, their notifications.
fn usage_view(
    layout: crate::http::views::Layout,
    ctx: &OrgContext,
    report: &quota::UsageReport,
    invoices: Option<Vec<crate::db::repo::invoices::Invoice>>,
    notes: Vec<crate::db::repo::notifications::Notification>,
    now: DateTime<Utc>,
) -> Result<UsagePage> {
    let settings = &report.settings;
    let browse = PeriodBrowse::of(report, now);
    let (limits, rates) = limits_of(&report.limits);
    Ok(UsagePage {
        layout,
        nav: nav(ctx, "usage"),
        org_id: ctx.org_id().to_string(),
        period: report.period.clone(),
        range: browse.range,
        prev_period: browse.prev_period,
        next_period: browse.next_period,
        limits,
        rates,
        alerts_sent: alerts_sent(report),
        totals: row(String::new(), String::new(), &report.totals),
        mine: row(String::new(), String::new(), &report.mine),
        chart_svg: browse.chart_svg,
        by_day: report
            .by_day
            .iter()
            .map(|r| row(r.day.clone(), String::new(), &r.totals))
            .collect(),
        by_model: report.by_model.iter().map(model_row).collect(),
        by_endpoint: report
            .by_endpoint
            .iter()
            .map(|r| row(r.endpoint.clone(), String::new(), &r.totals))
            .collect(),
        by_user: report.by_user.iter().map(member_row).collect(),
        can_manage_quota: has_permission(ctx, Permission::QuotaManage),
        quota: quota_fields(settings),
        plan_credits: settings
            .plan_credits_micros
            .map(Micros::money)
            .unwrap_or_default(),
        webhook_secret_set: settings.webhook_secret_set,
        quota_errors: FormErrors::default(),
        can_view_billing: invoices.is_some(),
        invoices: invoices
            .unwrap_or_default()
            .into_iter()
            .map(|i| InvoiceRow {
                id: i.id,
                period: i.period,
                total: i.total_micros.money(),
                issued: format::time_at(i.issued_at),
            })
            .collect(),
        notifications: notes
            .into_iter()
            .take(10)
            .map(|n| NotificationRow {
                unread: n.read_at.is_none(),
                id: n.id,
                title: n.title,
                body: n.body,
                when: format::time_at(n.created_at),
            })
            .collect(),
        notice: None,
    })
}

/// The period shown, its neighbours and its daily chart.
struct PeriodBrowse {
    /// "1 Nov 2026 – 30 Nov 2026".
    range: String,
    prev_period: String,
    /// None for the current period (the future has no usage).
    next_period: Option<String>,
    chart_svg: String,
}

impl PeriodBrowse {
    fn of(report: &quota::UsageReport, now: DateTime<Utc>) -> Self {
        let anchor = report.settings.billing_anchor_day;
        let (start, end) = (report.start, report.end);
        let last_day = (end - chrono::Duration::seconds(1)).date_naive();
        let day_costs: Vec<(String, Micros)> = report
            .by_day
            .iter()
            .map(|r| (r.day.clone(), r.totals.cost_micros))
            .collect();
        PeriodBrowse {
            range: format!(
                "{} – {}",
                start.format("%-d %b %Y"),
                last_day.format("%-d %b %Y")
            ),
            prev_period: period_at(start - chrono::Duration::seconds(1), anchor).label,
            next_period: (end <= now).then(|| period_at(end, anchor).label),
            chart_svg: daily_cost_svg(&days_of(start.date_naive(), end.date_naive(), &day_costs)),
        }
    }
}

/// "50%, 80%": the thresholds whose alerts went out this period.
fn alerts_sent(report: &quota::UsageReport) -> String {
    report
        .quota
        .as_ref()
        .map(|q| {
            q.alerts_sent
                .iter()
                .map(|p| format!("{p}%"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn model_row(r: &quota::ModelUsage) -> UsageRow {
    // An unpriced model is not free: say so where its cost is shown.
    let note = match r.unpriced_requests {
        0 => String::new(),
        1 => "no price is set for this model: 1 call counted as $0".to_string(),
        n => format!("no price is set for this model: {n} calls counted as $0"),
    };
    row(r.model.clone(), note, &r.totals)
}

fn member_row(m: &crate::db::repo::usage::MemberTotals) -> UsageRow {
    if m.name.is_empty() && m.email.is_empty() {
        row("a former member".into(), String::new(), &m.totals)
    } else {
        row(m.name.clone(), m.email.clone(), &m.totals)
    }
}

#[derive(Deserialize, Default)]
struct UsageQuery {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<UsageQuery>,
) -> Result<Response> {
    let period = q.period.filter(|p| !p.is_empty());
    let mut page = usage_page(&s, &user, &ctx, period).await?;
    if q.saved.is_some() {
        page.notice = Some("Quota saved.".into());
    }
    render_status(StatusCode::OK, &page)
}

#[derive(Deserialize, Default)]
struct QuotaForm {
    #[serde(default)]
    monthly_credits: String,
    #[serde(default)]
    monthly_requests: String,
    #[serde(default)]
    member_monthly_credits: String,
    #[serde(default)]
    rate_limit_rpm: String,
    #[serde(default)]
    rate_limit_tpm: String,
    #[serde(default)]
    billing_anchor_day: String,
    #[serde(default)]
    alert_thresholds: String,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    remove_webhook_secret: Option<String>,
}

/// The form as a quota change (empty limits mean "none"/"the plan's"). What cannot be read
/// is left unchanged and goes to the service as `unreadable`, named as the service names
/// the field, so that it is told together with the service's own findings.
fn quota_input(f: &QuotaForm) -> quota::QuotaInput {
    let mut errors = Vec::new();
    let mut dollars = |field: &'static str, raw: &str| -> Option<Option<Micros>> {
        if raw.trim().is_empty() {
            return Some(None);
        }
        let v = Micros::parse_usd(raw);
        if v.is_none() {
            errors.push(Invalid::new(
                field,
                "Enter an amount in dollars, e.g. 25 or 12.50.",
            ));
        }
        v.map(Some)
    };
    let credits = dollars("monthly_credits_micros", &f.monthly_credits);
    let member = dollars("member_monthly_credits_micros", &f.member_monthly_credits);
    let mut whole = |field: &'static str, raw: &str| -> Option<Option<i64>> {
        let t = raw.trim();
        if t.is_empty() {
            return Some(None);
        }
        let v = t.parse::<i64>().ok().filter(|n| *n >= 0);
        if v.is_none() {
            errors.push(Invalid::new(field, "Enter a whole number, 0 or more."));
        }
        v.map(Some)
    };
    let requests = whole("monthly_requests", &f.monthly_requests);
    let rpm = whole("rate_limit_rpm", &f.rate_limit_rpm);
    let tpm = whole("rate_limit_tpm", &f.rate_limit_tpm);
    let anchor = f.billing_anchor_day.trim().parse::<u32>().ok();
    if anchor.is_none() {
        errors.push(Invalid::new(
            "billing_anchor_day",
            "Choose a day from 1 to 28.",
        ));
    }
    let thresholds: Option<Vec<u8>> = f
        .alert_thresholds
        .split([',', ' ', '%'])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u8>().ok())
        .collect();
    if thresholds.is_none() {
        errors.push(Invalid::new(
            "alert_thresholds",
            "Give percentages separated by commas, e.g. 80, 90, 100.",
        ));
    }
    let url = f.webhook_url.trim();
    let secret = f.webhook_secret.trim();
    quota::QuotaInput {
        monthly_credits_micros: credits,
        monthly_requests: requests,
        rate_limit_rpm: rpm,
        rate_limit_tpm: tpm,
        member_monthly_credits_micros: member,
        billing_anchor_day: anchor,
        alert_thresholds: thresholds,
        webhook_url: Some((!url.is_empty()).then(|| url.to_string())),
        webhook_secret: if f.remove_webhook_secret.is_some() {
            Some(None)
        } else if secret.is_empty() {
            None
        } else {
            Some(Some(secret.to_string()))
        },
        unreadable: errors,
    }
}

/// The service names money fields in micro-units; the form asks for dollars.
fn form_field(service_field: String) -> String {
    match service_field.as_str() {
        "monthly_credits_micros" => "monthly_credits".into(),
        "member_monthly_credits_micros" => "member_monthly_credits".into(),
        _ => service_field,
    }
}

async fn save_quota(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<QuotaForm>,
) -> Result<Response> {
    let Err(e) = quota::patch(&s.svc, &ctx, &user.actor(), quota_input(&f)).await else {
        return Ok(see_other(&format!("{}?saved=1", usage_url(&ctx))));
    };
    let fields = [
        "monthly_credits_micros",
        "monthly_requests",
        "member_monthly_credits_micros",
        "rate_limit_rpm",
        "rate_limit_tpm",
        "billing_anchor_day",
        "alert_thresholds",
        "webhook_url",
        "webhook_secret",
    ];
    let Some(errors) = form_errors(&e, &fields, "form") else {
        return Err(e);
    };
    let errors = FormErrors(
        errors
            .0
            .into_iter()
            .map(|(field, m)| (form_field(field), m))
            .collect(),
    );
    let status = e.status();
    let mut page = usage_page(&s, &user, &ctx, None).await?;
    // What was typed stays, except the secret.
    page.quota = QuotaFields {
        monthly_credits: f.monthly_credits,
        monthly_requests: f.monthly_requests,
        rate_limit_rpm: f.rate_limit_rpm,
        rate_limit_tpm: f.rate_limit_tpm,
        member_monthly_credits: f.member_monthly_credits,
        billing_anchor_day: f.billing_anchor_day,
        alert_thresholds: f.alert_thresholds,
        webhook_url: f.webhook_url,
    };
    page.quota_errors = errors;
    Ok(shown_at(render_status(status, &page)?, &usage_url(&ctx)))
}

async fn read(
    State(s): State<AppState>,
    Path((_org, id)): Path<(String, String)>,
    OrgForm(OrgCtx { ctx, .. }, ()): OrgForm<()>,
) -> Result<Response> {
    notifications::mark_read(&s.svc, &ctx, id).await?;
    Ok(see_other(&usage_url(&ctx)))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn limits_become_bars_and_rates_sentences() {
        let limit = |name, used, limit, percent| quota::Limit {
            name,
            description: String::new(),
            used,
            limit,
            percent,
        };
        let limits = [
            limit(LimitKind::OrgCredits, Some(900_000), 1_000_000, Some(90.0)),
            limit(
                LimitKind::MemberCredits,
                Some(2_000_000),
                1_000_000,
                Some(200.0),
            ),
            limit(LimitKind::OrgRequests, Some(3), 100, Some(3.0)),
            limit(LimitKind::RateRpm, None, 60, None),
            limit(LimitKind::RateTpm, None, 10000, None),
        ];
        let (meters, rates) = limits_of(&limits);
        assert_eq!(meters.len(), 3);
        assert_eq!(meters[0].id, "limit-org-credits");
        assert_eq!(meters[0].text, "$0.90 of $1.00 (90%)");
        assert_eq!(meters[0].level, "warn");
        assert_eq!(meters[1].level, "full");
        assert_eq!(meters[1].percent, 100);
        assert_eq!(meters[2].text, "3 of 100 (3%)");
        assert_eq!(meters[2].level, "ok");
        assert_eq!(
            rates,
            vec![
                "60 requests per minute, for the whole organization",
                "10,000 tokens per minute, for the whole organization"
            ]
        );
    }

    #[test]
    fn the_chart_covers_every_day_of_the_period() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        let days = days_of(
            d(15),
            NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
            &[("2026-11-20".into(), Micros::new(5))],
        );
        assert_eq!(days.len(), 30);
        assert_eq!(days[0], (d(15), Micros::ZERO));
        assert_eq!(days[5], (d(20), Micros::new(5)));
    }

    #[test]
    fn the_quota_form_takes_dollars_and_empty_means_no_limit() {
        let f = QuotaForm {
            monthly_credits: "25".into(),
            member_monthly_credits: "".into(),
            monthly_requests: " 1000 ".into(),
            billing_anchor_day: "15".into(),
            alert_thresholds: "50%, 80, 100".into(),
            webhook_secret: "".into(),
            ..QuotaForm::default()
        };
        let q = quota_input(&f);
        assert!(q.unreadable.is_empty());
        assert_eq!(
            q.monthly_credits_micros,
            Some(Some(Micros::new(25_000_000)))
        );
        assert_eq!(q.member_monthly_credits_micros, Some(None));
        assert_eq!(q.monthly_requests, Some(Some(1000)));
        assert_eq!(q.rate_limit_rpm, Some(None));
        assert_eq!(q.billing_anchor_day, Some(15));
        assert_eq!(q.alert_thresholds, Some(vec![50, 80, 100]));
        assert_eq!(q.webhook_url, Some(None));
        assert_eq!(q.webhook_secret, None);
        let bad = QuotaForm {
            monthly_credits: "-3".into(),
            monthly_requests: "lots".into(),
            billing_anchor_day: "".into(),
            alert_thresholds: "80, 300".into(),
            ..QuotaForm::default()
        };
        let q = quota_input(&bad);
        let fields: Vec<&str> = q.unreadable.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "monthly_credits_micros",
                "monthly_requests",
                "billing_anchor_day",
                "alert_thresholds"
            ]
        );
        assert_eq!(
            q.monthly_requests, None,
            "what is unreadable is left unchanged"
        );
        assert_eq!(
            form_field("monthly_credits_micros".into()),
            "monthly_credits"
        );
        // Amounts go back into the form with every digit, so saving unchanged keeps them.
        let dollars = |m| form_dollars(Some(Micros::new(m)));
        assert_eq!(dollars(1_234_567), "1.234567");
        assert_eq!(dollars(25_000_000), "25");
        assert_eq!(dollars(100), "0.0001");
        assert_eq!(form_dollars(None), "");
        assert_eq!(
            Micros::parse_usd(&dollars(1_234_567)),
            Some(Micros::new(1_234_567))
        );
    }
}
