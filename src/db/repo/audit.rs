//! The audit trail: append-only, one hash chain per organization and one for the instance.
//! Each row stores the previous row's hash and `sha256(prev_hash ‖ canonical row)`.
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::db::{DbError, OrgContext, WriteTx};
use crate::domain::audit::{INSTANCE_AUDIT_ACTIONS, ORG_AUDIT_ACTIONS};
use crate::domain::{UserId, new_id};

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

/// Integrations filter on action names, so a name nobody documented fails the write (and
/// with it the change) instead of slipping into the log.
fn in_vocabulary(actions: &[&str], e: &Entry<'_>) -> Result<(), DbError> {
    if actions.contains(&e.action) {
        Ok(())
    } else {
        Err(DbError::UnknownAuditAction(e.action.to_string()))
    }
}

/// The next link of a chain: its seq, the previous hash, its own hash, and the stored
/// forms of the actor and details.
struct Link {
    seq: i64,
    prev: String,
    hash: String,
    actor: Option<String>,
    details: String,
}

fn link(scope: &str, last: Option<(i64, String)>, e: &Entry<'_>, at: &str) -> Link {
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let details = e.details.to_string();
    let actor = e.actor_id.map(|a| a.to_string());
    let hash = row_hash(
        scope,
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
    Link {
        seq,
        prev,
        hash,
        actor,
        details,
    }
}

/// Appends to the organization's chain. Call it inside the same write job as the change.
pub fn append(tx: &WriteTx<'_>, ctx: &OrgContext, e: &Entry<'_>, at: &str) -> Result<(), DbError> {
    in_vocabulary(ORG_AUDIT_ACTIONS, e)?;
    let scoped = tx.scoped(ctx);
    let last: Option<(i64, String)> = scoped.query_opt(
        "SELECT seq, hash FROM organization_audit_logs WHERE organization_id = ?1
         ORDER BY seq DESC LIMIT 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let l = link(&ctx.org_id().to_string(), last, e, at);
    scoped.execute(
        "INSERT INTO organization_audit_logs (organization_id, id, seq, at, actor_id, actor_email,
             action, resource_type, resource_id, ip, user_agent, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            new_id().to_string(),
            l.seq,
            at,
            l.actor,
            e.actor_email,
            e.action,
            e.resource_type,
            e.resource_id,
            e.ip,
            e.user_agent,
            l.details,
            l.prev,
            l.hash
        ],
    )?;
    Ok(())
}

/// Appends to the instance chain (sign-in failures, user creation, instance settings).
pub fn append_instance(tx: &WriteTx<'_>, e: &Entry<'_>, at: &str) -> Result<(), DbError> {
    in_vocabulary(INSTANCE_AUDIT_ACTIONS, e)?;
    let last: Option<(i64, String)> = tx.query_opt(
        "SELECT seq, hash FROM instance_audit_logs ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let l = link("instance", last, e, at);
    tx.execute(
        "INSERT INTO instance_audit_logs (id, seq, at, actor_id, actor_email, action,
             resource_type, resource_id, ip, user_agent, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            new_id().to_string(),
            l.seq,
            at,
            l.actor,
            e.actor_email,
            e.action,
            e.resource_type,
            e.resource_id,
            e.ip,
            e.user_agent,
            l.details,
            l.prev,
            l.hash
        ],
    )?;
    Ok(())
}

/// One audit row as read back (for the audit API and for tests).
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub seq: i64,
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
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM organization_audit_logs
             WHERE organization_id = ?1 ORDER BY seq DESC LIMIT ?2"
        ),
        params![limit],
        record_from_row,
    )
}

/// The newest rows of the instance log (instance administration, tests).
pub fn recent_instance(c: &crate::db::Conn<'_>, limit: i64) -> Result<Vec<Record>, DbError> {
    c.query_vec(
        &format!("SELECT {RECORD_COLUMNS} FROM instance_audit_logs ORDER BY seq DESC LIMIT ?1"),
        [limit],
        record_from_row,
    )
}

const RECORD_COLUMNS: &str = "id, seq, at, actor_id, actor_email, action, resource_type, resource_id, ip, user_agent, details";

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        actor_id: r.get(3)?,
        actor_email: r.get(4)?,
        action: r.get(5)?,
        resource_type: r.get(6)?,
        resource_id: r.get(7)?,
        ip: r.get(8)?,
        user_agent: r.get(9)?,
        details: super::json_at(r, 10)?,
    })
}

/// What to select from an organization's log; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor_id: Option<String>,
    /// Inclusive lower bound on `at` (RFC 3339).
    pub since: Option<String>,
    /// Exclusive upper bound on `at`.
    pub until: Option<String>,
}

