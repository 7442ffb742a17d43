//! API tokens: `xa_…` secrets bound to one user and one organization; only hashes stored.
use rusqlite::{Row, params};

use chrono::{DateTime, Utc};

use super::{opt_time_at, time_at, uuid_at};
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::{ApiTokenId, OrgId, UserId};

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub organization_id: OrgId,
    pub name: String,
    pub token_hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, user_id, organization_id, name, token_hint, created_at, expires_at,
                       last_used_at, revoked_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId::from_uuid(uuid_at(r, 0)?),
        user_id: UserId::from_uuid(uuid_at(r, 1)?),
        organization_id: OrgId::from_uuid(uuid_at(r, 2)?),
        name: r.get(3)?,
        token_hint: r.get(4)?,
        created_at: time_at(r, 5)?,
        expires_at: opt_time_at(r, 6)?,
        last_used_at: opt_time_at(r, 7)?,
        revoked_at: opt_time_at(r, 8)?,
    })
}

pub struct NewToken<'a> {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub organization_id: OrgId,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub token_hint: &'a str,
    pub now: &'a str,
    pub expires_at: Option<&'a str>,
}

pub fn insert(tx: &WriteTx<'_>, t: &NewToken<'_>) -> Result<ApiToken, DbError> {
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, organization_id, name, token_hash, token_hint,
                                 created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.id.to_string(),
            t.user_id.to_string(),
            t.organization_id.to_string(),
            t.name,
            t.token_hash,
            t.token_hint,
            t.now,
            t.expires_at
        ],
    )?;
    find(tx, t.user_id, t.id)?.ok_or(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

pub fn find(c: &Conn<'_>, user: UserId, id: ApiTokenId) -> Result<Option<ApiToken>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1 AND user_id = ?2"),
        params![id.to_string(), user.to_string()],
        from_row,
    )
}

pub fn find_by_hash(c: &Conn<'_>, token_hash: &str) -> Result<Option<ApiToken>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
        [token_hash],
        from_row,
    )
}

/// The user's tokens, newest first, revoked ones included (they show as revoked).
pub fn list_for_user(c: &Conn<'_>, user: UserId) -> Result<Vec<ApiToken>, DbError> {
    c.query_vec(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY created_at DESC"),
        [user.to_string()],
        from_row,
    )
}

pub fn revoke(tx: &WriteTx<'_>, user: UserId, id: ApiTokenId, now: &str) -> Result<bool, DbError> {
    Ok(tx.execute(
        "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![id.to_string(), user.to_string(), now],
    )? == 1)
}

pub fn touch(tx: &WriteTx<'_>, id: ApiTokenId, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id.to_string(), now],
    )?;
    Ok(())
}

/// Revokes every API token of the user; how many were still valid.
pub fn revoke_all_for_user(tx: &WriteTx<'_>, user: UserId, now: &str) -> Result<usize, DbError> {
    tx.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user.to_string(), now],
    )
}

/// Revokes the member's API tokens of the context's organization; how many were valid.
pub fn revoke_member_tokens(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    user: UserId,
    now: &str,
) -> Result<usize, DbError> {
    tx.scoped(ctx).execute(
        "UPDATE api_tokens SET revoked_at = ?3
         WHERE organization_id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![user.to_string(), now],
    )
}
