//! Reading the audit trail: filtered pages, streaming export, chain verification, and the
//! retention purge (which is itself audited and leaves an anchor for verification).
use super::Services;
use crate::domain::Permission;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;

use super::csv_text::CsvText;
use super::require;
use crate::db::repo::audit::{self, ChainRow, Filter, GENESIS, Record};
use crate::db::unscoped::unscoped_all_org_ids;
use crate::db::{Db, OrgContext};
use crate::domain::{OrgSettings, fmt_time};
use crate::error::{AppError, Result};

pub async fn query(
    svc: &Services,
    ctx: &OrgContext,
    filter: Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<Record>, Option<i64>)> {
    require(ctx, Permission::AuditView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| Ok(page_of(tx, &Chain::Org(ctx), &filter, before_seq, limit)?))
        .await
}

/// A page of the instance chain (the console).
pub async fn query_instance(
    svc: &Services,
    _admin: &super::admin::InstanceAdmin,
    filter: Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<Record>, Option<i64>)> {
    svc.db
        .read(move |tx| Ok(page_of(tx, &Chain::Instance, &filter, before_seq, limit)?))
        .await
}

/// Which hash chain a read is about.
#[derive(Clone)]
enum Chain {
    Org(OrgContext),
    Instance,
}

fn rows_of(
    tx: &crate::db::Conn<'_>,
    chain: &Chain,
    filter: &Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> std::result::Result<Vec<Record>, crate::db::DbError> {
    match chain {
        Chain::Org(ctx) => audit::query(tx, ctx, filter, before_seq, limit),
        Chain::Instance => audit::query_instance(tx, filter, before_seq, limit),
    }
}

fn page_of(
    tx: &crate::db::Conn<'_>,
    chain: &Chain,
    filter: &Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> std::result::Result<(Vec<Record>, Option<i64>), crate::db::DbError> {
    let mut rows = rows_of(tx, chain, filter, before_seq, limit + 1)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok((rows, next))
}

/// Who did it, as people read it: a member's name with their email, the recorded email of
/// someone who is no member any more, or "system".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorLabel {
    pub name: String,
    /// The email beside a member's name, or "former member".
    pub note: String,
    pub id: Option<String>,
}

/// What it was done to: the kind in words and the thing's name now, or the name the entry
/// recorded when the thing is gone, or "deleted team".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLabel {
    /// "team", "knowledge base", "AI provider".
    pub kind: String,
    /// Empty for what has no id (the quota, the AI policy).
    pub name: String,
    /// "deleted", "former member", "another organization", a member's email; or empty.
    pub note: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Labelled {
    pub record: Record,
    pub actor: ActorLabel,
    pub resource: ResourceLabel,
}

/// A page of the log as `query` reads it, each row with its actor and resource named. The
/// names come from one lookup bound to this organization (`names_in_org`).
pub async fn labelled(
    svc: &Services,
    ctx: &OrgContext,
    filter: Filter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<Labelled>, Option<i64>)> {
    require(ctx, Permission::AuditView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let (rows, next) = page_of(tx, &Chain::Org(ctx.clone()), &filter, before_seq, limit)?;
            let mut refs: Vec<(String, String)> = Vec::new();
            for r in &rows {
                if let Some(a) = &r.actor_id {
                    refs.push(("member".into(), a.clone()));
                }
                if let Some(id) = &r.resource_id
                    && audit::NAMED_KINDS.contains(&r.resource_type.as_str())
                {
                    refs.push((r.resource_type.clone(), id.clone()));
                }
            }
            refs.sort();
            refs.dedup();
            let known = audit::names_in_org(tx, &ctx, &refs)?;
            let org = ctx.org_id().to_string();
            Ok((
                rows.into_iter().map(|r| label(r, &org, &known)).collect(),
                next,
            ))
        })
        .await
}

type Known = std::collections::HashMap<(String, String), audit::KnownName>;

fn label(record: Record, org: &str, known: &Known) -> Labelled {
    Labelled {
        actor: actor_label(&record, known),
        resource: resource_label(&record, org, known),
        record,
    }
}

fn actor_label(r: &Record, known: &Known) -> ActorLabel {
    let Some(id) = &r.actor_id else {
        return ActorLabel {
            name: "system".into(),
            note: String::new(),
            id: None,
        };
    };
    match known.get(&("member".to_string(), id.clone())) {
        Some(k) => ActorLabel {
            name: k.name.clone(),
            note: k.extra.clone(),
            id: Some(id.clone()),
        },
        None => ActorLabel {
            name: r
                .actor_email
                .clone()
                .unwrap_or_else(|| "deleted user".into()),
            note: "former member".into(),
            id: Some(id.clone()),
        },
    }
}

/// How the log names a resource type.
pub fn kind_words(resource_type: &str) -> String {
    match resource_type {
        "api_token" => "API token".into(),
        "llm_provider" => "AI provider".into(),
        "llm_policy" => "AI policy".into(),
        other => other.replace('_', " "),
    }
}

