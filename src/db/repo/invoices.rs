//! Invoices: one per organization and closed billing period.
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Micros, fmt_time};

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub period: String,
    pub currency: String,
    pub subtotal_micros: Micros,
    pub total_micros: Micros,
    pub line_items: Vec<InvoiceLine>,
    pub issued_at: DateTime<Utc>,
}

/// One line of an invoice, stored in `line_items` as `{"kind": "plan" | "usage", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvoiceLine {
    /// The plan's monthly price.
    Plan {
        description: String,
        amount_micros: Micros,
    },
    /// One model's calls in the period.
    Usage {
        model: String,
        requests: i64,
        input_tokens: i64,
        output_tokens: i64,
        amount_micros: Micros,
    },
}

impl InvoiceLine {
    pub fn amount_micros(&self) -> Micros {
        match self {
            InvoiceLine::Plan { amount_micros, .. } | InvoiceLine::Usage { amount_micros, .. } => {
                *amount_micros
            }
        }
    }
}

/// The lines as JSON with each line's keys in alphabetical order, as invoices have always
/// been stored and shown (a tagged enum would put `kind` first).
fn lines_json(lines: &[InvoiceLine]) -> serde_json::Value {
    // Serializing plain data into a `Value` cannot fail.
    serde_json::to_value(lines).unwrap_or_default()
}

const COLUMNS: &str = "id, period, currency, subtotal_micros, total_micros, line_items, issued_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invoice> {
    Ok(Invoice {
        id: r.get(0)?,
        period: r.get(1)?,
        currency: r.get(2)?,
        subtotal_micros: r.get(3)?,
        total_micros: r.get(4)?,
        line_items: super::json_at(r, 5)?,
        issued_at: super::time_at(r, 6)?,
    })
}

/// Writes the invoice unless the period already has one; true when written.
pub fn insert(tx: &WriteTx<'_>, ctx: &OrgContext, inv: &Invoice) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "INSERT OR IGNORE INTO invoices (organization_id, id, period, currency, subtotal_micros,
             total_micros, line_items, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            inv.id,
            inv.period,
            inv.currency,
            inv.subtotal_micros,
            inv.total_micros,
            lines_json(&inv.line_items).to_string(),
            fmt_time(inv.issued_at)
        ],
    )? > 0)
}

pub fn list(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<Invoice>, DbError> {
    c.scoped(ctx).query_vec(
        &format!("SELECT {COLUMNS} FROM invoices WHERE organization_id = ?1 ORDER BY period DESC"),
        &[],
        from_row,
    )
}

pub fn get(c: &Conn<'_>, ctx: &OrgContext, id: &str) -> Result<Option<Invoice>, DbError> {
    c.scoped(ctx).query_opt(
        &format!("SELECT {COLUMNS} FROM invoices WHERE organization_id = ?1 AND id = ?2"),
        params![id],
        from_row,
    )
}

/// Periods with usage and no invoice yet.
pub fn uninvoiced_periods(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<String>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT u.period FROM organization_usage u
         WHERE u.organization_id = ?1
           AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.organization_id = ?1 AND i.period = u.period)
         ORDER BY u.period",
        &[],
        |r| r.get(0),
    )
}

/// A correction of an issued invoice (which itself never changes).
#[derive(Debug, Clone)]
pub struct CreditNote {
    pub id: String,
    pub invoice_id: String,
    pub amount_micros: Micros,
    pub reason: String,
    pub issued_by: Option<String>,
    pub issued_at: DateTime<Utc>,
}

const NOTE_COLUMNS: &str = "id, invoice_id, amount_micros, reason, issued_by, issued_at";

fn note_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CreditNote> {
    Ok(CreditNote {
        id: r.get(0)?,
        invoice_id: r.get(1)?,
        amount_micros: r.get(2)?,
        reason: r.get(3)?,
        issued_by: r.get(4)?,
        issued_at: super::time_at(r, 5)?,
    })
}

pub fn insert_credit_note(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    note: &CreditNote,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO credit_notes (organization_id, id, invoice_id, amount_micros, reason,
             issued_by, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            note.id,
            note.invoice_id,
            note.amount_micros,
            note.reason,
            note.issued_by,
            fmt_time(note.issued_at)
        ],
    )?;
    Ok(())
}

/// The invoice's credit notes, oldest first.
pub fn credit_notes(
    c: &Conn<'_>,
    ctx: &OrgContext,
    invoice_id: &str,
) -> Result<Vec<CreditNote>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {NOTE_COLUMNS} FROM credit_notes
             WHERE organization_id = ?1 AND invoice_id = ?2 ORDER BY issued_at, id"
        ),
        params![invoice_id],
        note_from_row,
    )
}

/// What the credit notes of each invoice of the organization add up to, by invoice id.
pub fn credited_totals(
    c: &Conn<'_>,
    ctx: &OrgContext,
) -> Result<std::collections::HashMap<String, Micros>, DbError> {
    let rows: Vec<(String, Micros)> = c.scoped(ctx).query_vec(
        "SELECT invoice_id, SUM(amount_micros) FROM credit_notes
         WHERE organization_id = ?1 GROUP BY invoice_id",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}
