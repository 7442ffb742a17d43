//! Users (a global table: a person may belong to many organizations).
use rusqlite::{Row, params};

use chrono::{DateTime, Utc};

use super::{opt_uuid_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::{Email, OrgId, PersonName, UserId, UserStatus};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub is_superuser: bool,
    pub status: UserStatus,
    pub created_at: DateTime<Utc>,
    pub current_organization_id: Option<OrgId>,
}

const COLUMNS: &str =
    "id, email, name, is_superuser, status, created_at, current_organization_id, password_hash";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(User, Option<String>)> {
    Ok((
        User {
            id: UserId::from_uuid(uuid_at(r, 0)?),
            email: r.get(1)?,
            name: r.get(2)?,
            is_superuser: r.get(3)?,
            status: word_at(r, 4)?,
            created_at: time_at(r, 5)?,
            current_organization_id: opt_uuid_at(r, 6)?.map(OrgId::from_uuid),
        },
        r.get(7)?,
    ))
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a Email,
    pub name: &'a PersonName,
    pub password_hash: Option<&'a str>,
    pub is_superuser: bool,
    pub now: &'a str,
}

pub fn insert(tx: &WriteTx<'_>, u: &NewUser<'_>) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO users (id, email, name, password_hash, is_superuser, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            u.id.to_string(),
            u.email.as_str(),
            u.name.as_str(),
            u.password_hash,
            u.is_superuser,
            u.now
        ],
    )?;
    Ok(())
}

/// The user and their password hash.
pub fn find_by_email(
    c: &Conn<'_>,
    email: &Email,
) -> Result<Option<(User, Option<String>)>, DbError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM users WHERE email = ?1"),
        [email.as_str()],
        from_row,
    )
}

pub fn find_by_id(c: &Conn<'_>, id: UserId) -> Result<Option<User>, DbError> {
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        from_row,
    )?
    .map(|(u, _)| u))
}

pub fn count(c: &Conn<'_>) -> Result<i64, DbError> {
    Ok(c.query_opt("SELECT COUNT(*) FROM users", [], |r| r.get(0))?
        .unwrap_or(0))
}

pub fn set_current_org(tx: &WriteTx<'_>, id: UserId, org: OrgId, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE users SET current_organization_id = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), org.to_string(), now],
    )?;
    Ok(())
}

pub fn set_last_login(tx: &WriteTx<'_>, id: UserId, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![id.to_string(), now],
    )?;
    Ok(())
}

/// A user as the instance console lists them.
#[derive(Debug, Clone)]
pub struct ListedUser {
    pub user: User,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Users whose email or name contains `q` (all when empty), by email, a page of `limit`
/// after `offset`, and how many match in all.
pub fn list(
    c: &Conn<'_>,
    q: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ListedUser>, i64), DbError> {
    // instr, not LIKE: a bound LIKE pattern makes SQLite plan the statement again each time.
    let q = q.trim().to_lowercase();
    let rows = c.query_vec(
        &format!(
            "SELECT {COLUMNS}, last_login_at FROM users
             WHERE instr(email, ?1) > 0 OR instr(lower(name), ?1) > 0
             ORDER BY email LIMIT ?2 OFFSET ?3"
        ),
        params![q, limit, offset],
        |r| {
            let (user, _) = from_row(r)?;
            Ok(ListedUser {
                user,
                last_login_at: super::opt_time_at(r, 8)?,
            })
        },
    )?;
    let total = c
        .query_opt(
            "SELECT COUNT(*) FROM users WHERE instr(email, ?1) > 0 OR instr(lower(name), ?1) > 0",
            params![q],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    Ok((rows, total))
}

pub fn last_login(c: &Conn<'_>, id: UserId) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(c.query_opt(
        "SELECT last_login_at FROM users WHERE id = ?1",
        [id.to_string()],
        |r| super::opt_time_at(r, 0),
    )?
    .flatten())
}

pub fn set_status(
    tx: &WriteTx<'_>,
    id: UserId,
    status: UserStatus,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE users SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), status.as_str(), now],
    )?;
    Ok(())
}

pub fn set_superuser(tx: &WriteTx<'_>, id: UserId, on: bool, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE users SET is_superuser = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), on, now],
    )?;
    Ok(())
}

/// Instance administrators who can still sign in.
pub fn count_active_superusers(c: &Conn<'_>) -> Result<i64, DbError> {
    Ok(c.query_opt(
        "SELECT COUNT(*) FROM users WHERE is_superuser = 1 AND status = 'active'",
        [],
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

pub fn set_password_hash(
    tx: &WriteTx<'_>,
    id: UserId,
    hash: &str,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.to_string(), hash, now],
    )?;
    Ok(())
}

/// Sets a new password hash where the stored one is still `old`; false when it changed.
pub fn replace_password_hash(
    tx: &WriteTx<'_>,
    id: UserId,
    old: &str,
    new: &str,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.execute(
        "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE id = ?1 AND password_hash = ?2",
        params![id.to_string(), old, new, now],
    )? == 1)
}

/// The user's stored password hash (`None`: no password, or no such user).
pub fn password_hash(c: &Conn<'_>, id: UserId) -> Result<Option<String>, DbError> {
    Ok(c.query_opt(
        "SELECT password_hash FROM users WHERE id = ?1",
        params![id.to_string()],
        |r| r.get::<_, Option<String>>(0),
    )?
    .flatten())
}