/// Matching rows, newest first, with seq below `before_seq` when given.
pub fn query(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    f: &Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Record>, DbError> {
    // One statement for every combination of filters: each is "unset or equal".
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM organization_audit_logs
             WHERE organization_id = ?1 AND seq < ?2
               AND (?3 IS NULL OR action = ?3)
               AND (?4 IS NULL OR resource_type = ?4)
               AND (?5 IS NULL OR resource_id = ?5)
               AND (?6 IS NULL OR actor_id = ?6)
               AND (?7 IS NULL OR at >= ?7)
               AND (?8 IS NULL OR at < ?8)
             ORDER BY seq DESC LIMIT ?9"
        ),
        params![
            before_seq.unwrap_or(i64::MAX),
            f.action,
            f.resource_type,
            f.resource_id,
            f.actor_id,
            f.since,
            f.until,
            limit
        ],
        record_from_row,
    )
}

/// Matching rows of the instance chain, newest first, with seq below `before_seq`.
pub fn query_instance(
    c: &crate::db::Conn<'_>,
    f: &Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Record>, DbError> {
    c.query_vec(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM instance_audit_logs
             WHERE seq < ?1
               AND (?2 IS NULL OR action = ?2)
               AND (?3 IS NULL OR resource_type = ?3)
               AND (?4 IS NULL OR resource_id = ?4)
               AND (?5 IS NULL OR actor_id = ?5)
               AND (?6 IS NULL OR at >= ?6)
               AND (?7 IS NULL OR at < ?7)
             ORDER BY seq DESC LIMIT ?8"
        ),
        params![
            before_seq.unwrap_or(i64::MAX),
            f.action,
            f.resource_type,
            f.resource_id,
            f.actor_id,
            f.since,
            f.until,
            limit
        ],
        record_from_row,
    )
}

/// What an audit row points to, as its organization knows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownName {
    /// A member's or team's name, an invitation's email, a resource's name.
    pub name: String,
    /// A member's email, an organization's slug; empty otherwise.
    pub extra: String,
}

/// The kinds `names_in_org` can look up (the `resource_type`s of audit rows, and
/// `member` for actors).
pub const NAMED_KINDS: &[&str] = &[
    "member",
    "team",
    "invitation",
    "api_token",
    "agent",
    "workflow",
    "document",
    "tool",
    "knowledge_base",
    "conversation",
    "organization",
];

/// The current names of what `refs` (kind, id) point to, in one statement. Every branch
/// is bound to this organization: an id that now lives in another organization (a moved
/// resource, a user who is no member here) finds nothing, so no other tenant's name can
/// come back.
pub fn names_in_org(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    refs: &[(String, String)],
) -> Result<std::collections::HashMap<(String, String), KnownName>, DbError> {
    if refs.is_empty() {
        return Ok(Default::default());
    }
    let wanted = serde_json::to_string(refs).unwrap_or_else(|_| "[]".into());
    let rows = c.scoped(ctx).query_vec(
        "WITH wanted(kind, id) AS (
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2))
         SELECT w.kind, w.id, u.name, u.email FROM wanted w
             JOIN organization_members m ON m.organization_id = ?1 AND m.user_id = w.id
             JOIN users u ON u.id = m.user_id WHERE w.kind = 'member'
         UNION ALL SELECT w.kind, w.id, t.name, '' FROM wanted w
             JOIN teams t ON t.organization_id = ?1 AND t.id = w.id WHERE w.kind = 'team'
         UNION ALL SELECT w.kind, w.id, i.email, '' FROM wanted w
             JOIN organization_invitations i ON i.organization_id = ?1 AND i.id = w.id
             WHERE w.kind = 'invitation'
         UNION ALL SELECT w.kind, w.id, k.name, '' FROM wanted w
             JOIN api_tokens k ON k.organization_id = ?1 AND k.id = w.id WHERE w.kind = 'api_token'
         UNION ALL SELECT w.kind, w.id, a.name, '' FROM wanted w
             JOIN agents a ON a.organization_id = ?1 AND a.id = w.id WHERE w.kind = 'agent'
         UNION ALL SELECT w.kind, w.id, f.name, '' FROM wanted w
             JOIN workflows f ON f.organization_id = ?1 AND f.id = w.id WHERE w.kind = 'workflow'
         UNION ALL SELECT w.kind, w.id, d.name, '' FROM wanted w
             JOIN uploaded_documents d ON d.organization_id = ?1 AND d.id = w.id
             WHERE w.kind = 'document'
         UNION ALL SELECT w.kind, w.id, x.name, '' FROM wanted w
             JOIN tools x ON x.organization_id = ?1 AND x.id = w.id WHERE w.kind = 'tool'
         UNION ALL SELECT w.kind, w.id, b.name, '' FROM wanted w
             JOIN knowledge_bases b ON b.organization_id = ?1 AND b.id = w.id
             WHERE w.kind = 'knowledge_base'
         UNION ALL SELECT w.kind, w.id, v.name, '' FROM wanted w
             JOIN conversations v ON v.organization_id = ?1 AND v.id = w.id
             WHERE w.kind = 'conversation'
         UNION ALL SELECT w.kind, w.id, o.name, o.slug FROM wanted w
             JOIN organizations o ON o.id = ?1 AND o.id = w.id WHERE w.kind = 'organization'",
        params![wanted],
        |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                KnownName {
                    name: r.get(2)?,
                    extra: r.get(3)?,
                },
            ))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// One row as the hash covers it, for verification.
