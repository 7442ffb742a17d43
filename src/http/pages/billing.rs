//! The billing pages (`billing.view`): the plan, the current period's cost so far with its
//! linear projection to the period's end, the plan's AI credits used, the invoices; and
//! one invoice, printable, with its credit notes and, for `billing.manage`, the form that
//! issues one.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render_status, see_other};
use crate::db::OrgContext;
use crate::db::repo::invoices::InvoiceLine;
use crate::db::scope::has_permission;
use crate::domain::{Invalid, Micros, Permission, format};
use crate::error::{AppError, Result};
use crate::http::extract::{OrgCtx, OrgForm};
use crate::http::state::AppState;
use crate::http::views::{
    BillingInvoiceRow, BillingPage, CreditNoteRow, FormErrors, InvoicePage, Layout, UsageMeter,
    UsageRow,
};
use crate::services::invoices::{self, Billing, Credited};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/billing", get(show))
        .route("/o/{org}/billing/invoices/{id}", get(invoice))
        .route(
            "/o/{org}/billing/invoices/{id}/credit-notes",
            post(issue_credit_note),
        )
}

fn invoice_url(ctx: &OrgContext, id: &str) -> String {
    format!("/o/{}/billing/invoices/{id}", ctx.org().slug)
}

/// The plan's monthly AI credits against the period's cost, as a bar.
fn credit_meter(used: Micros, credits: Micros) -> UsageMeter {
    let percent = if credits > Micros::ZERO {
        used.get() as f64 * 100.0 / credits.get() as f64
    } else {
        100.0
    };
    let level = if used >= credits {
        "full"
    } else if percent >= 80.0 {
        "warn"
    } else {
        "ok"
    };
    UsageMeter {
        id: "plan-credits".into(),
        label: "AI credits of the plan".into(),
        used: used.get(),
        max: Some(credits.get()),
        text: format!(
            "{} of {} ({}%)",
            used.money(),
            credits.money(),
            percent.round() as i64
        ),
        percent: (percent.round() as i64).clamp(0, 100),
        level: level.into(),
    }
}

/// The billing page from what the service read (no I/O).
fn billing_view(layout: Layout, ctx: &OrgContext, b: &Billing, now: DateTime<Utc>) -> BillingPage {
    let last_day = (b.period.end - chrono::Duration::seconds(1)).date_naive();
    let days = (b.period.end - b.period.start).num_days();
    let passed = (now.min(b.period.end) - b.period.start).num_days().max(0);
    BillingPage {
        layout,
        nav: nav(ctx, "billing"),
        org_id: ctx.org_id().to_string(),
        plan_name: b.plan.as_ref().map(|p| p.name.clone()),
        monthly_fee: b
            .plan
            .as_ref()
            .map(|p| p.price_monthly_micros.money())
            .unwrap_or_default(),
        period: b.period.label.clone(),
        range: format!(
            "{} – {}",
            b.period.start.format("%-d %b %Y"),
            last_day.format("%-d %b %Y")
        ),
        cost_so_far: b.cost_so_far.money(),
        projection: b.projection.money(),
        elapsed: format!(
            "{passed} of {days} days ({}%)",
            (b.elapsed * 100.0).round() as i64
        ),
        credits: b
            .plan
            .as_ref()
            .and_then(|p| p.monthly_ai_credits_micros)
            .map(|c| credit_meter(b.cost_so_far, c)),
        invoices: b
            .invoices
            .iter()
            .map(|(i, credited)| BillingInvoiceRow {
                id: i.id.clone(),
                period: i.period.clone(),
                total: i.total_micros.money(),
                credited: if *credited > Micros::ZERO {
                    credited.money()
                } else {
                    String::new()
                },
                balance: i.total_micros.saturating_sub(*credited).money(),
                issued: format::time_at(i.issued_at),
            })
            .collect(),
    }
}

