//! Quotas and rate limits of the gateway, and the usage report.
//!
//! Admission reserves an estimate of the call's cost before it goes upstream; metering
//! commits the real cost, and then, in one step under the organization's ledger lock, the
//! ledger adds the real cost to its committed use and drops the reservation. A call is
//! admitted while committed use plus open reservations is below the limit, so concurrent
//! calls at the edge of a quota overspend by at most one call's reservation, and a call is
//! never counted zero times nor (in steady state) twice. The committed use is read from
//! the database once per organization, member and period; after that the ledger keeps it.
use crate::domain::Permission;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota as Rate, RateLimiter};
use serde::Serialize;
use serde_json::{Value, json};

use super::gateway::{Refusal, Tokens, cost};
use super::{Actor, fresh_context, require};
use crate::db::repo::{audit, plans, quotas, usage};
use crate::db::{Conn, Db, OrgContext};
use crate::domain::period::{Period, period_at, period_named};
use crate::domain::{Invalid, OrgId, UserId, now_str};
use crate::error::AppError;

type Result<T> = std::result::Result<T, AppError>;

#[derive(Default, Clone, Copy)]
struct Account {
    loaded: bool,
    used_credits: i64,
    used_requests: i64,
    reserved_credits: i64,
    reserved_requests: i64,
}

#[derive(Default)]
struct Ledger {
    period: String,
    org: Account,
    members: HashMap<UserId, Account>,
}

struct Limiters {
    rpm: Option<(i64, DefaultDirectRateLimiter)>,
    tpm: Option<(i64, DefaultDirectRateLimiter)>,
}

/// Open reservations and rate limiters, per organization, in memory.
#[derive(Default)]
pub struct Gate {
    ledgers: Mutex<HashMap<OrgId, Arc<Mutex<Ledger>>>>,
    limiters: Mutex<HashMap<OrgId, Arc<Mutex<Limiters>>>>,
}

/// What a call is expected to cost, reserved until its usage is committed.
pub struct Reservation {
    ledger: Arc<Mutex<Ledger>>,
    period: String,
    user: UserId,
    credits: i64,
    settled: bool,
}

impl Reservation {
    /// The call's usage is committed: its real cost becomes committed use and the
    /// reservation ends, in one step.
    pub fn settle(mut self, cost_micros: i64) {
        self.release(Some(cost_micros));
        self.settled = true;
    }

    fn release(&self, committed: Option<i64>) {
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if l.period != self.period {
            return;
        }
        let apply = |a: &mut Account| {
            a.reserved_credits -= self.credits;
            a.reserved_requests -= 1;
            if let Some(c) = committed
                && a.loaded
            {
                a.used_credits += c;
                a.used_requests += 1;
            }
        };
        apply(&mut l.org);
        if let Some(m) = l.members.get_mut(&self.user) {
            apply(m);
        }
    }
}

impl Drop for Reservation {
    /// Not settled: the call was refused or its usage could not be written.
    fn drop(&mut self) {
        if !self.settled {
            self.release(None);
        }
    }
}

/// The organization's monthly credit limit in micro-USD: its own quota when one is set,
/// otherwise its plan's. The gateway, the alerts, the usage page, the org home and
/// `GET …/limits` all take the limit from here, so they cannot disagree.
pub fn credit_limit(q: &quotas::Quota, plan_credits: Option<i64>) -> Option<i64> {
    q.monthly_credits_micros.or(plan_credits)
}

/// An organization's credit use in the billing period `at` falls in.
pub struct CreditUse {
    pub period: Period,
    pub used_micros: i64,
    pub requests: i64,
    pub limit_micros: Option<i64>,
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

fn exhausted(message: String) -> Refusal {
    Refusal {
        status: 429,
        kind: "insufficient_quota",
        code: "insufficient_quota",
        message,
        retry_after_secs: None,
    }
}

fn rate_limited(message: String, retry_after_secs: u64) -> Refusal {
    Refusal {
        status: 429,
        kind: "rate_limit_error",
        code: "rate_limit_exceeded",
        message,
        retry_after_secs: Some(retry_after_secs.max(1)),
    }
}

fn per_minute(n: i64) -> Option<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(u32::try_from(n).ok()?)?;
    Some(RateLimiter::direct(Rate::per_minute(n)))
}

