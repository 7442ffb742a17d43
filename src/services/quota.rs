//! Quotas: the settings (limits, billing anchor, alerts, webhook), the credit limit that
//! applies to an organization, and the usage report. Admission against these limits is
//! `metering::admission`.
use super::Services;
use crate::domain::Permission;

use serde::Serialize;
use serde_json::json;

use super::{Actor, fresh_context, require};
use crate::db::repo::{audit, plans, quotas, usage};
use crate::db::{Conn, OrgContext};
use crate::domain::period::{Period, period_at, period_named};
use crate::domain::{Invalid, Micros};
use crate::error::AppError;

type Result<T> = std::result::Result<T, AppError>;

/// The organization's monthly credit limit: its plan's (with an instance administrator's
/// override), or its own quota when that is stricter — an owner can lower the ceiling,
/// never raise it. The gateway, the alerts, the usage page, the org home and
/// `GET …/limits` all take the limit from here, so they cannot disagree.
pub fn credit_limit(q: &quotas::Quota, plan_credits: Option<Micros>) -> Option<Micros> {
    match (q.monthly_credits_micros, plan_credits) {
        (Some(own), Some(plan)) => Some(own.min(plan)),
        (own, plan) => own.or(plan),
    }
}

/// An organization's credit use in the billing period `at` falls in.
pub struct CreditUse {
    pub period: Period,
    pub used_micros: Micros,
    pub requests: i64,
    pub limit_micros: Option<Micros>,
}

pub fn credit_use(
    c: &Conn<'_>,
    ctx: &OrgContext,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<CreditUse> {
    let (q, period) = current_period(c, ctx, at)?;
    let plan = plans::for_org(c, ctx)?.and_then(|p| p.monthly_ai_credits_micros);
    let totals = usage::totals(c, ctx, &period.label)?;
    Ok(CreditUse {
        limit_micros: credit_limit(&q, plan),
        used_micros: totals.cost_micros,
        requests: totals.requests,
        period,
    })
}

/// The period and limits that apply to one organization now.
pub fn current_period(
    c: &Conn<'_>,
    ctx: &OrgContext,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(quotas::Quota, Period)> {
    let q = quotas::get(c, ctx)?;
    let p = period_at(at, q.billing_anchor_day);
    Ok((q, p))
}

/// Quota settings as the API shows and takes them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = QuotaSettings)]
pub struct QuotaView {
    /// null: the plan's credits
    pub monthly_credits_micros: Option<Micros>,
    pub plan_credits_micros: Option<Micros>,
    pub monthly_requests: Option<i64>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    pub member_monthly_credits_micros: Option<Micros>,
    #[schema(minimum = 1, maximum = 28)]
    pub billing_anchor_day: u32,
    #[schema(value_type = Vec<crate::domain::schemas::Percent>)]
    pub alert_thresholds: Vec<u8>,
    /// Where alerts are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    /// Whether a signing secret is set (the secret itself is write-only).
    pub webhook_secret_set: bool,
}

/// A change to the quota; for the optional limits `Some(None)` means "no limit" (for
/// credits: "the plan's").
#[derive(Debug, Clone, Default)]
pub struct QuotaInput {
    pub monthly_credits_micros: Option<Option<Micros>>,
    pub monthly_requests: Option<Option<i64>>,
    pub rate_limit_rpm: Option<Option<i64>>,
    pub rate_limit_tpm: Option<Option<i64>>,
    pub member_monthly_credits_micros: Option<Option<Micros>>,
    pub billing_anchor_day: Option<u32>,
    pub alert_thresholds: Option<Vec<u8>>,
    pub webhook_url: Option<Option<String>>,
    pub webhook_secret: Option<Option<String>>,
    /// Fields the client sent that could not be read at all (a page's "lots" for an
    /// amount): reported together with what is wrong with the rest.
    pub unreadable: Vec<Invalid>,
}

fn view(q: &quotas::Quota, plan: Option<Micros>) -> QuotaView {
    QuotaView {
        monthly_credits_micros: q.monthly_credits_micros,
        plan_credits_micros: plan,
        monthly_requests: q.monthly_requests,
        rate_limit_rpm: q.rate_limit_rpm,
        rate_limit_tpm: q.rate_limit_tpm,
        member_monthly_credits_micros: q.member_monthly_credits_micros,
        billing_anchor_day: q.billing_anchor_day,
        alert_thresholds: q.alert_thresholds.clone(),
        webhook_url: q.webhook_url.clone(),
        webhook_secret_set: q.webhook_secret_enc.is_some(),
    }
}

pub async fn patch(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    input: QuotaInput,
) -> Result<QuotaView> {
    require(ctx, Permission::QuotaManage)?;
    let errors = input_errors(&input, svc.targets).await;
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor, keyring) = (ctx.clone(), actor.clone(), svc.keyring.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::QuotaManage)?;
            let mut q = quotas::get(tx, &me)?;
            apply(&mut q, &input);
            match &input.webhook_secret {
                Some(Some(secret)) => {
                    let dk = super::llm::data_key_for_sealing(tx, &me, &keyring, &now)?;
                    q.webhook_secret_enc = Some(dk.seal(
                        secret.as_bytes(),
                        &super::webhooks::webhook_aad(me.org_id()),
                    ));
                    q.webhook_key_id = Some(dk.id().to_string());
                }
                Some(None) => {
                    q.webhook_secret_enc = None;
                    q.webhook_key_id = None;
                }
                None => {}
            }
            quotas::save(tx, &me, &q, me.user_id(), &now)?;
            let plan = plans::for_org(tx, &me)?.and_then(|p| p.monthly_ai_credits_micros);
            let v = view(&q, plan);
            audit::append(
                tx,
                &me,
                &actor.entry("quota.updated", "quota", None, json!(v)),
                &now,
            )?;
            Ok(v)
        })
        .await
}

