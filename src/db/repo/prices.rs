//! The model price table: per provider ('' for any) and model, each price from a moment on.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::time_at;
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::Micros;

#[derive(Debug, Clone)]
pub struct Price {
    pub id: String,
    pub provider: String,
    pub model: String,
    pub input_per_million: Micros,
    pub output_per_million: Micros,
    pub effective_from: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, provider, model, input_micros_per_mtok, output_micros_per_mtok, \
     effective_from, updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Price> {
    Ok(Price {
        id: r.get(0)?,
        provider: r.get(1)?,
        model: r.get(2)?,
        input_per_million: r.get(3)?,
        output_per_million: r.get(4)?,
        effective_from: time_at(r, 5)?,
        updated_at: time_at(r, 6)?,
    })
}

/// Every price, by provider and model, newest first within each.
pub fn list(c: &Conn<'_>) -> Result<Vec<Price>, DbError> {
    c.query_vec(
        &format!(
            "SELECT {COLUMNS} FROM model_price_entries
             ORDER BY provider, model, effective_from DESC"
        ),
        [],
        from_row,
    )
}

pub fn find(c: &Conn<'_>, id: &str) -> Result<Option<Price>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM model_price_entries WHERE id = ?1"),
        [id],
        from_row,
    )
}

/// Inserts or rewrites the price `p.id`; a second price for the same provider, model and
/// moment is refused by the table (a constraint error).
pub fn save(tx: &WriteTx<'_>, p: &Price, now: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO model_price_entries (id, provider, model, input_micros_per_mtok,
                 output_micros_per_mtok, effective_from, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (id) DO UPDATE SET
            provider = excluded.provider, model = excluded.model,
            input_micros_per_mtok = excluded.input_micros_per_mtok,
            output_micros_per_mtok = excluded.output_micros_per_mtok,
            effective_from = excluded.effective_from, updated_at = excluded.updated_at",
        params![
            p.id,
            p.provider,
            p.model,
            p.input_per_million,
            p.output_per_million,
            crate::domain::fmt_time(p.effective_from),
            now
        ],
    )?;
    Ok(())
}

pub fn delete(tx: &WriteTx<'_>, id: &str) -> Result<bool, DbError> {
    Ok(tx.execute("DELETE FROM model_price_entries WHERE id = ?1", [id])? == 1)
}

/// Whether another price holds the same provider, model and moment as `p`.
pub fn taken(c: &Conn<'_>, p: &Price) -> Result<bool, DbError> {
    Ok(c.query_opt(
        "SELECT 1 FROM model_price_entries
             WHERE provider = ?1 AND model = ?2 AND effective_from = ?3 AND id <> ?4",
        params![
            p.provider,
            p.model,
            crate::domain::fmt_time(p.effective_from),
            p.id
        ],
        |_| Ok(()),
    )?
    .is_some())
}
