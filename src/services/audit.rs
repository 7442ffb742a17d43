//! Reading the audit trail: filtered pages, streaming export, chain verification, and the
//! retention purge (which is itself audited and leaves an anchor for verification).
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::require;
use crate::db::repo::audit::{self, ChainRow, Filter, GENESIS, Record};
use crate::db::unscoped::unscoped_all_org_ids;
use crate::db::{Db, OrgContext};
use crate::domain::{OrgSettings, fmt_time, now};
use crate::error::{AppError, Result};

pub async fn query(
    db: &Db,
    ctx: &OrgContext,
    filter: Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<Record>, Option<i64>)> {
    require(ctx, "audit.view")?;
    let ctx = ctx.clone();
    db.read(move |tx| {
        let mut rows = audit::query(tx, &ctx, &filter, before_seq, limit + 1)?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        Ok((rows, next))
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

const EXPORT_BATCH: i64 = 500;

/// The same rows as `query`, newest first, as a stream of CSV or NDJSON chunks read in
/// batches (memory stays flat however long the log is).
pub fn export(
    db: Db,
    ctx: OrgContext,
    filter: Filter,
    format: ExportFormat,
) -> Result<impl Stream<Item = Result<Bytes>>> {
    require(&ctx, "audit.view")?;
    let header = match format {
        ExportFormat::Csv => Some(Bytes::from_static(
            b"id,at,actor_id,actor_email,action,resource_type,resource_id,ip,user_agent,details\r\n",
        )),
        ExportFormat::Ndjson => None,
    };
    let state = (db, ctx, filter, None::<i64>, false, header);
    // Fused: the compression layer polls once more after the end, and a bare `unfold`
    // panics when polled after it finished, which cut compressed downloads off mid-body.
    Ok(futures_util::stream::unfold(
        state,
        move |(db, ctx, filter, before, done, header)| async move {
            if let Some(h) = header {
                return Some((Ok(h), (db, ctx, filter, before, done, None)));
            }
            if done {
                return None;
            }
            let (c2, f2) = (ctx.clone(), filter.clone());
            let batch = db
                .read(move |tx| {
                    Ok::<_, AppError>(audit::query(tx, &c2, &f2, before, EXPORT_BATCH)?)
                })
                .await;
            match batch {
                Err(e) => Some((Err(e), (db, ctx, filter, before, true, None))),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map(|r| r.seq);
                    let finished = (rows.len() as i64) < EXPORT_BATCH;
                    let mut out = String::new();
                    for r in &rows {
                        match format {
                            ExportFormat::Csv => csv_row(&mut out, r),
                            ExportFormat::Ndjson => {
                                out.push_str(
                                    &serde_json::to_string(&export_json(r)).unwrap_or_default(),
                                );
                                out.push('\n');
                            }
                        }
                    }
                    Some((
                        Ok(Bytes::from(out)),
                        (db, ctx, filter, last, finished, None),
                    ))
                }
            }
        },
    )
    .fuse())
}

pub fn export_json(r: &Record) -> serde_json::Value {
    json!({
        "id": r.id, "at": r.at,
        "actor": {"id": r.actor_id, "email": r.actor_email},
        "action": r.action, "resource_type": r.resource_type, "resource_id": r.resource_id,
        "ip": r.ip, "user_agent": r.user_agent, "details": r.details,
    })
}

/// One CSV field: quoted when needed, and defused when a spreadsheet would read it as a
/// formula (audit rows carry user-chosen names).
fn csv_field(out: &mut String, v: &str) {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&v);
    }
}

/// One CSV record's fields, comma-separated and each made safe by `csv_field`; the caller
/// ends the line.
pub(crate) fn csv_fields<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f.as_ref());
    }
}

fn csv_row(out: &mut String, r: &Record) {
    let details = r.details.to_string();
    let fields = [
        r.id.as_str(),
        r.at.as_str(),
        r.actor_id.as_deref().unwrap_or(""),
        r.actor_email.as_deref().unwrap_or(""),
        r.action.as_str(),
        r.resource_type.as_str(),
        r.resource_id.as_deref().unwrap_or(""),
        r.ip.as_deref().unwrap_or(""),
        r.user_agent.as_deref().unwrap_or(""),
        details.as_str(),
    ];
    csv_fields(out, &fields);
    out.push_str("\r\n");
}

/// The outcome of walking one chain.
#[derive(Debug, Clone)]
pub struct ChainReport {
    /// "instance" or the organization's slug and id.
    pub scope: String,
    pub rows: u64,
    /// The first broken link: (seq, row id, what is wrong).
    pub broken: Option<(i64, String, String)>,
}