/// Every problem of a quota change, all fields at once (the webhook address is also held
/// to the outbound policy).
async fn input_errors(input: &QuotaInput, targets: super::outbound::TargetPolicy) -> Vec<Invalid> {
    let mut errors = input.unreadable.clone();
    // Credits are held to the same bound as the counts, as their count of micro-dollars.
    let counted = |v: Option<Option<Micros>>| v.map(|m| m.map(Micros::get));
    let limits = [
        (
            "monthly_credits_micros",
            counted(input.monthly_credits_micros),
        ),
        ("monthly_requests", input.monthly_requests),
        ("rate_limit_rpm", input.rate_limit_rpm),
        ("rate_limit_tpm", input.rate_limit_tpm),
        (
            "member_monthly_credits_micros",
            counted(input.member_monthly_credits_micros),
        ),
    ];
    for (field, v) in limits {
        if let Some(Some(n)) = v
            && !(0..=i64::from(u32::MAX) * 1_000_000).contains(&n)
        {
            errors.push(Invalid::new(field, "Enter a whole number, 0 or more."));
        }
    }
    if input
        .billing_anchor_day
        .is_some_and(|d| !(1..=28).contains(&d))
    {
        errors.push(Invalid::new(
            "billing_anchor_day",
            "Choose a day from 1 to 28.",
        ));
    }
    if let Some(t) = &input.alert_thresholds
        && (t.len() > 10 || t.iter().any(|p| !(1..=100).contains(p)))
    {
        errors.push(Invalid::new(
            "alert_thresholds",
            "Give at most 10 percentages, each from 1 to 100.",
        ));
    }
    if let Some(Some(url)) = &input.webhook_url {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && !url.contains(char::is_whitespace);
        if !ok {
            errors.push(Invalid::new(
                "webhook_url",
                "Enter an address that starts with http:// or https://.",
            ));
        } else if let Err(e) = super::outbound::check_saved(url, targets, "webhook_url").await {
            errors.push(e);
        }
    }
    if let Some(Some(secret)) = &input.webhook_secret
        && !(16..=256).contains(&secret.len())
    {
        errors.push(Invalid::new(
            "webhook_secret",
            "Use a secret of 16 to 256 characters.",
        ));
    }
    errors
}

/// The change's limits, anchor day, thresholds and webhook address (the secret is sealed
/// by the caller, inside the write).
fn apply(q: &mut quotas::Quota, input: &QuotaInput) {
    fn set<T>(slot: &mut Option<T>, v: Option<Option<T>>) {
        if let Some(v) = v {
            *slot = v;
        }
    }
    set(&mut q.monthly_credits_micros, input.monthly_credits_micros);
    set(&mut q.monthly_requests, input.monthly_requests);
    set(&mut q.rate_limit_rpm, input.rate_limit_rpm);
    set(&mut q.rate_limit_tpm, input.rate_limit_tpm);
    set(
        &mut q.member_monthly_credits_micros,
        input.member_monthly_credits_micros,
    );
    if let Some(d) = input.billing_anchor_day {
        q.billing_anchor_day = d;
    }
    if let Some(t) = &input.alert_thresholds {
        let mut t = t.clone();
        t.sort_unstable();
        t.dedup();
        q.alert_thresholds = t;
    }
    if let Some(url) = &input.webhook_url {
        q.webhook_url.clone_from(url);
    }
}

