//! Credit alerts: when usage is written, every threshold of the period's credit use that
//! was reached and not yet sent is sent, once.
use serde_json::json;

use super::super::quota::{credit_limit, percent};
use crate::db::OrgContext;
use crate::db::repo::{audit, plans, quotas, usage};
use crate::domain::Micros;
use crate::error::AppError;

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
) -> Result<Vec<u8>, AppError> {
    let q = quotas::get(tx, ctx)?;
    let plan = plans::for_org(tx, ctx)?.and_then(|p| p.monthly_ai_credits_micros);
    let Some(limit) = credit_limit(&q, plan).filter(|l| *l > Micros::ZERO) else {
        return Ok(Vec::new());
    };
    let used = usage::totals(tx, ctx, period)?.cost_micros;
    let pct = percent(used.get(), limit.get());
    let mut sent = usage::alerts_sent(tx, ctx, period)?;
    let due: Vec<u8> = q
        .alert_thresholds
        .iter()
        .copied()
        .filter(|t| {
            !sent.contains(t) && used.get().saturating_mul(100) >= i64::from(*t) * limit.get()
        })
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
                             "limit_micros": limit, "percent": pct});
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
            "{} has used {} of {} micro-USD of its monthly AI credits ({pct}%).",
            ctx.org().name,
            used.get(),
            limit.get()
        );
        if let Some(url) = &q.webhook_url {
            let payload = json!({
                "event": "quota.alert",
                "organization": {"id": ctx.org_id(), "slug": ctx.org().slug},
                "period": period, "threshold": t, "used_micros": used,
                "limit_micros": limit, "percent": pct, "at": now,
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
