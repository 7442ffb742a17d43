//! Invoices: when a billing period has ended, its usage becomes one invoice with a line
//! per model (and the plan's monthly price). Closing is idempotent (one invoice per
//! organization and period, enforced by the database), so it runs on every maintenance
//! tick and at start: a restart or a missed tick only delays it.
use crate::domain::Permission;
use serde_json::json;

use super::require;
use crate::db::repo::{invoices, plans, quotas, usage};
use crate::db::unscoped::unscoped_all_org_ids;
use crate::db::{Db, OrgContext};
use crate::domain::period::period_named;
use crate::domain::{fmt_time, new_id};
use crate::error::AppError;

type Result<T> = std::result::Result<T, AppError>;

/// Issues the invoices of every period that ended before `now`; returns how many.
pub async fn close_periods(db: &Db, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
    let ids = db
        .read(|tx| Ok::<_, AppError>(unscoped_all_org_ids(tx)?))
        .await?;
    let mut issued = 0;
    for org in ids {
        issued += db
            .write(move |tx| {
                let Some(ctx) = crate::db::scope::SystemScope::new("invoices").in_org(tx, org)? else {
                    return Ok::<_, AppError>(0);
                };
                let anchor = quotas::get(tx, &ctx)?.billing_anchor_day;
                let plan = plans::for_org(tx, &ctx)?;
                let mut n = 0;
                for label in invoices::uninvoiced_periods(tx, &ctx)? {
                    let Some(p) = period_named(&label, anchor) else {
                        continue;
                    };
                    if p.end > now {
                        continue;
                    }
                    let (start, end) = (fmt_time(p.start), fmt_time(p.end));
                    let mut lines = Vec::new();
                    let mut subtotal = 0i64;
                    if let Some(plan) = &plan
                        && plan.price_monthly_micros > 0
                    {
                        subtotal += plan.price_monthly_micros;
                        lines.push(json!({"kind": "plan", "description": format!("{} plan", plan.name),
                                          "amount_micros": plan.price_monthly_micros}));
                    }
                    for (model, t, _) in usage::grouped(tx, &ctx, false, &start, &end)? {
                        subtotal += t.cost_micros;
                        lines.push(json!({"kind": "usage", "model": model, "requests": t.requests,
                                          "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                                          "amount_micros": t.cost_micros}));
                    }
                    let inv = invoices::Invoice {
                        id: new_id().to_string(),
                        period: label,
                        currency: "USD".into(),
                        subtotal_micros: subtotal,
                        total_micros: subtotal,
                        line_items: json!(lines),
                        issued_at: fmt_time(now),
                    };
                    if invoices::insert(tx, &ctx, &inv)? {
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await?;
    }
    Ok(issued)
}

pub async fn list(db: &Db, ctx: &OrgContext) -> Result<Vec<invoices::Invoice>> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    db.read(move |tx| Ok(invoices::list(tx, &ctx)?)).await
}

pub async fn get(db: &Db, ctx: &OrgContext, id: String) -> Result<invoices::Invoice> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    db.read(move |tx| invoices::get(tx, &ctx, &id)?.ok_or_else(AppError::not_found))
        .await
}

/// The invoice as CSV: one row per line item, then the total.
pub fn csv(inv: &invoices::Invoice) -> String {
    let mut out = super::csv_text::CsvText::new();
    out.record(&[
        "period",
        "kind",
        "description",
        "requests",
        "input_tokens",
        "output_tokens",
        "amount_usd",
    ]);
    for line in inv.line_items.as_array().into_iter().flatten() {
        let description = line["model"]
            .as_str()
            .or_else(|| line["description"].as_str())
            .unwrap_or("");
        let fields = [
            inv.period.clone(),
            line["kind"].as_str().unwrap_or("").to_string(),
            description.to_string(),
            line["requests"]
                .as_i64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            line["input_tokens"]
                .as_i64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            line["output_tokens"]
                .as_i64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            crate::domain::usd(line["amount_micros"].as_i64().unwrap_or(0)),
        ];
        out.record(&fields);
    }
    let total = crate::domain::usd(inv.total_micros);
    out.record(&[inv.period.as_str(), "total", "", "", "", "", total.as_str()]);
    out.finish()
}