#[derive(Debug, Clone)]
pub struct ChainRow {
    pub id: String,
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl ChainRow {
    pub fn computed_hash(&self, scope: &str) -> String {
        row_hash(
            scope,
            self.seq,
            &self.at,
            self.actor_id.as_deref(),
            self.actor_email.as_deref(),
            &self.action,
            &self.resource_type,
            self.resource_id.as_deref(),
            self.ip.as_deref(),
            self.user_agent.as_deref(),
            &self.details,
            &self.prev_hash,
        )
    }
}

const CHAIN_COLUMNS: &str =
    "id, seq, at, actor_id, actor_email, action, resource_type, resource_id,
    ip, user_agent, details, prev_hash, hash";

fn chain_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainRow> {
    Ok(ChainRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        actor_id: r.get(3)?,
        actor_email: r.get(4)?,
        action: r.get(5)?,
        resource_type: r.get(6)?,
        resource_id: r.get(7)?,
        ip: r.get(8)?,
        user_agent: r.get(9)?,
        details: r.get(10)?,
        prev_hash: r.get(11)?,
        hash: r.get(12)?,
    })
}

/// A batch of the organization's chain in seq order, after `after_seq`.
pub fn chain_batch(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<ChainRow>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {CHAIN_COLUMNS} FROM organization_audit_logs
             WHERE organization_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ),
        params![after_seq, limit],
        chain_from_row,
    )
}

/// A batch of the instance chain in seq order, after `after_seq`.
pub fn instance_chain_batch(
    c: &crate::db::Conn<'_>,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<ChainRow>, DbError> {
    c.query_vec(
        &format!(
            "SELECT {CHAIN_COLUMNS} FROM instance_audit_logs WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ),
        params![after_seq, limit],
        chain_from_row,
    )
}

/// The anchor a purge left: rows up to `seq` were removed, the last of them hashed `hash`.
/// Read from the organization's `audit.purged` rows.
pub fn purge_anchor(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
) -> Result<Option<(i64, String)>, DbError> {
    let rows = c.scoped(ctx).query_vec(
        "SELECT details FROM organization_audit_logs
         WHERE organization_id = ?1 AND action = 'audit.purged' ORDER BY seq DESC LIMIT 1",
        &[],
        |r| super::json_at::<serde_json::Value>(r, 0),
    )?;
    Ok(rows.into_iter().next().and_then(|d| {
        Some((
            d["up_to_seq"].as_i64()?,
            d["up_to_hash"].as_str()?.to_string(),
        ))
    }))
}

/// Deletes rows older than `cutoff` (never the newest row, which anchors the chain);
/// returns how many went and the seq and hash of the last one removed.
pub fn purge_before(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    cutoff: &str,
) -> Result<Option<(usize, i64, String)>, DbError> {
    let scoped = tx.scoped(ctx);
    let last: Option<(i64, String)> = scoped.query_opt(
        "SELECT seq, hash FROM organization_audit_logs
         WHERE organization_id = ?1 AND at < ?2
           AND seq < (SELECT MAX(seq) FROM organization_audit_logs WHERE organization_id = ?1)
         ORDER BY seq DESC LIMIT 1",
        params![cutoff],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((seq, hash)) = last else {
        return Ok(None);
    };
    let n = scoped.execute(
        "DELETE FROM organization_audit_logs WHERE organization_id = ?1 AND seq <= ?2",
        params![seq],
    )?;
    Ok(Some((n, seq, hash)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn entry(action: &str) -> Entry<'_> {
        Entry {
            actor_id: None,
            actor_email: None,
            action,
            resource_type: "user",
            resource_id: None,
            ip: None,
            user_agent: None,
            details: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn an_action_outside_the_documented_vocabulary_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let refused = db
            .write(|tx| append_instance(tx, &entry("user.renamed"), "2030-01-01T00:00:00Z"))
            .await;
        assert!(
            matches!(&refused, Err(DbError::UnknownAuditAction(a)) if a == "user.renamed"),
            "{refused:?}"
        );
        // An organization action is not an instance action either.
        let wrong_log = db
            .write(|tx| append_instance(tx, &entry("team.created"), "2030-01-01T00:00:00Z"))
            .await;
        assert!(matches!(wrong_log, Err(DbError::UnknownAuditAction(_))));
        db.write(|tx| append_instance(tx, &entry("user.created"), "2030-01-01T00:00:00Z"))
            .await
            .unwrap();
        let rows: i64 = db
            .read(|tx| {
                tx.query_opt("SELECT COUNT(*) FROM instance_audit_logs", [], |r| r.get(0))
                    .map(|n| n.unwrap_or(0))
            })
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
}
