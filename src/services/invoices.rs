//! Invoices: when a billing period has ended, its usage becomes one invoice with a line
//! per model (and the plan's monthly price). Closing is idempotent (one invoice per
//! organization and period, enforced by the database), so it runs on every maintenance
//! tick and at start: a restart or a missed tick only delays it.
use super::Services;
use crate::domain::Permission;

use super::require;
use crate::db::OrgContext;
use crate::db::repo::invoices::InvoiceLine;
use crate::db::repo::{invoices, plans, quotas, usage};
use crate::db::unscoped::unscoped_all_org_ids;
use crate::domain::period::period_named;
use crate::domain::{Micros, fmt_time, new_id};
use crate::error::AppError;

type Result<T> = std::result::Result<T, AppError>;

/// Issues the invoices of every period that ended before `now`; returns how many.
pub async fn close_periods(svc: &Services, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
    let ids = svc
        .db
        .read(|tx| Ok::<_, AppError>(unscoped_all_org_ids(tx)?))
        .await?;
    let mut issued = 0;
    for org in ids {
        issued += svc
            .db
            .write(move |tx| {
                let Some(ctx) = crate::db::scope::SystemScope::new("invoices").in_org(tx, org)?
                else {
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
                    // A plan changed during this period without "apply now" charges the
                    // earlier plan's fee for it.
                    let fee = match plans::fee_plan_for_period(tx, &ctx, &label)? {
                        Some(earlier) => Some(earlier),
                        None => plan
                            .as_ref()
                            .map(|p| (p.name.clone(), p.price_monthly_micros)),
                    };
                    if let Some((name, amount)) = fee
                        && amount > Micros::ZERO
                    {
                        lines.push(InvoiceLine::Plan {
                            description: format!("{name} plan"),
                            amount_micros: amount,
                        });
                    }
                    for (model, t, _) in
                        usage::grouped(tx, &ctx, usage::Group::Model, &start, &end)?
                    {
                        lines.push(InvoiceLine::Usage {
                            model,
                            requests: t.requests,
                            input_tokens: t.input_tokens,
                            output_tokens: t.output_tokens,
                            amount_micros: t.cost_micros,
                        });
                    }
                    let subtotal: Micros = lines.iter().map(InvoiceLine::amount_micros).sum();
                    let inv = invoices::Invoice {
                        id: new_id().to_string(),
                        period: label,
                        currency: "USD".into(),
                        subtotal_micros: subtotal,
                        total_micros: subtotal,
                        line_items: lines,
                        issued_at: now,
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

pub async fn list(svc: &Services, ctx: &OrgContext) -> Result<Vec<invoices::Invoice>> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    svc.db.read(move |tx| Ok(invoices::list(tx, &ctx)?)).await
}

pub async fn get(svc: &Services, ctx: &OrgContext, id: String) -> Result<invoices::Invoice> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| invoices::get(tx, &ctx, &id)?.ok_or_else(AppError::not_found))
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
    for line in &inv.line_items {
        let amount = line.amount_micros().usd();
        let fields = match line {
            InvoiceLine::Plan { description, .. } => [
                inv.period.clone(),
                "plan".to_string(),
                description.clone(),
                String::new(),
                String::new(),
                String::new(),
                amount,
            ],
            InvoiceLine::Usage {
                model,
                requests,
                input_tokens,
                output_tokens,
                ..
            } => [
                inv.period.clone(),
                "usage".to_string(),
                model.clone(),
                requests.to_string(),
                input_tokens.to_string(),
                output_tokens.to_string(),
                amount,
            ],
        };
        out.record(&fields);
    }
    let total = inv.total_micros.usd();
    out.record(&[inv.period.as_str(), "total", "", "", "", "", total.as_str()]);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_lists_its_lines_as_csv_and_stores_them_with_the_same_keys() {
        let inv = invoices::Invoice {
            id: "i1".into(),
            period: "2026-11".into(),
            currency: "USD".into(),
            subtotal_micros: Micros::new(20_000_150),
            total_micros: Micros::new(20_000_150),
            line_items: vec![
                InvoiceLine::Plan {
                    description: "Team plan".into(),
                    amount_micros: Micros::new(20_000_000),
                },
                InvoiceLine::Usage {
                    model: "gpt-4o-mini".into(),
                    requests: 3,
                    input_tokens: 1000,
                    output_tokens: 0,
                    amount_micros: Micros::new(150),
                },
            ],
            issued_at: chrono::DateTime::UNIX_EPOCH,
        };
        assert_eq!(
            csv(&inv),
            "period,kind,description,requests,input_tokens,output_tokens,amount_usd\r\n\
             2026-11,plan,Team plan,,,,20.000000\r\n\
             2026-11,usage,gpt-4o-mini,3,1000,0,0.000150\r\n\
             2026-11,total,,,,,20.000150\r\n"
        );
        let shown = serde_json::to_value(&inv.line_items).unwrap_or_default();
        assert_eq!(
            shown[1].to_string(),
            r#"{"amount_micros":150,"input_tokens":1000,"kind":"usage","model":"gpt-4o-mini","output_tokens":0,"requests":3}"#
        );
        let read: Vec<InvoiceLine> = serde_json::from_value(shown).unwrap_or_default();
        assert_eq!(read, inv.line_items);
    }
}
