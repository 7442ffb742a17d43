//! Instance-wide settings (key/value), e.g. whether open signup is allowed.
use rusqlite::params;

use crate::db::{Conn, DbError, WriteTx};

pub const SIGNUP_ENABLED: &str = "signup_enabled";

pub fn get(c: &Conn<'_>, key: &str) -> Result<Option<String>, DbError> {
    c.query_opt(
        "SELECT value FROM instance_settings WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
}

pub fn set(tx: &WriteTx<'_>, key: &str, value: &str, now: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO instance_settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now],
    )?;
    Ok(())
}

pub fn get_bool(c: &Conn<'_>, key: &str) -> Result<bool, DbError> {
    Ok(get(c, key)?.is_some_and(|v| v == "true"))
}

/// The plan new organizations and personal workspaces start on (default "free").
pub const DEFAULT_PLAN: &str = "default_plan";