impl Gate {
    fn ledger(&self, org: OrgId) -> Arc<Mutex<Ledger>> {
        let mut all = self.ledgers.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(org).or_default().clone()
    }

    fn limiters(&self, org: OrgId) -> Arc<Mutex<Limiters>> {
        let mut all = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(org)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Limiters {
                    rpm: None,
                    tpm: None,
                }))
            })
            .clone()
    }

    /// Checks every limit that applies to the caller and reserves the estimate; the
    /// refusal names the limit that was hit.
    pub fn admit(
        &self,
        db: &Db,
        ctx: &OrgContext,
        limits: &super::gateway::Limits,
        estimate: Tokens,
        at: chrono::DateTime<chrono::Utc>,
    ) -> std::result::Result<Reservation, Refusal> {
        let ledger = self.ledger(ctx.org_id());
        let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        let q = &limits.quota;
        let (credit_limit, price) = (limits.credit_limit, limits.price);
        let period = period_at(at, q.billing_anchor_day);
        if l.period != period.label {
            // A new period: reservations of the old one are settled against the old one.
            *l = Ledger {
                period: period.label.clone(),
                ..Ledger::default()
            };
        }
        // Committed use, read once under the lock; from then on the ledger keeps it.
        let user = ctx.user_id();
        let member_loaded = l.members.get(&user).is_some_and(|m| m.loaded);
        if !l.org.loaded || !member_loaded {
            let (org_used, member_used) = db.lookup(|tx| {
                Ok::<_, AppError>((
                    usage::totals(tx, ctx, &period.label)?,
                    usage::member_totals(tx, ctx, user, &period.label)?,
                ))
            })?;
            if !l.org.loaded {
                l.org.loaded = true;
                l.org.used_credits = org_used.cost_micros;
                l.org.used_requests = org_used.requests;
            }
            let m = l.members.entry(user).or_default();
            if !m.loaded {
                m.loaded = true;
                m.used_credits = member_used.cost_micros;
                m.used_requests = member_used.requests;
            }
        }
        let reserve = cost(price, estimate);
        let org = l.org;
        if let Some(limit) = credit_limit
            && org.used_credits + org.reserved_credits >= limit
        {
            return Err(exhausted(format!(
                "the organization's monthly AI credits are used up ({} of {} micro-USD in {})",
                org.used_credits, limit, period.label
            )));
        }
        if let Some(limit) = q.monthly_requests
            && org.used_requests + org.reserved_requests >= limit
        {
            return Err(exhausted(format!(
                "the organization's monthly requests are used up ({} of {} in {})",
                org.used_requests, limit, period.label
            )));
        }
        let mine = l.members.get(&user).copied().unwrap_or_default();
        if let Some(limit) = q.member_monthly_credits_micros
            && mine.used_credits + mine.reserved_credits >= limit
        {
            return Err(exhausted(format!(
                "your monthly AI credits in this organization are used up ({} of {} micro-USD in {})",
                mine.used_credits, limit, period.label
            )));
        }
        l.org.reserved_credits += reserve;
        l.org.reserved_requests += 1;
        if let Some(m) = l.members.get_mut(&user) {
            m.reserved_credits += reserve;
            m.reserved_requests += 1;
        }
        drop(l);
        let reservation = Reservation {
            ledger,
            period: period.label,
            user,
            credits: reserve,
            settled: false,
        };
        // Rate limits after the quota, so that a refused call spends no rate.
        self.check_rates(ctx.org_id(), q, estimate)?;
        Ok(reservation)
    }

    fn check_rates(
        &self,
        org: OrgId,
        q: &quotas::Quota,
        estimate: Tokens,
    ) -> std::result::Result<(), Refusal> {
        let limiters = self.limiters(org);
        let mut lim = limiters.lock().unwrap_or_else(|e| e.into_inner());
        if lim.rpm.as_ref().map(|(n, _)| *n) != q.rate_limit_rpm {
            lim.rpm = q.rate_limit_rpm.and_then(|n| per_minute(n).map(|l| (n, l)));
        }
        if lim.tpm.as_ref().map(|(n, _)| *n) != q.rate_limit_tpm {
            lim.tpm = q.rate_limit_tpm.and_then(|n| per_minute(n).map(|l| (n, l)));
        }
        // Each limiter's own clock: making a new one calibrates it (CPUID), which cost more
        // than the rest of the admission when it was done per call.
        if let Some((n, l)) = &lim.rpm
            && let Err(not_until) = l.check()
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(l.clock()));
            return Err(rate_limited(
                format!("the organization's limit of {n} requests per minute is reached"),
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        if let Some((n, l)) = &lim.tpm {
            let tokens = (estimate.input + estimate.output).clamp(1, i64::from(u32::MAX));
            let want = NonZeroU32::new(tokens as u32).unwrap_or(NonZeroU32::MIN);
            match l.check_n(want) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(l.clock()));
                    return Err(rate_limited(
                        format!("the organization's limit of {n} tokens per minute is reached"),
                        wait.as_secs_f64().ceil() as u64,
                    ));
                }
                Err(_) => {
                    return Err(rate_limited(
                        format!(
                            "this call (about {tokens} tokens) is larger than the organization's limit of {n} tokens per minute"
                        ),
                        60,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// After usage was added (inside the same write job): every alert threshold the period's
/// credit use has reached and that was not sent yet is sent now, once: an audit row
/// `quota.alert` and a notification to each owner and admin. The single writer and the
/// stored `alerts_sent` make that exactly once per period and threshold, also under
/// concurrency and across restarts.
pub(crate) fn check_alerts(
    tx: &crate::db::WriteTx<'_>,
    ctx: &OrgContext,
    period: &str,
    now: &str,
) -> Result<Vec<u8>> {
    let q = quotas::get(tx, ctx)?;
    let plan = plans::for_org(tx, ctx)?.and_then(|p| p.monthly_ai_credits_micros);
    let Some(limit) = credit_limit(&q, plan).filter(|l| *l > 0) else {
        return Ok(Vec::new());
    };
    let used = usage::totals(tx, ctx, period)?.cost_micros;
    let mut sent = usage::alerts_sent(tx, ctx, period)?;
    let due: Vec<u8> = q
        .alert_thresholds
        .iter()
        .copied()
        .filter(|t| !sent.contains(t) && used.saturating_mul(100) >= i64::from(*t) * limit)
        .collect();
    if due.is_empty() {
        return Ok(due);
    }
    sent.extend(&due);
    sent.sort_unstable();
    usage::set_alerts_sent(tx, ctx, period, &sent)?;
    let admins = crate::db::repo::notifications::owners_and_admins(tx, ctx)?;
    for t in &due {
        let details = json!({"period": period, "threshold": t, "used_micros": used,
                             "limit_micros": limit, "percent": percent(used, limit)});
        audit::append(
            tx,
            ctx,
            &audit::Entry {
                actor_id: None,
                actor_email: None,
                action: "quota.alert",
                resource_type: "quota",
                resource_id: None,
                ip: None,
                user_agent: None,
                details: details.clone(),
            },
            now,
        )?;
        let title = format!("AI credits at {t}% for {period}");
        let body = format!(
            "{} has used {used} of {limit} micro-USD of its monthly AI credits ({}%).",
            ctx.org().name,
            percent(used, limit)
        );
        if let Some(url) = &q.webhook_url {
            let payload = json!({
                "event": "quota.alert",
                "organization": {"id": ctx.org_id(), "slug": ctx.org().slug},
                "period": period, "threshold": t, "used_micros": used,
                "limit_micros": limit, "percent": percent(used, limit), "at": now,
            });
            crate::db::repo::webhooks::enqueue(
                tx,
                ctx,
                &crate::domain::new_id().to_string(),
                "quota.alert",
                url,
                &payload.to_string(),
                now,
            )?;
        }
        for user in &admins {
            crate::db::repo::notifications::insert(
                tx,
                ctx,
                *user,
                &crate::db::repo::notifications::New {
                    id: &crate::domain::new_id().to_string(),
                    kind: "quota.alert",
                    title: &title,
                    body: &body,
                    details: &details,
                    now,
                },
            )?;
        }
    }
    Ok(due)
}

/// Quota settings as the API shows and takes them.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaView {
    pub monthly_credits_micros: Option<i64>,
    pub plan_credits_micros: Option<i64>,
    pub monthly_requests: Option<i64>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    pub member_monthly_credits_micros: Option<i64>,
    pub billing_anchor_day: u32,
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
    pub monthly_credits_micros: Option<Option<i64>>,
    pub monthly_requests: Option<Option<i64>>,
    pub rate_limit_rpm: Option<Option<i64>>,
    pub rate_limit_tpm: Option<Option<i64>>,
    pub member_monthly_credits_micros: Option<Option<i64>>,
    pub billing_anchor_day: Option<u32>,
    pub alert_thresholds: Option<Vec<u8>>,
    pub webhook_url: Option<Option<String>>,
    pub webhook_secret: Option<Option<String>>,
    /// Fields the client sent that could not be read at all (a page's "lots" for an
    /// amount): reported together with what is wrong with the rest.
    pub unreadable: Vec<Invalid>,
}

fn view(q: &quotas::Quota, plan: Option<i64>) -> QuotaView {
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
    db: &Db,
    keyring: &crate::crypto::Keyring,
    targets: super::outbound::TargetPolicy,
    ctx: &OrgContext,
    actor: &Actor,
    input: QuotaInput,
) -> Result<QuotaView> {
    require(ctx, Permission::QuotaManage)?;
    let mut errors = input.unreadable.clone();
    let limits = [
        ("monthly_credits_micros", input.monthly_credits_micros),
        ("monthly_requests", input.monthly_requests),
        ("rate_limit_rpm", input.rate_limit_rpm),
        ("rate_limit_tpm", input.rate_limit_tpm),
        (
            "member_monthly_credits_micros",
            input.member_monthly_credits_micros,
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
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor, keyring) = (ctx.clone(), actor.clone(), keyring.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        require(&me, Permission::QuotaManage)?;
        let mut q = quotas::get(tx, &me)?;
        let set = |slot: &mut Option<i64>, v: Option<Option<i64>>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
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
        if let Some(mut t) = input.alert_thresholds {
            t.sort_unstable();
            t.dedup();
            q.alert_thresholds = t;
        }
        if let Some(url) = input.webhook_url {
            q.webhook_url = url;
        }
        match input.webhook_secret {
            Some(Some(secret)) => {
                let dk = super::llm::data_key_for_sealing(tx, &me, &keyring)?;
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
        let now = now_str();
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

#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// `org_credits`, `org_requests`, `member_credits`, `rate_rpm`, `rate_tpm`.
    pub name: &'static str,
    pub description: String,
    pub used: Option<i64>,
    pub limit: i64,
    pub percent: Option<f64>,
}

fn percent(used: i64, limit: i64) -> f64 {
    if limit <= 0 {
        return 100.0;
    }
    ((used as f64) * 1000.0 / (limit as f64)).round() / 10.0
}

/// What `GET …/usage` answers (and the usage page and CSV show).
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub period: String,
    pub start: String,
    /// Exclusive.
    pub end: String,
    pub totals: usage::Totals,
    /// The caller's own calls.
    pub mine: usage::Totals,
    pub by_model: Vec<ModelUsage>,
    pub by_day: Vec<DayUsage>,
    pub by_user: Vec<usage::MemberTotals>,
    /// The credit quota, when one applies.
    pub quota: Option<QuotaUse>,
    pub limits: Vec<Limit>,
    pub settings: QuotaView,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelUsage {
    pub model: String,
    pub totals: usage::Totals,
    /// Calls that used tokens but found no price: counted as free, shown as such.
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub totals: usage::Totals,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotaUse {
    pub limit: i64,
    pub used: i64,
    pub percent: f64,
    pub alerts_sent: Vec<u8>,
}

/// `GET …/usage`: totals, breakdowns and every limit that applies to the caller.
pub async fn report(
    db: &Db,
    ctx: &OrgContext,
    period: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<UsageReport> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    db.read(move |tx| {
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
        let by_model = usage::grouped(tx, &ctx, false, &start, &end)?
            .into_iter()
            .map(|(model, totals, unpriced_requests)| ModelUsage {
                model,
                totals,
                unpriced_requests,
            })
            .collect();
        let by_day = usage::grouped(tx, &ctx, true, &start, &end)?
            .into_iter()
            .map(|(day, totals, _)| DayUsage { day, totals })
            .collect();
        // Names from the membership: a former member's usage stays, unnamed.
        let by_user = usage::by_member(tx, &ctx, &p.label)?;
        let credit_limit = credit_limit(&q, plan);
        let mut limits = Vec::new();
        if let Some(l) = credit_limit {
            limits.push(Limit {
                name: "org_credits",
                description: "the organization's monthly AI credits (micro-USD)".into(),
                used: Some(totals.cost_micros),
                limit: l,
                percent: Some(percent(totals.cost_micros, l)),
            });
        }
        if let Some(l) = q.monthly_requests {
            limits.push(Limit {
                name: "org_requests",
                description: "the organization's monthly requests".into(),
                used: Some(totals.requests),
                limit: l,
                percent: Some(percent(totals.requests, l)),
            });
        }
        if let Some(l) = q.member_monthly_credits_micros {
            limits.push(Limit {
                name: "member_credits",
                description: "your monthly AI credits in this organization (micro-USD)".into(),
                used: Some(mine.cost_micros),
                limit: l,
                percent: Some(percent(mine.cost_micros, l)),
            });
        }
        if let Some(l) = q.rate_limit_rpm {
            limits.push(Limit {
                name: "rate_rpm",
                description: "requests per minute, for the whole organization".into(),
                used: None,
                limit: l,
                percent: None,
            });
        }
        if let Some(l) = q.rate_limit_tpm {
            limits.push(Limit {
                name: "rate_tpm",
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
                percent: percent(totals.cost_micros, l),
                alerts_sent: alerts,
            }),
            period: p.label,
            start,
            end,
            totals,
            mine,
            by_model,
            by_day,
            by_user,
            limits,
            settings: view(&q, plan),
        })
    })
    .await
}

/// The quota settings (for the usage page and `GET …/quota`).
pub async fn settings(db: &Db, ctx: &OrgContext) -> Result<QuotaView> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    db.read(move |tx| {
        let q = quotas::get(tx, &ctx)?;
        let plan = plans::for_org(tx, &ctx)?.and_then(|p| p.monthly_ai_credits_micros);
        Ok(view(&q, plan))
    })
    .await
}

/// Tokens to reserve for a call: the prompt estimate and the output the client allows.
pub fn estimate(prompt_chars: usize, body: &serde_json::Map<String, Value>) -> Tokens {
    let output = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_i64)
        .unwrap_or(1024)
        .clamp(0, 1_000_000);
    Tokens {
        input: prompt_chars.div_ceil(4) as i64,
        output,
    }
}

/// The organization's webhook deliveries and their status, newest first.
pub async fn deliveries(
    db: &Db,
    ctx: &OrgContext,
) -> Result<Vec<crate::db::repo::webhooks::Delivery>> {
    require(ctx, Permission::UsageView)?;
    let ctx = ctx.clone();
    db.read(move |tx| Ok(crate::db::repo::webhooks::list(tx, &ctx, 200)?))
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
            crate::domain::usd(t.cost_micros),
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