/// The limits a quota can set, named on the wire as `org_credits`, `org_requests`,
/// `member_credits`, `rate_rpm` and `rate_tpm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The organization's monthly AI credits.
    OrgCredits,
    /// The organization's monthly requests.
    OrgRequests,
    /// Each member's monthly AI credits in the organization.
    MemberCredits,
    /// Requests per minute for the whole organization.
    RateRpm,
    /// Tokens per minute for the whole organization.
    RateTpm,
}

impl LimitKind {
    /// The name on the wire (and in page element ids).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::OrgCredits => "org_credits",
            LimitKind::OrgRequests => "org_requests",
            LimitKind::MemberCredits => "member_credits",
            LimitKind::RateRpm => "rate_rpm",
            LimitKind::RateTpm => "rate_tpm",
        }
    }
}

/// One limit that applies. `used` and `limit` count in the limit's own unit (`name` says
/// which): micro-dollars for credits, requests, or tokens per minute.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Limit {
    pub name: LimitKind,
    pub description: String,
    pub used: Option<i64>,
    pub limit: i64,
    pub percent: Option<f64>,
}

pub(crate) fn percent(used: i64, limit: i64) -> f64 {
    if limit <= 0 {
        return 100.0;
    }
    ((used as f64) * 1000.0 / (limit as f64)).round() / 10.0
}

/// What `GET …/usage` answers (and the usage page and CSV show).
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub period: String,
    pub start: chrono::DateTime<chrono::Utc>,
    /// Exclusive.
    pub end: chrono::DateTime<chrono::Utc>,
    pub totals: usage::Totals,
    /// The caller's own calls.
    pub mine: usage::Totals,
    pub by_model: Vec<ModelUsage>,
    pub by_day: Vec<DayUsage>,
    pub by_endpoint: Vec<EndpointUsage>,
    pub by_user: Vec<usage::MemberTotals>,
    /// The credit quota, when one applies.
    pub quota: Option<QuotaUse>,
    pub limits: Vec<Limit>,
    pub settings: QuotaView,
}

#[derive(Debug, Clone)]
pub struct ModelUsage {
    pub model: String,
    pub totals: usage::Totals,
    /// Calls that used tokens but found no price: counted as free, shown as such.
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub totals: usage::Totals,
}

