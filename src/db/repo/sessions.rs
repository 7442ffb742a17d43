//! Browser sessions: the cookie holds a random token, the table only its hash.
use rusqlite::{Row, params};

use chrono::{DateTime, Utc};

use super::{opt_time_at, time_at, uuid_at};
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::{SessionId, UserId};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent, revoked_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: SessionId::from_uuid(uuid_at(r, 0)?),
        user_id: UserId::from_uuid(uuid_at(r, 1)?),
        csrf_token: r.get(2)?,
        created_at: time_at(r, 3)?,
        last_seen_at: time_at(r, 4)?,
        expires_at: time_at(r, 5)?,
        ip: r.get(6)?,
        user_agent: r.get(7)?,
        revoked_at: opt_time_at(r, 8)?,
    })
}

pub struct NewSession<'a> {
    pub id: SessionId,
    pub user_id: UserId,
    pub token_hash: &'a str,
    pub csrf_token: &'a str,
    pub now: &'a str,
    pub expires_at: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert(tx: &WriteTx<'_>, s: &NewSession<'_>) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, last_seen_at,
                               expires_at, ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
        params![
            s.id.to_string(),
            s.user_id.to_string(),
            s.token_hash,
            s.csrf_token,
            s.now,
            s.expires_at,
            s.ip,
            s.user_agent
        ],
    )?;
    Ok(())
}

pub fn find_by_hash(c: &Conn<'_>, token_hash: &str) -> Result<Option<Session>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM sessions WHERE token_hash = ?1"),
        [token_hash],
        from_row,
    )
}

pub fn touch(tx: &WriteTx<'_>, id: SessionId, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2",
        params![id.to_string(), now],
    )?;
    Ok(())
}

/// Revokes one of the user's own sessions; false when it is not theirs or already ended.
pub fn revoke(tx: &WriteTx<'_>, user: UserId, id: SessionId, now: &str) -> Result<bool, DbError> {
    Ok(tx.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
        params![id.to_string(), user.to_string(), now],
    )? == 1)
}

/// The user's sessions that can still be used (not revoked, not past their absolute or
/// idle expiry), newest first.
pub fn list_active(
    c: &Conn<'_>,
    user: UserId,
    now: &str,
    idle_cutoff: &str,
) -> Result<Vec<Session>, DbError> {
    c.query_vec(
        &format!(
            "SELECT {COLUMNS} FROM sessions
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 AND last_seen_at > ?3
             ORDER BY created_at DESC"
        ),
        params![user.to_string(), now, idle_cutoff],
        from_row,
    )
}

/// Deletes sessions past use: revoked, expired, or idle beyond the cutoff.
pub fn delete_dead(tx: &WriteTx<'_>, now: &str, idle_cutoff: &str) -> Result<usize, DbError> {
    tx.execute(
        "DELETE FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= ?1 OR last_seen_at <= ?2",
        params![now, idle_cutoff],
    )
}

/// Ends every session of the user; how many were still open.
pub fn revoke_all_for_user(tx: &WriteTx<'_>, user: UserId, now: &str) -> Result<usize, DbError> {
    tx.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user.to_string(), now],
    )
}

/// Ends every session of the user but `keep`; how many were still open.
pub fn revoke_all_except(
    tx: &WriteTx<'_>,
    user: UserId,
    keep: SessionId,
    now: &str,
) -> Result<usize, DbError> {
    tx.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE user_id = ?1 AND id <> ?2 AND revoked_at IS NULL",
        params![user.to_string(), keep.to_string(), now],
    )
}
