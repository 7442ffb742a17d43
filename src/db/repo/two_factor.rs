//! Users' second factors (global tables): the sealed TOTP secret and the hashes of the
//! one-time recovery codes.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_time_at, time_at, uuid_at};
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::{OrgId, UserId};

#[derive(Debug, Clone)]
pub struct Totp {
    pub user_id: UserId,
    /// The organization whose data key sealed the secret (the user's personal one).
    pub key_org: OrgId,
    pub key_id: String,
    pub secret_sealed: String,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The newest time step a code was accepted for.
    pub last_step: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub fn find(c: &Conn<'_>, user: UserId) -> Result<Option<Totp>, DbError> {
    c.query_opt(
        "SELECT user_id, key_org, key_id, secret_sealed, confirmed_at, last_step, created_at
         FROM user_totp WHERE user_id = ?1",
        params![user.to_string()],
        |r| {
            Ok(Totp {
                user_id: UserId::from_uuid(uuid_at(r, 0)?),
                key_org: OrgId::from_uuid(uuid_at(r, 1)?),
                key_id: r.get(2)?,
                secret_sealed: r.get(3)?,
                confirmed_at: opt_time_at(r, 4)?,
                last_step: r.get(5)?,
                created_at: time_at(r, 6)?,
            })
        },
    )
}

/// Whether the user has a confirmed second factor.
pub fn is_enabled(c: &Conn<'_>, user: UserId) -> Result<bool, DbError> {
    Ok(c.query_opt(
        "SELECT 1 FROM user_totp WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
        params![user.to_string()],
        |_| Ok(()),
    )?
    .is_some())
}

/// A new, unconfirmed secret for the user (replacing an unconfirmed one).
pub fn start(
    tx: &WriteTx<'_>,
    user: UserId,
    key_org: OrgId,
    key_id: &str,
    secret_sealed: &str,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO user_totp (user_id, key_org, key_id, secret_sealed, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET key_org = excluded.key_org,
             key_id = excluded.key_id, secret_sealed = excluded.secret_sealed,
             confirmed_at = NULL, last_step = NULL, created_at = excluded.created_at
         WHERE user_totp.confirmed_at IS NULL",
        params![
            user.to_string(),
            key_org.to_string(),
            key_id,
            secret_sealed,
            now
        ],
    )?;
    Ok(())
}

/// Accepts a code of time step `step`: only when it is newer than the last one accepted
/// (a replay within the window changes nothing and returns false). Confirms a pending
/// enrolment when `confirm` is set.
pub fn accept_step(
    tx: &WriteTx<'_>,
    user: UserId,
    step: i64,
    confirm: bool,
    now: &str,
) -> Result<bool, DbError> {
    let n = tx.execute(
        "UPDATE user_totp SET last_step = ?2,
             confirmed_at = CASE WHEN ?3 THEN COALESCE(confirmed_at, ?4) ELSE confirmed_at END
         WHERE user_id = ?1 AND (last_step IS NULL OR last_step < ?2)
           AND (?3 OR confirmed_at IS NOT NULL)",
        params![user.to_string(), step, confirm, now],
    )?;
    Ok(n == 1)
}

/// Removes the user's second factor and recovery codes; whether there was one.
pub fn remove(tx: &WriteTx<'_>, user: UserId) -> Result<bool, DbError> {
    let n = tx.execute(
        "DELETE FROM user_totp WHERE user_id = ?1",
        params![user.to_string()],
    )?;
    tx.execute(
        "DELETE FROM user_recovery_codes WHERE user_id = ?1",
        params![user.to_string()],
    )?;
    Ok(n > 0)
}

/// Replaces the user's recovery codes by these hashes.
pub fn replace_recovery_codes(
    tx: &WriteTx<'_>,
    user: UserId,
    hashes: &[String],
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "DELETE FROM user_recovery_codes WHERE user_id = ?1",
        params![user.to_string()],
    )?;
    for h in hashes {
        tx.execute(
            "INSERT INTO user_recovery_codes (id, user_id, code_hash, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                crate::domain::new_id().to_string(),
                user.to_string(),
                h,
                now
            ],
        )?;
    }
    Ok(())
}

/// Uses up the unused recovery code with this hash; false when there is none.
pub fn use_recovery_code(
    tx: &WriteTx<'_>,
    user: UserId,
    code_hash: &str,
    now: &str,
) -> Result<bool, DbError> {
    let n = tx.execute(
        "UPDATE user_recovery_codes SET used_at = ?3
         WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        params![user.to_string(), code_hash, now],
    )?;
    Ok(n == 1)
}

/// How many of the user's recovery codes are still unused.
pub fn recovery_codes_left(c: &Conn<'_>, user: UserId) -> Result<i64, DbError> {
    Ok(c.query_opt(
        "SELECT COUNT(*) FROM user_recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        params![user.to_string()],
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

/// The user's personal organization (the one whose data key seals their secret).
pub fn personal_org_of(c: &Conn<'_>, user: UserId) -> Result<Option<OrgId>, DbError> {
    c.query_opt(
        "SELECT id FROM organizations WHERE created_by = ?1 AND kind = 'personal'
         ORDER BY created_at LIMIT 1",
        params![user.to_string()],
        |r| Ok(OrgId::from_uuid(uuid_at(r, 0)?)),
    )
}