async fn show(State(s): State<AppState>, OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    let now = s.svc.now();
    let b = invoices::billing(&s.svc, &ctx, now).await?;
    let title = format!("Billing · {}", ctx.org().name);
    let layout = layout(&s, &user, &title, Some(ctx.org_id())).await?;
    render_status(StatusCode::OK, &billing_view(layout, &ctx, &b, now))
}

fn line_row(l: &InvoiceLine) -> UsageRow {
    match l {
        InvoiceLine::Plan {
            description,
            amount_micros,
        } => UsageRow {
            label: description.clone(),
            sub: "monthly fee".into(),
            requests: String::new(),
            input_tokens: String::new(),
            output_tokens: String::new(),
            cost: amount_micros.money(),
        },
        InvoiceLine::Usage {
            model,
            requests,
            input_tokens,
            output_tokens,
            amount_micros,
        } => UsageRow {
            label: model.clone(),
            sub: "usage".into(),
            requests: format::count(*requests),
            input_tokens: format::count(*input_tokens),
            output_tokens: format::count(*output_tokens),
            cost: amount_micros.money(),
        },
    }
}

/// The invoice page from what the service read (no I/O).
fn invoice_view(layout: Layout, ctx: &OrgContext, c: &Credited) -> InvoicePage {
    let i = &c.invoice;
    InvoicePage {
        layout,
        nav: nav(ctx, "billing"),
        org_id: ctx.org_id().to_string(),
        org_name: ctx.org().name.clone(),
        id: i.id.clone(),
        period: i.period.clone(),
        issued: format::time_at(i.issued_at),
        currency: i.currency.clone(),
        lines: i.line_items.iter().map(line_row).collect(),
        total: i.total_micros.money(),
        credit_notes: c
            .credit_notes
            .iter()
            .map(|n| CreditNoteRow {
                id: n.id.clone(),
                amount: n.amount_micros.money(),
                reason: n.reason.clone(),
                issued: format::time_at(n.issued_at),
            })
            .collect(),
        credited: c.credited().money(),
        balance: c.balance().money(),
        can_credit: has_permission(ctx, Permission::BillingManage) && c.balance() > Micros::ZERO,
        form_amount: String::new(),
        form_reason: String::new(),
        errors: FormErrors::default(),
        notice: None,
    }
}

async fn invoice_page(
    s: &AppState,
    user: &crate::http::extract::CurrentUser,
    ctx: &OrgContext,
    id: String,
) -> Result<InvoicePage> {
    let c = invoices::get(&s.svc, ctx, id).await?;
    let title = format!("Invoice {} · {}", c.invoice.period, ctx.org().name);
    let layout = layout(s, user, &title, Some(ctx.org_id())).await?;
    Ok(invoice_view(layout, ctx, &c))
}

#[derive(Deserialize, Default)]
struct InvoiceQuery {
    #[serde(default)]
    credited: Option<String>,
}

async fn invoice(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_org, id)): Path<(String, String)>,
    Query(q): Query<InvoiceQuery>,
) -> Result<Response> {
    let mut page = invoice_page(&s, &user, &ctx, id).await?;
    if q.credited.is_some() {
        page.notice = Some("Credit note issued.".into());
    }
    render_status(StatusCode::OK, &page)
}

#[derive(Deserialize, Default)]
struct CreditForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

/// The service names the amount in micro-units; the form asks for dollars.
fn form_field(service_field: String) -> String {
    if service_field == "amount_micros" {
        "amount".into()
    } else {
        service_field
    }
}

