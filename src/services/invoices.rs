//! Invoices: when a billing period has ended, its usage becomes one invoice with a line
//! per model (and the plan's monthly price). Closing is idempotent (one invoice per
//! organization and period, enforced by the database), so it runs on every maintenance
//! tick and at start: a restart or a missed tick only delays it.
use serde_json::json;

use super::{Actor, Services};
use crate::domain::Permission;

use super::{fresh_context, require};
use crate::db::OrgContext;
use crate::db::repo::invoices::{CreditNote, Invoice, InvoiceLine};
use crate::db::repo::{audit, invoices, plans, quotas, usage};
use crate::db::unscoped::unscoped_all_org_ids;
use crate::domain::period::{Period, elapsed_fraction, linear_projection, period_at, period_named};
use crate::domain::{CreditReason, Invalid, Micros, fmt_time, new_id};
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
                    let inv = Invoice {
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

pub async fn list(svc: &Services, ctx: &OrgContext) -> Result<Vec<Invoice>> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    svc.db.read(move |tx| Ok(invoices::list(tx, &ctx)?)).await
}

/// An issued invoice with the credit notes issued against it.
#[derive(Debug, Clone)]
pub struct Credited {
    pub invoice: Invoice,
    /// Oldest first.
    pub credit_notes: Vec<CreditNote>,
}

impl Credited {
    /// What the credit notes add up to.
    pub fn credited(&self) -> Micros {
        self.credit_notes.iter().map(|n| n.amount_micros).sum()
    }

    /// The total less the credit notes: what is still owed, and the most a new credit
    /// note may be.
    pub fn balance(&self) -> Micros {
        self.invoice.total_micros.saturating_sub(self.credited())
    }
}

pub async fn get(svc: &Services, ctx: &OrgContext, id: String) -> Result<Credited> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let invoice = invoices::get(tx, &ctx, &id)?.ok_or_else(AppError::not_found)?;
            let credit_notes = invoices::credit_notes(tx, &ctx, &id)?;
            Ok(Credited {
                invoice,
                credit_notes,
            })
        })
        .await
}

/// The credit notes of one invoice (404 for an invoice the organization does not have).
pub async fn credit_notes(svc: &Services, ctx: &OrgContext, id: String) -> Result<Vec<CreditNote>> {
    Ok(get(svc, ctx, id).await?.credit_notes)
}

/// Issues a credit note against an issued invoice (`billing.manage`): a positive amount
/// no larger than what earlier credit notes left of the total, and a reason. The invoice
/// itself is not touched; the note is audited as `invoice.credit_note_issued` in the same
/// write.
pub async fn issue_credit_note(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    invoice_id: String,
    amount: Micros,
    reason: &str,
) -> Result<CreditNote> {
    require(ctx, Permission::BillingManage)?;
    let mut errors = Vec::new();
    if amount <= Micros::ZERO {
        errors.push(Invalid::new(
            "amount_micros",
            "Credit an amount above zero.",
        ));
    }
    let reason = match CreditReason::parse(reason) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let Some(reason) = reason.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::BillingManage)?;
            let invoice = invoices::get(tx, &me, &invoice_id)?.ok_or_else(AppError::not_found)?;
            let earlier = invoices::credit_notes(tx, &me, &invoice_id)?;
            let credited = Credited {
                invoice,
                credit_notes: earlier,
            };
            let left = credited.balance();
            if amount > left {
                return Err(AppError::Unprocessable {
                    code: "credit_exceeds_invoice",
                    message: format!(
                        "at most {} ({} micro-USD) can still be credited on this invoice",
                        left.money(),
                        left.get()
                    ),
                });
            }
            let note = CreditNote {
                id: new_id().to_string(),
                invoice_id: invoice_id.clone(),
                amount_micros: amount,
                reason: reason.into_inner(),
                issued_by: Some(me.user_id().to_string()),
                issued_at: now,
            };
            invoices::insert_credit_note(tx, &me, &note)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "invoice.credit_note_issued",
                    "invoice",
                    Some(invoice_id),
                    json!({
                        "invoice_id": note.invoice_id,
                        "period": credited.invoice.period,
                        "credit_note_id": note.id,
                        "amount_micros": note.amount_micros,
                        "reason": note.reason,
                    }),
                ),
                &fmt_time(now),
            )?;
            Ok(note)
        })
        .await
}