/// The first of `paths` (`["name"]`, `["after", "name"]`) that holds a non-empty string in
/// `details`.
fn recorded(details: &serde_json::Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|p| {
        p.iter()
            .try_fold(details, |v, k| v.get(k))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

fn resource_label(r: &Record, org: &str, known: &Known) -> ResourceLabel {
    let kind = kind_words(&r.resource_type);
    let out = |name: String, note: &str| ResourceLabel {
        kind: kind.clone(),
        name,
        note: note.to_string(),
        id: r.resource_id.clone(),
    };
    let Some(id) = &r.resource_id else {
        return out(String::new(), "");
    };
    // A provider's id is its name.
    if r.resource_type == "llm_provider" {
        return out(id.clone(), "");
    }
    if let Some(k) = known.get(&(r.resource_type.clone(), id.clone())) {
        let note = if r.resource_type == "member" {
            k.extra.as_str()
        } else {
            ""
        };
        return out(k.name.clone(), note);
    }
    let d = &r.details;
    match r.resource_type.as_str() {
        "member" => match recorded(d, &[&["email"]]) {
            Some(email) => out(email, "former member"),
            None => out("former member".into(), ""),
        },
        // Moves name the other side by the slug they recorded; its name now is not ours.
        "organization" if id != org => match recorded(d, &[&["to"], &["from"]]) {
            Some(slug) => out(slug, "another organization"),
            None => out("another organization".into(), ""),
        },
        "invitation" => match recorded(d, &[&["email"]]) {
            Some(email) => out(email, "deleted"),
            None => out(format!("deleted {kind}"), ""),
        },
        _ => match recorded(
            d,
            &[
                &["name"],
                &["team"],
                &["after", "name"],
                &["before", "name"],
            ],
        ) {
            Some(name) => out(name, "deleted"),
            None => out(format!("deleted {kind}"), ""),
        },
    }
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
    require(&ctx, Permission::AuditView)?;
    Ok(export_chain(db, Chain::Org(ctx), filter, format))
}

/// `export` of the instance chain (the console).
pub fn export_instance(
    db: Db,
    _admin: &super::admin::InstanceAdmin,
    filter: Filter,
    format: ExportFormat,
) -> impl Stream<Item = Result<Bytes>> + use<> {
    export_chain(db, Chain::Instance, filter, format)
}

fn export_chain(
    db: Db,
    ctx: Chain,
    filter: Filter,
    format: ExportFormat,
) -> impl Stream<Item = Result<Bytes>> {
    let header = match format {
        ExportFormat::Csv => Some(Bytes::from_static(
            b"id,at,actor_id,actor_email,action,resource_type,resource_id,ip,user_agent,details\r\n",
        )),
        ExportFormat::Ndjson => None,
    };
    let state = (db, ctx, filter, None::<i64>, false, header);
    // Fused: the compression layer polls once more after the end, and a bare `unfold`
    // panics when polled after it finished, which cut compressed downloads off mid-body.
    futures_util::stream::unfold(
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
                .read(move |tx| Ok::<_, AppError>(rows_of(tx, &c2, &f2, before, EXPORT_BATCH)?))
                .await;
            match batch {
                Err(e) => Some((Err(e), (db, ctx, filter, before, true, None))),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map(|r| r.seq);
                    let finished = (rows.len() as i64) < EXPORT_BATCH;
                    let out = match format {
                        ExportFormat::Csv => {
                            let mut csv = CsvText::new();
                            for r in &rows {
                                csv_row(&mut csv, r);
                            }
                            csv.finish()
                        }
                        ExportFormat::Ndjson => {
                            let mut out = String::new();
                            for r in &rows {
                                out.push_str(
                                    &serde_json::to_string(&export_json(r)).unwrap_or_default(),
                                );
                                out.push('\n');
                            }
                            out
                        }
                    };
                    Some((
                        Ok(Bytes::from(out)),
                        (db, ctx, filter, last, finished, None),
                    ))
                }
            }
        },
    )
    .fuse()
}

/// One audit row as the API lists it and the NDJSON export writes it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry<'a> {
    #[schema(format = "uuid")]
    pub id: &'a str,
    #[schema(format = DateTime)]
    pub at: &'a str,
    /// who did it; its id and email are null for the system (retention, quota alerts)
    pub actor: EntryActor<'a>,
    #[schema(value_type = crate::domain::schemas::AuditAction)]
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// what changed (before/after); never a secret
    #[schema(value_type = Object)]
    pub details: &'a serde_json::Value,
}

/// Who did it; id and email are null for the system.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntryActor<'a> {
    #[schema(format = "uuid")]
    pub id: Option<&'a str>,
    pub email: Option<&'a str>,
}

pub fn export_json(r: &Record) -> Entry<'_> {
    Entry {
        id: &r.id,
        at: &r.at,
        actor: EntryActor {
            id: r.actor_id.as_deref(),
            email: r.actor_email.as_deref(),
        },
        action: &r.action,
        resource_type: &r.resource_type,
        resource_id: r.resource_id.as_deref(),
        ip: r.ip.as_deref(),
        user_agent: r.user_agent.as_deref(),
        details: &r.details,
    }
}

