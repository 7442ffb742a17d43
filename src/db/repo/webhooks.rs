//! Webhook deliveries of an organization.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_time_at, time_at};

use crate::db::{Conn, DbError, OrgContext, WriteTx};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub url: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, event, url, payload, status, attempts, next_attempt_at, last_status_code,
    last_error, created_at, delivered_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        event: r.get(1)?,
        url: r.get(2)?,
        payload: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: time_at(r, 6)?,
        last_status_code: r.get(7)?,
        last_error: r.get(8)?,
        created_at: time_at(r, 9)?,
        delivered_at: opt_time_at(r, 10)?,
    })
}

pub fn enqueue(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: &str,
    event: &str,
    url: &str,
    payload: &str,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO webhook_deliveries (organization_id, id, event, url, payload, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![id, event, url, payload, now],
    )?;
    Ok(())
}

/// The organization's deliveries, newest first.
pub fn list(c: &Conn<'_>, ctx: &OrgContext, limit: i64) -> Result<Vec<Delivery>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE organization_id = ?1
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ),
        params![limit],
        from_row,
    )
}

pub fn get(c: &Conn<'_>, ctx: &OrgContext, id: &str) -> Result<Option<Delivery>, DbError> {
    c.scoped(ctx).query_opt(
        &format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE organization_id = ?1 AND id = ?2"),
        params![id],
        from_row,
    )
}

/// Records one attempt: delivered, retried at `next`, or given up (`next` = None).
#[allow(clippy::too_many_arguments)]
pub fn record_attempt(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: &str,
    delivered: bool,
    status_code: Option<u16>,
    error: Option<&str>,
    next: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    let status = if delivered {
        "delivered"
    } else if next.is_some() {
        "pending"
    } else {
        "failed"
    };
    tx.scoped(ctx).execute(
        "UPDATE webhook_deliveries SET status = ?3, attempts = attempts + 1,
             next_attempt_at = COALESCE(?6, next_attempt_at), last_status_code = ?4,
             last_error = ?5, delivered_at = CASE WHEN ?3 = 'delivered' THEN ?7 END
         WHERE organization_id = ?1 AND id = ?2",
        params![id, status, status_code, error, next, now],
    )?;
    Ok(())
}