async fn issue_credit_note(
    State(s): State<AppState>,
    Path((_org, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<CreditForm>,
) -> Result<Response> {
    let result = match Micros::parse_usd(&f.amount) {
        Some(amount) => {
            invoices::issue_credit_note(&s.svc, &ctx, &user.actor(), id.clone(), amount, &f.reason)
                .await
                .map(|_| ())
        }
        None => Err(AppError::invalid(vec![Invalid::new(
            "amount",
            "Enter an amount in dollars, e.g. 25 or 12.50.",
        )])),
    };
    let Err(e) = result else {
        return Ok(see_other(&format!("{}?credited=1", invoice_url(&ctx, &id))));
    };
    let Some(errors) = form_errors(&e, &["amount_micros", "amount", "reason"], "form") else {
        return Err(e);
    };
    let status = e.status();
    let mut page = invoice_page(&s, &user, &ctx, id.clone()).await?;
    page.errors = FormErrors(
        errors
            .0
            .into_iter()
            .map(|(field, m)| (form_field(field), m))
            .collect(),
    );
    page.form_amount = f.amount;
    page.form_reason = f.reason;
    Ok(shown_at(
        render_status(status, &page)?,
        &invoice_url(&ctx, &id),
    ))
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::db::repo::invoices::{CreditNote, Invoice};
    use crate::domain::period::period_at;

    #[test]
    fn the_credit_bar_fills_with_the_periods_cost() {
        let m = credit_meter(Micros::new(4_000_000), Micros::new(5_000_000));
        assert_eq!((m.percent, m.level.as_str()), (80, "warn"));
        assert_eq!(m.text, "$4.00 of $5.00 (80%)");
        let over = credit_meter(Micros::new(6_000_000), Micros::new(5_000_000));
        assert_eq!((over.percent, over.level.as_str()), (100, "full"));
        assert_eq!(credit_meter(Micros::ZERO, Micros::ZERO).level, "full");
    }

    fn invoice() -> Invoice {
        Invoice {
            id: "0190f000-0000-7000-8000-0000000000aa".into(),
            period: "2026-10".into(),
            currency: "USD".into(),
            subtotal_micros: Micros::new(25_000_000),
            total_micros: Micros::new(25_000_000),
            line_items: vec![InvoiceLine::Plan {
                description: "Team plan".into(),
                amount_micros: Micros::new(25_000_000),
            }],
            issued_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn the_invoice_page_shows_its_credit_notes_the_balance_and_the_form() {
        let (_dir, _db, ctx) = crate::services::metering::test_member().await;
        let slug = ctx.org().slug.clone();
        let c = Credited {
            invoice: invoice(),
            credit_notes: vec![CreditNote {
                id: "n1".into(),
                invoice_id: "i".into(),
                amount_micros: Micros::new(5_000_000),
                reason: "Outage <2 days>".into(),
                issued_by: None,
                issued_at: chrono::DateTime::UNIX_EPOCH,
            }],
        };
        let page = invoice_view(Layout::default(), &ctx, &c);
        assert!(page.can_credit, "the owner holds billing.manage");
        let html = page.render().unwrap();
        assert!(html.contains("id=\"invoice-balance\">$20.00<"), "{html}");
        assert!(!html.contains("Outage <2 days>"), "escaped");
        assert!(html.contains("id=\"credit-note-form\""));
        assert!(html.contains(&format!("href=\"/o/{slug}/billing\" aria-current=\"page\"")));
        // Fully credited: nothing is left to credit, so no form.
        let mut all = c.clone();
        all.credit_notes[0].amount_micros = Micros::new(25_000_000);
        assert!(!invoice_view(Layout::default(), &ctx, &all).can_credit);
    }

    #[tokio::test]
    async fn the_billing_page_says_projection_plainly() {
        let (_dir, _db, ctx) = crate::services::metering::test_member().await;
        let slug = ctx.org().slug.clone();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-11T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = Billing {
            plan: None,
            period: period_at(now, 1),
            cost_so_far: Micros::new(1_000_000),
            projection: Micros::new(3_000_000),
            elapsed: 1.0 / 3.0,
            invoices: vec![(invoice(), Micros::new(5_000_000))],
        };
        let html = billing_view(Layout::default(), &ctx, &b, now)
            .render()
            .unwrap();
        assert!(html.contains("id=\"projection\">$3.00<"), "{html}");
        assert!(html.contains("10 of 30 days (33%)"), "{html}");
        assert!(html.contains("projection is a straight-line estimate"));
        assert!(html.contains("id=\"plan-none\""));
        assert!(html.contains(&format!(
            "href=\"/o/{slug}/billing/invoices/0190f000-0000-7000-8000-0000000000aa\""
        )));
    }
}