fn csv_row(out: &mut CsvText, r: &Record) {
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
    out.record(&fields);
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
        expected_prev.clone_from(&r.hash);
        *expected_seq += 1;
    }
    None
}

/// Verifies the instance chain and every organization's (or the one named by id/slug).
pub async fn verify(svc: &Services, org: Option<String>) -> Result<Vec<ChainReport>> {
    svc.db
        .read(move |tx| {
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
                let (mut prev, mut seq, mut count, mut broken) =
                    (GENESIS.to_string(), 1, 0u64, None);
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
                let Some(ctx) =
                    crate::db::scope::SystemScope::new("audit-verify").in_org(tx, id)?
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
pub async fn purge_expired(svc: &Services) -> Result<u64> {
    let ids = svc
        .db
        .read(|tx| Ok::<_, AppError>(unscoped_all_org_ids(tx)?))
        .await?;
    let mut total = 0u64;
    for id in ids {
        let at = svc.now();
        total += svc
            .db
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(
        actor: Option<&str>,
        resource_type: &str,
        id: Option<&str>,
        details: serde_json::Value,
    ) -> Record {
        Record {
            id: "e1".into(),
            seq: 1,
            at: "2026-11-28T14:05:00Z".into(),
            actor_id: actor.map(str::to_string),
            actor_email: actor.map(|_| "gone@example.com".to_string()),
            action: "team.created".into(),
            resource_type: resource_type.into(),
            resource_id: id.map(str::to_string),
            ip: None,
            user_agent: None,
            details,
        }
    }

    fn known(entries: &[(&str, &str, &str, &str)]) -> Known {
        entries
            .iter()
            .map(|(k, id, name, extra)| {
                (
                    (k.to_string(), id.to_string()),
                    audit::KnownName {
                        name: name.to_string(),
                        extra: extra.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn entries_name_members_and_things_as_the_organization_knows_them_now() {
        let k = known(&[
            ("member", "u1", "Ada Lovelace", "ada@example.com"),
            ("team", "t1", "Research", ""),
        ]);
        let l = label(
            record(Some("u1"), "team", Some("t1"), json!({"name": "Old"})),
            "o1",
            &k,
        );
        assert_eq!(
            (l.actor.name.as_str(), l.actor.note.as_str()),
            ("Ada Lovelace", "ada@example.com")
        );
        assert_eq!(
            (l.resource.kind.as_str(), l.resource.name.as_str()),
            ("team", "Research")
        );
        assert_eq!(l.resource.note, "");
        assert_eq!(l.resource.id.as_deref(), Some("t1"));
        let sys = label(record(None, "quota", None, json!({})), "o1", &k);
        assert_eq!(sys.actor.name, "system");
        assert_eq!(
            (sys.resource.kind.as_str(), sys.resource.name.as_str()),
            ("quota", "")
        );
    }

    #[test]
    fn what_is_gone_keeps_the_name_it_was_recorded_with_or_says_deleted() {
        let k = Known::new();
        let l = label(
            record(Some("u9"), "team", Some("t9"), json!({"name": "Old team"})),
            "o1",
            &k,
        );
        assert_eq!(
            (l.resource.name.as_str(), l.resource.note.as_str()),
            ("Old team", "deleted")
        );
        assert_eq!(
            (l.actor.name.as_str(), l.actor.note.as_str()),
            ("gone@example.com", "former member")
        );
        let l = label(
            record(
                None,
                "agent",
                Some("a9"),
                json!({"after": {"name": "Renamed"}}),
            ),
            "o1",
            &k,
        );
        assert_eq!(l.resource.name, "Renamed");
        let l = label(
            record(None, "knowledge_base", Some("k9"), json!({})),
            "o1",
            &k,
        );
        assert_eq!(l.resource.name, "deleted knowledge base");
        let l = label(
            record(
                None,
                "member",
                Some("u9"),
                json!({"email": "bob@example.com"}),
            ),
            "o1",
            &k,
        );
        assert_eq!(
            (l.resource.name.as_str(), l.resource.note.as_str()),
            ("bob@example.com", "former member")
        );
        let l = label(
            record(None, "llm_provider", Some("openai"), json!({})),
            "o1",
            &k,
        );
        assert_eq!(
            (l.resource.kind.as_str(), l.resource.name.as_str()),
            ("AI provider", "openai")
        );
    }

    #[test]
    fn another_organization_is_named_only_by_what_the_entry_recorded() {
        // Even if a lookup were to return another organization, only our own id is asked.
        let k = known(&[("organization", "o1", "Ours", "ours")]);
        let l = label(
            record(None, "organization", Some("o2"), json!({"to": "beta"})),
            "o1",
            &k,
        );
        assert_eq!(
            (l.resource.name.as_str(), l.resource.note.as_str()),
            ("beta", "another organization")
        );
        let l = label(
            record(None, "organization", Some("o2"), json!({})),
            "o1",
            &k,
        );
        assert_eq!(l.resource.name, "another organization");
        let l = label(
            record(None, "organization", Some("o1"), json!({})),
            "o1",
            &k,
        );
        assert_eq!(l.resource.name, "Ours");
    }
}
