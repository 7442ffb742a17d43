//! The audit trail: append-only, one hash chain per organization and one for the instance.
//! Each row stores the previous row's hash and `sha256(prev_hash ‖ canonical row)`.
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::db::{DbError, OrgContext, WriteTx};
use crate::domain::{OrgId, UserId, new_id};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event, as the service layer describes it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor_id: Option<UserId>,
    pub actor_email: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<String>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub details: serde_json::Value,
}

/// The content a row's hash covers, in a fixed order.
#[allow(clippy::too_many_arguments)]
pub fn row_hash(
    scope: &str,
    seq: i64,
    at: &str,
    actor_id: Option<&str>,
    actor_email: Option<&str>,
    action: &str,
    resource_type: &str,
    resource_id: Option<&str>,
    ip: Option<&str>,
    user_agent: Option<&str>,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([
        scope,
        seq,
        at,
        actor_id,
        actor_email,
        action,
        resource_type,
        resource_id,
        ip,
        user_agent,
        details
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Appends to the organization's chain. Call it inside the same write job as the change.
pub fn append(tx: &WriteTx<'_>, ctx: &OrgContext, e: &Entry<'_>, at: &str) -> Result<(), DbError> {
    append_for_org(tx, ctx.org_id(), e, at)
}

/// For the few events that happen before a context exists (creating the organization).
pub(crate) fn append_for_org(
    tx: &WriteTx<'_>,
    org: OrgId,
    e: &Entry<'_>,
    at: &str,
) -> Result<(), DbError> {
    let org_s = org.to_string();
    let last: Option<(i64, String)> = tx.query_opt(
        "SELECT seq, hash FROM organization_audit_logs WHERE organization_id = ?1
         ORDER BY seq DESC LIMIT 1",
        [&org_s],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let details = e.details.to_string();
    let actor = e.actor_id.map(|a| a.to_string());
    let hash = row_hash(
        &org_s,
        seq,
        at,
        actor.as_deref(),
        e.actor_email,
        e.action,
        e.resource_type,
        e.resource_id.as_deref(),
        e.ip,
        e.user_agent,
        &details,
        &prev,
    );
    tx.execute(
        "INSERT INTO organization_audit_logs (id, organization_id, seq, at, actor_id, actor_email,
             action, resource_type, resource_id, ip, user_agent, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            new_id().to_string(),
            org_s,
            seq,
            at,
            actor,
            e.actor_email,
            e.action,
            e.resource_type,
            e.resource_id,
            e.ip,
            e.user_agent,
            details,
            prev,
            hash
        ],
    )?;
    Ok(())
}

/// Appends to the instance chain (sign-in failures, user creation, instance settings).
pub fn append_instance(tx: &WriteTx<'_>, e: &Entry<'_>, at: &str) -> Result<(), DbError> {
    let last: Option<(i64, String)> = tx.query_opt(
        "SELECT seq, hash FROM instance_audit_logs ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let details = e.details.to_string();
    let actor = e.actor_id.map(|a| a.to_string());
    let hash = row_hash(
        "instance",
        seq,
        at,
        actor.as_deref(),
        e.actor_email,
        e.action,
        e.resource_type,
        e.resource_id.as_deref(),
        e.ip,
        e.user_agent,
        &details,
        &prev,
    );
    tx.execute(
        "INSERT INTO instance_audit_logs (id, seq, at, actor_id, actor_email, action,
             resource_type, resource_id, ip, user_agent, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            new_id().to_string(),
            seq,
            at,
            actor,
            e.actor_email,
            e.action,
            e.resource_type,
            e.resource_id,
            e.ip,
            e.user_agent,
            details,
            prev,
            hash
        ],
    )?;
    Ok(())
}

/// One audit row as read back (for the audit API and for tests).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub id: String,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

/// The newest rows of the organization's log, newest first.
pub fn recent(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    limit: i64,
) -> Result<Vec<Record>, DbError> {
    c.query_vec(
        "SELECT id, at, actor_id, actor_email, action, resource_type, resource_id, ip,
                user_agent, details
         FROM organization_audit_logs WHERE organization_id = ?1 ORDER BY seq DESC LIMIT ?2",
        params![ctx.org_id().to_string(), limit],
        |r| {
            Ok(Record {
                id: r.get(0)?,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor_email: r.get(3)?,
                action: r.get(4)?,
                resource_type: r.get(5)?,
                resource_id: r.get(6)?,
                ip: r.get(7)?,
                user_agent: r.get(8)?,
                details: super::json_at(r, 9)?,
            })
        },
    )
}

/// The newest rows of the instance log (instance administration, tests).
pub fn recent_instance(c: &crate::db::Conn<'_>, limit: i64) -> Result<Vec<Record>, DbError> {
    c.query_vec(
        "SELECT id, at, actor_id, actor_email, action, resource_type, resource_id, ip,
                user_agent, details
         FROM instance_audit_logs ORDER BY seq DESC LIMIT ?1",
        [limit],
        |r| {
            Ok(Record {
                id: r.get(0)?,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor_email: r.get(3)?,
                action: r.get(4)?,
                resource_type: r.get(5)?,
                resource_id: r.get(6)?,
                ip: r.get(7)?,
                user_agent: r.get(8)?,
                details: super::json_at(r, 9)?,
            })
        },
    )
}