/// The billing page's figures: the plan, the current period's cost so far and its linear
/// projection to the period's end, the plan's AI credits used, and the issued invoices
/// with what was credited on each.
#[derive(Debug, Clone)]
pub struct Billing {
    pub plan: Option<plans::Plan>,
    pub period: Period,
    pub cost_so_far: Micros,
    /// `cost_so_far` over the elapsed fraction of the period (`domain::period`).
    pub projection: Micros,
    /// How far into the period it is, 0 to 1.
    pub elapsed: f64,
    /// Newest first, each with the sum of its credit notes.
    pub invoices: Vec<(Invoice, Micros)>,
}

pub async fn billing(
    svc: &Services,
    ctx: &OrgContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Billing> {
    require(ctx, Permission::BillingView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let anchor = quotas::get(tx, &ctx)?.billing_anchor_day;
            let period = period_at(now, anchor);
            let cost_so_far = usage::totals(tx, &ctx, &period.label)?.cost_micros;
            let credited = invoices::credited_totals(tx, &ctx)?;
            let invoices = invoices::list(tx, &ctx)?
                .into_iter()
                .map(|i| {
                    let c = credited.get(&i.id).copied().unwrap_or_default();
                    (i, c)
                })
                .collect();
            Ok(Billing {
                plan: plans::for_org(tx, &ctx)?,
                projection: linear_projection(cost_so_far, &period, now),
                elapsed: elapsed_fraction(&period, now),
                period,
                cost_so_far,
                invoices,
            })
        })
        .await
}

/// The invoice as CSV: one row per line item, then the total; with credit notes, a row
/// for each (its reason as the description, the amount it takes off) and the balance.
pub fn csv(credited: &Credited) -> String {
    let inv = &credited.invoice;
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
    if !credited.credit_notes.is_empty() {
        for n in &credited.credit_notes {
            let amount = n.amount_micros.usd();
            out.record(&[
                inv.period.as_str(),
                "credit_note",
                n.reason.as_str(),
                "",
                "",
                "",
                amount.as_str(),
            ]);
        }
        let balance = credited.balance().usd();
        out.record(&[
            inv.period.as_str(),
            "balance",
            "",
            "",
            "",
            "",
            balance.as_str(),
        ]);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_lists_its_lines_as_csv_and_stores_them_with_the_same_keys() {
        let inv = Invoice {
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
        let mut credited = Credited {
            invoice: inv.clone(),
            credit_notes: Vec::new(),
        };
        assert_eq!(
            csv(&credited),
            "period,kind,description,requests,input_tokens,output_tokens,amount_usd\r\n\
             2026-11,plan,Team plan,,,,20.000000\r\n\
             2026-11,usage,gpt-4o-mini,3,1000,0,0.000150\r\n\
             2026-11,total,,,,,20.000150\r\n"
        );
        credited.credit_notes.push(CreditNote {
            id: "c1".into(),
            invoice_id: "i1".into(),
            amount_micros: Micros::new(5_000_000),
            reason: "Outage, 2 days".into(),
            issued_by: None,
            issued_at: chrono::DateTime::UNIX_EPOCH,
        });
        assert_eq!(credited.balance(), Micros::new(15_000_150));
        assert!(
            csv(&credited).ends_with(
                "2026-11,total,,,,,20.000150\r\n\
                 2026-11,credit_note,\"Outage, 2 days\",,,,5.000000\r\n\
                 2026-11,balance,,,,,15.000150\r\n"
            ),
            "{}",
            csv(&credited)
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