/// Usage of one service: the gateway's endpoints, an agent's chat, indexing, workflow steps.
#[derive(Debug, Clone)]
pub struct EndpointUsage {
    pub endpoint: String,
    pub totals: usage::Totals,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuotaUse {
    pub limit: Micros,
    pub used: Micros,
    pub percent: f64,
    pub alerts_sent: Vec<u8>,
}

/// `GET …/usage`: totals, breakdowns and every limit that applies to the caller.
pub async fn report(
    svc: &Services,
    ctx: &OrgContext,
    period: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<UsageReport> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let (q, current) = current_period(tx, &ctx, at)?;
            let p = match period.as_deref() {
                None => current,
                Some(label) => period_named(label, q.billing_anchor_day).ok_or_else(|| {
                    AppError::invalid(vec![Invalid::new("period", "Choose a month as YYYY-MM.")])
                })?,
            };
            let totals = usage::totals(tx, &ctx, &p.label)?;
            let alerts: Vec<u8> = usage::alerts_sent(tx, &ctx, &p.label)?;
            let mine = usage::member_totals(tx, &ctx, ctx.user_id(), &p.label)?;
            let plan = plans::for_org(tx, &ctx)?.and_then(|x| x.monthly_ai_credits_micros);
            let (start, end) = (
                crate::domain::fmt_time(p.start),
                crate::domain::fmt_time(p.end),
            );
            let by_model = usage::grouped(tx, &ctx, usage::Group::Model, &start, &end)?
                .into_iter()
                .map(|(model, totals, unpriced_requests)| ModelUsage {
                    model,
                    totals,
                    unpriced_requests,
                })
                .collect();
            let by_day = usage::grouped(tx, &ctx, usage::Group::Day, &start, &end)?
                .into_iter()
                .map(|(day, totals, _)| DayUsage { day, totals })
                .collect();
            let by_endpoint = usage::grouped(tx, &ctx, usage::Group::Endpoint, &start, &end)?
                .into_iter()
                .map(|(endpoint, totals, _)| EndpointUsage { endpoint, totals })
                .collect();
            // Names from the membership: a former member's usage stays, unnamed.
            let by_user = usage::by_member(tx, &ctx, &p.label)?;
            let credit_limit = credit_limit(&q, plan);
            let mut limits = Vec::new();
            if let Some(l) = credit_limit {
                limits.push(Limit {
                    name: LimitKind::OrgCredits,
                    description: "the organization's monthly AI credits (micro-USD)".into(),
                    used: Some(totals.cost_micros.get()),
                    limit: l.get(),
                    percent: Some(percent(totals.cost_micros.get(), l.get())),
                });
            }
            if let Some(l) = q.monthly_requests {
                limits.push(Limit {
                    name: LimitKind::OrgRequests,
                    description: "the organization's monthly requests".into(),
                    used: Some(totals.requests),
                    limit: l,
                    percent: Some(percent(totals.requests, l)),
                });
            }
            if let Some(l) = q.member_monthly_credits_micros {
                limits.push(Limit {
                    name: LimitKind::MemberCredits,
                    description: "your monthly AI credits in this organization (micro-USD)".into(),
                    used: Some(mine.cost_micros.get()),
                    limit: l.get(),
                    percent: Some(percent(mine.cost_micros.get(), l.get())),
                });
            }
            if let Some(l) = q.rate_limit_rpm {
                limits.push(Limit {
                    name: LimitKind::RateRpm,
                    description: "requests per minute, for the whole organization".into(),
                    used: None,
                    limit: l,
                    percent: None,
                });
            }
            if let Some(l) = q.rate_limit_tpm {
                limits.push(Limit {
                    name: LimitKind::RateTpm,
                    description: "tokens per minute, for the whole organization".into(),
                    used: None,
                    limit: l,
                    percent: None,
                });
            }
            Ok(UsageReport {
                quota: credit_limit.map(|l| QuotaUse {
                    limit: l,
                    used: totals.cost_micros,
                    percent: percent(totals.cost_micros.get(), l.get()),
                    alerts_sent: alerts,
                }),
                period: p.label,
                start: p.start,
                end: p.end,
                totals,
                mine,
                by_model,
                by_day,
                by_endpoint,
                by_user,
                limits,
                settings: view(&q, plan),
            })
        })
        .await
}

/// The quota settings (for the usage page and `GET …/quota`).
pub async fn settings(svc: &Services, ctx: &OrgContext) -> Result<QuotaView> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let q = quotas::get(tx, &ctx)?;
            let plan = plans::for_org(tx, &ctx)?.and_then(|p| p.monthly_ai_credits_micros);
            Ok(view(&q, plan))
        })
        .await
}

/// The organization's webhook deliveries and their status, newest first.
pub async fn deliveries(
    svc: &Services,
    ctx: &OrgContext,
) -> Result<Vec<crate::db::repo::webhooks::Delivery>> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| Ok(crate::db::repo::webhooks::list(tx, &ctx, 200)?))
        .await
}

/// The usage report as CSV: one row per day, model and member of the period, each with
/// requests, tokens and cost (formula-safe: model names come from clients).
pub fn report_csv(report: &UsageReport) -> String {
    let mut out = super::csv_text::CsvText::new();
    out.record(&[
        "period",
        "breakdown",
        "key",
        "requests",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ]);
    let rows = report
        .by_day
        .iter()
        .map(|r| ("day", r.day.as_str(), &r.totals))
        .chain(
            report
                .by_model
                .iter()
                .map(|r| ("model", r.model.as_str(), &r.totals)),
        )
        .chain(
            report
                .by_endpoint
                .iter()
                .map(|r| ("endpoint", r.endpoint.as_str(), &r.totals)),
        )
        .chain(
            report
                .by_user
                .iter()
                .map(|r| ("member", r.email.as_str(), &r.totals)),
        );
    for (breakdown, key, t) in rows {
        let fields = [
            report.period.clone(),
            breakdown.to_string(),
            key.to_string(),
            t.requests.to_string(),
            t.input_tokens.to_string(),
            t.output_tokens.to_string(),
            t.cost_micros.usd(),
        ];
        out.record(&fields);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_to_a_tenth() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(5, 0), 100.0);
        assert_eq!(percent(90, 100), 90.0);
    }
}