fn walk(
    scope_key: &str,
    rows: &[ChainRow],
    expected_prev: &mut String,
    expected_seq: &mut i64,
) -> Option<(i64, String, String)> {
    for r in rows {
        if r.seq != *expected_seq {
            return Some((
                r.seq,
                r.id.clone(),
                format!("row missing: expected seq {expected_seq}, found {}", r.seq),
            ));
        }
        if r.prev_hash != *expected_prev {
            return Some((
                r.seq,
                r.id.clone(),
                "prev_hash does not match the previous row".into(),
            ));
        }
        if r.computed_hash(scope_key) != r.hash {
            return Some((
                r.seq,
                r.id.clone(),
                "content does not match its hash (row edited)".into(),
            ));
        }
        *expected_prev = r.hash.clone();
        *expected_seq += 1;
    }
    None
}

/// Verifies the instance chain and every organization's (or the one named by id/slug).
pub async fn verify(db: &Db, org: Option<String>) -> Result<Vec<ChainReport>> {
    db.read(move |tx| {
        let mut reports = Vec::new();
        let ids = match &org {
            Some(r) => vec![
                crate::db::repo::orgs::find_by_ref(tx, r)?
                    .ok_or_else(AppError::not_found)?
                    .id,
            ],
            None => unscoped_all_org_ids(tx)?,
        };
        if org.is_none() {
            let (mut prev, mut seq, mut count, mut broken) = (GENESIS.to_string(), 1, 0u64, None);
            loop {
                let rows = audit::instance_chain_batch(tx, seq - 1, 1000)?;
                if rows.is_empty() {
                    break;
                }
                count += rows.len() as u64;
                if let Some(b) = walk("instance", &rows, &mut prev, &mut seq) {
                    broken = Some(b);
                    break;
                }
            }
            reports.push(ChainReport {
                scope: "instance".into(),
                rows: count,
                broken,
            });
        }
        for id in ids {
            let Some(ctx) = crate::db::scope::SystemScope::new("audit-verify").in_org(tx, id)?
            else {
                continue;
            };
            let key = id.to_string();
            let (mut prev, mut seq) = match audit::purge_anchor(tx, &ctx)? {
                Some((s, h)) => (h, s + 1),
                None => (GENESIS.to_string(), 1),
            };
            let (mut count, mut broken) = (0u64, None);
            loop {
                let rows = audit::chain_batch(tx, &ctx, seq - 1, 1000)?;
                if rows.is_empty() {
                    break;
                }
                count += rows.len() as u64;
                if let Some(b) = walk(&key, &rows, &mut prev, &mut seq) {
                    broken = Some(b);
                    break;
                }
            }
            // Rows before the anchor that were not purged would also be a break; the walk
            // starts at anchor+1, so a gap shows up as "row missing".
            reports.push(ChainReport {
                scope: format!("{} ({})", ctx.org().slug, id),
                rows: count,
                broken,
            });
        }
        Ok(reports)
    })
    .await
}

/// Applies every organization's audit retention: deletes rows older than the setting
/// and appends an `audit.purged` row that anchors the remaining chain.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let ids = db
        .read(|tx| Ok::<_, AppError>(unscoped_all_org_ids(tx)?))
        .await?;
    let mut total = 0u64;
    for id in ids {
        total += db
            .write(move |tx| {
                let Some(ctx) =
                    crate::db::scope::SystemScope::new("audit-retention").in_org(tx, id)?
                else {
                    return Ok(0);
                };
                let Some(days) = OrgSettings::from_stored(&ctx.org().settings).audit_retention_days
                else {
                    return Ok(0);
                };
                let at = now();
                let cutoff = fmt_time(at - chrono::Duration::days(i64::from(days)));
                let Some((n, seq, hash)) = audit::purge_before(tx, &ctx, &cutoff)? else {
                    return Ok(0);
                };
                let entry = audit::Entry {
                    actor_id: None,
                    actor_email: None,
                    action: "audit.purged",
                    resource_type: "audit_log",
                    resource_id: None,
                    ip: None,
                    user_agent: None,
                    details: json!({"removed": n, "older_than": cutoff, "retention_days": days,
                                    "up_to_seq": seq, "up_to_hash": hash}),
                };
                audit::append(tx, &ctx, &entry, &fmt_time(at))?;
                Ok::<_, AppError>(n as u64)
            })
            .await?;
    }
    Ok(total)
}
