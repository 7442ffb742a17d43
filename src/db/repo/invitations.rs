//! Invitations: an email, a role, a hashed single-use token with an expiry.
use rusqlite::{Row, params};

use chrono::{DateTime, Utc};

use super::{opt_time_at, opt_uuid_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{InvitationId, OrgId, Role, UserId};

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub organization_id: OrgId,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Usable: not accepted, not cancelled, not expired at `now`.
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.accepted_at.is_none() && self.cancelled_at.is_none() && self.expires_at > now
    }
}

const COLUMNS: &str = "id, organization_id, email, role, invited_by, created_at, expires_at, accepted_at, cancelled_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: InvitationId::from_uuid(uuid_at(r, 0)?),
        organization_id: OrgId::from_uuid(uuid_at(r, 1)?),
        email: r.get(2)?,
        role: word_at(r, 3)?,
        invited_by: opt_uuid_at(r, 4)?.map(UserId::from_uuid),
        created_at: time_at(r, 5)?,
        expires_at: time_at(r, 6)?,
        accepted_at: opt_time_at(r, 7)?,
        cancelled_at: opt_time_at(r, 8)?,
    })
}

pub struct NewInvitation<'a> {
    pub id: InvitationId,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: UserId,
    pub now: &'a str,
    pub expires_at: &'a str,
}

pub fn insert(tx: &WriteTx<'_>, ctx: &OrgContext, i: &NewInvitation<'_>) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO organization_invitations (organization_id, id, email, role, token_hash,
             invited_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            i.id.to_string(),
            i.email,
            i.role.as_str(),
            i.token_hash,
            i.invited_by.to_string(),
            i.now,
            i.expires_at
        ],
    )?;
    Ok(())
}

/// Pending invitations, newest first.
pub fn list_pending(c: &Conn<'_>, ctx: &OrgContext, now: &str) -> Result<Vec<Invitation>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {COLUMNS} FROM organization_invitations
             WHERE organization_id = ?1 AND accepted_at IS NULL AND cancelled_at IS NULL
               AND expires_at > ?2
             ORDER BY created_at DESC"
        ),
        params![now],
        from_row,
    )
}

pub fn find(
    c: &Conn<'_>,
    ctx: &OrgContext,
    id: InvitationId,
) -> Result<Option<Invitation>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {COLUMNS} FROM organization_invitations WHERE organization_id = ?1 AND id = ?2"
        ),
        params![id.to_string()],
        from_row,
    )
}

/// Cancels pending invitations of `email` (re-inviting replaces the previous link).
pub fn cancel_pending_for_email(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    email: &str,
    now: &str,
) -> Result<usize, DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organization_invitations SET cancelled_at = ?3
         WHERE organization_id = ?1 AND email = ?2 AND accepted_at IS NULL AND cancelled_at IS NULL",
        params![email, now],
    )
}

pub fn cancel(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: InvitationId,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE organization_invitations SET cancelled_at = ?3
         WHERE organization_id = ?1 AND id = ?2 AND accepted_at IS NULL AND cancelled_at IS NULL
           AND expires_at > ?3",
        params![id.to_string(), now],
    )? == 1)
}

/// Marks the invitation used; false when someone else used it first.
pub fn mark_accepted(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: InvitationId,
    user: UserId,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE organization_invitations SET accepted_at = ?3, accepted_by = ?4
         WHERE organization_id = ?1 AND id = ?2 AND accepted_at IS NULL AND cancelled_at IS NULL",
        params![id.to_string(), now, user.to_string()],
    )? == 1)
}

/// Deletes invitations that ended (used, cancelled or expired) more than `before` ago.
pub fn purge_finished(tx: &WriteTx<'_>, ctx: &OrgContext, before: &str) -> Result<usize, DbError> {
    tx.scoped(ctx).execute(
        "DELETE FROM organization_invitations
         WHERE organization_id = ?1 AND (expires_at < ?2 OR accepted_at < ?2 OR cancelled_at < ?2)",
        params![before],
    )
}

/// Only through `unscoped::unscoped_invitation_by_token`: the token is the proof.
pub(in crate::db) fn find_by_token_hash(
    c: &Conn<'_>,
    token_hash: &str,
) -> Result<Option<Invitation>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM organization_invitations WHERE token_hash = ?1"),
        [token_hash],
        from_row,
    )
}

/// Pending invitations (they will become members), for the plan's member limit.
pub fn count_pending(c: &Conn<'_>, ctx: &OrgContext, now: &str) -> Result<i64, DbError> {
    Ok(c
        .scoped(ctx).query_opt(
            "SELECT COUNT(*) FROM organization_invitations
             WHERE organization_id = ?1 AND accepted_at IS NULL AND cancelled_at IS NULL AND expires_at > ?2",
            params![now],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}
