//! In-app notifications of a member in an organization.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_time_at, time_at};

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::UserId;

#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

pub struct New<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub details: &'a serde_json::Value,
    pub now: &'a str,
}

pub fn insert(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    n: &New<'_>,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO notifications (organization_id, id, user_id, kind, title, body, details, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            n.id,
            user.to_string(),
            n.kind,
            n.title,
            n.body,
            n.details.to_string(),
            n.now
        ],
    )?;
    Ok(())
}

/// The member's notifications, newest first.
pub fn list(
    c: &Conn<'_>,
    ctx: &OrgContext,
    user: UserId,
    limit: i64,
) -> Result<Vec<Notification>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT id, kind, title, body, details, created_at, read_at FROM notifications
         WHERE organization_id = ?1 AND user_id = ?2 ORDER BY created_at DESC, id DESC LIMIT ?3",
        params![user.to_string(), limit],
        |r| {
            Ok(Notification {
                id: r.get(0)?,
                kind: r.get(1)?,
                title: r.get(2)?,
                body: r.get(3)?,
                details: super::json_at(r, 4)?,
                created_at: time_at(r, 5)?,
                read_at: opt_time_at(r, 6)?,
            })
        },
    )
}

/// Marks one of the member's notifications read; false when there is no such one.
pub fn mark_read(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    id: &str,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE notifications SET read_at = COALESCE(read_at, ?4)
         WHERE organization_id = ?1 AND user_id = ?2 AND id = ?3",
        params![user.to_string(), id, now],
    )? > 0)
}

/// The organization's active owners and admins (who are told about quota alerts).
pub fn owners_and_admins(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<UserId>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT user_id FROM organization_members
         WHERE organization_id = ?1 AND status = 'active' AND role IN ('owner', 'admin')",
        &[],
        |r| super::uuid_at(r, 0).map(UserId::from_uuid),
    )
}
