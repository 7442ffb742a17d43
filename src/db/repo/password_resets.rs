//! One-time links to set a new password (only the token's hash is stored).
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::uuid_at;
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::UserId;

pub fn insert(
    tx: &WriteTx<'_>,
    user: UserId,
    token_hash: &str,
    created_by: Option<UserId>,
    now: &str,
    expires_at: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO password_resets (id, user_id, token_hash, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            crate::domain::new_id().to_string(),
            user.to_string(),
            token_hash,
            created_by.map(|u| u.to_string()),
            now,
            expires_at
        ],
    )?;
    Ok(())
}

/// The user a reset token belongs to, when it is unused and not expired at `now`.
pub fn find_usable(
    c: &Conn<'_>,
    token_hash: &str,
    now: &str,
) -> Result<Option<(String, UserId, DateTime<Utc>)>, DbError> {
    c.query_opt(
        "SELECT id, user_id, expires_at FROM password_resets
         WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![token_hash, now],
        |r| {
            Ok((
                r.get(0)?,
                UserId::from_uuid(uuid_at(r, 1)?),
                super::time_at(r, 2)?,
            ))
        },
    )
}

/// Marks the reset used, and every other open reset of the same user with it.
pub fn use_up(tx: &WriteTx<'_>, user: UserId, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
        params![user.to_string(), now],
    )?;
    Ok(())
}
