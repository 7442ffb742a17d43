//! Import from a single-user install (`xagent import FILE`): users, each with their
//! agents, workflows, tools, documents, knowledge bases and conversations, into their
//! personal organization, private. A user who exists (same email) keeps the account and
//! gets the resources in their personal organization. Every item goes through the checks
//! and writes the API's creates go through (`resources`), with their audit rows; one write
//! job per user, so a failure rolls back that user only, while an item refused by a check
//! (a bad field, a plan limit, an unreadable document) is left out and reported. Each item
//! that landed is recorded in the import ledger by the identity it had in the file, so a
//! second run of the same file imports nothing twice. The file's format is in the README
//! ("Import from a single-user install") and `packaging/import.schema.json`.
use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::resources::{self as res, CheckedUpload, Input, Upload};
use super::{Actor, ClientMeta, Services};
use crate::auth;
use crate::db::repo::resources::{self as repo, Message, ResourceKind};
use crate::db::repo::{audit, imports, users};
use crate::db::scope::enter;
use crate::db::unscoped::unscoped_memberships_of;
use crate::db::{OrgContext, WriteTx};
use crate::domain::resources::Patch;
use crate::domain::{Email, MessageId, Micros, OrgKind, PersonName, ResourceId, Role, fmt_time};
use crate::error::{AppError, Result};

/// The version of the file format this server reads.
pub const FORMAT_VERSION: u64 = 1;
/// The longest imported message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 256 * 1024;
/// The most messages one imported conversation has.
pub const MAX_MESSAGES: usize = 10_000;
/// The longest `source_id`.
pub const MAX_SOURCE_ID: usize = 200;

/// The kinds in the order they are imported: what an item refers to lands before it.
const ORDER: [ResourceKind; 6] = [
    ResourceKind::Document,
    ResourceKind::KnowledgeBase,
    ResourceKind::Tool,
    ResourceKind::Agent,
    ResourceKind::Workflow,
    ResourceKind::Conversation,
];

/// The file's lists, by the key that holds each kind.
fn list_key(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Agent => "agents",
        ResourceKind::Workflow => "workflows",
        ResourceKind::Document => "documents",
        ResourceKind::Tool => "tools",
        ResourceKind::KnowledgeBase => "knowledge_bases",
        ResourceKind::Conversation => "conversations",
    }
}

/// A file as read: its users are read one by one, so that one bad user is refused alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    pub version: u64,
    pub users: Vec<Value>,
}

impl ImportFile {
    /// The file's text, or why it cannot be imported at all.
    pub fn parse(text: &str) -> std::result::Result<ImportFile, String> {
        let file: ImportFile =
            serde_json::from_str(text).map_err(|e| format!("not an import file: {e}"))?;
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "version {} of the import format is not known to this server (it reads version {FORMAT_VERSION})",
                file.version
            ));
        }
        Ok(file)
    }
}

/// One user of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    agents: Vec<Map<String, Value>>,
    #[serde(default)]
    workflows: Vec<Map<String, Value>>,
    #[serde(default)]
    tools: Vec<Map<String, Value>>,
    #[serde(default)]
    documents: Vec<Map<String, Value>>,
    #[serde(default)]
    knowledge_bases: Vec<Map<String, Value>>,
    #[serde(default)]
    conversations: Vec<Map<String, Value>>,
}

impl FileUser {
    fn items(&self, kind: ResourceKind) -> &[Map<String, Value>] {
        match kind {
            ResourceKind::Agent => &self.agents,
            ResourceKind::Workflow => &self.workflows,
            ResourceKind::Document => &self.documents,
            ResourceKind::Tool => &self.tools,
            ResourceKind::KnowledgeBase => &self.knowledge_bases,
            ResourceKind::Conversation => &self.conversations,
        }
    }
}

// ---------------------------------------------------------------- the report

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// Made by this import, with its personal organization (slug).
    Created { org: String },
    /// There already, by email; its personal organization (slug).
    Existing { org: String },
    /// Not imported at all: the reasons.
    Refused(Vec<String>),
    /// Its write failed and was rolled back: nothing of this user was imported.
    Failed(String),
}

/// One item of a user's data that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where it is in the file, e.g. `agents[2] "Helper"`.
    pub item: String,
    pub reason: String,
}

/// What the import did with one user of the file.
#[derive(Debug, Clone)]
pub struct UserReport {
    /// As the file gives it.
    pub email: String,
    pub account: Account,
    /// Items made, by the file's list (`agents`, ..., and `messages`).
    pub imported: BTreeMap<&'static str, usize>,
    /// Items an earlier run imported (or that appear twice), left alone.
    pub skipped: BTreeMap<&'static str, usize>,
    pub refused: Vec<Refusal>,
    /// Documents queued in knowledge bases for the server's indexer.
    pub queued: usize,
    /// Other things worth saying (a password hash left unused).
    pub notes: Vec<String>,
}

impl UserReport {
    fn new(email: &str) -> Self {
        UserReport {
            email: email.to_string(),
            account: Account::Refused(Vec::new()),
            imported: BTreeMap::new(),
            skipped: BTreeMap::new(),
            refused: Vec::new(),
            queued: 0,
            notes: Vec::new(),
        }
    }

    fn refused_user(email: &str, reasons: Vec<String>) -> Self {
        UserReport {
            account: Account::Refused(reasons),
            ..Self::new(email)
        }
    }

    /// Whether everything of this user is in (imported now or before).
    pub fn complete(&self) -> bool {
        matches!(
            self.account,
            Account::Created { .. } | Account::Existing { .. }
        ) && self.refused.is_empty()
    }
}

/// What an import did, user by user.
#[derive(Debug, Clone)]
pub struct Report {
    pub users: Vec<UserReport>,
}

impl Report {
    /// Whether every user and every item of the file is in.
    pub fn complete(&self) -> bool {
        self.users.iter().all(UserReport::complete)
    }
}

/// Counts in the order of the file's lists, e.g. "2 documents, 1 knowledge base".
fn counts(c: &BTreeMap<&'static str, usize>) -> String {
    let order = ORDER.map(list_key);
    let listed = order
        .iter()
        .copied()
        .chain(["messages"])
        .filter_map(|k| c.get(k).filter(|n| **n > 0).map(|n| (k, *n)));
    let parts: Vec<String> = listed
        .map(|(k, n)| {
            let words = k.replace('_', " ");
            if n == 1 {
                format!("1 {}", words.strip_suffix('s').unwrap_or(&words))
            } else {
                format!("{n} {words}")
            }
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut created, mut existing, mut refused, mut failed) = (0, 0, 0, 0);
        for u in &self.users {
            match &u.account {
                Account::Created { org } => {
                    created += 1;
                    writeln!(f, "{}: created, personal organization {org}", u.email)?;
                }
                Account::Existing { org } => {
                    existing += 1;
                    writeln!(
                        f,
                        "{}: existing account kept, personal organization {org}",
                        u.email
                    )?;
                }
                Account::Refused(reasons) => {
                    refused += 1;
                    writeln!(f, "{}: refused: {}", u.email, reasons.join("; "))?;
                    continue;
                }
                Account::Failed(why) => {
                    failed += 1;
                    writeln!(
                        f,
                        "{}: failed, nothing of this user was imported: {why}",
                        u.email
                    )?;
                    continue;
                }
            }
            writeln!(f, "  imported: {}", counts(&u.imported))?;
            writeln!(f, "  skipped, already imported: {}", counts(&u.skipped))?;
            if u.queued > 0 {
                writeln!(
                    f,
                    "  queued for indexing: {} documents in knowledge bases",
                    u.queued
                )?;
            }
            if u.refused.is_empty() {
                writeln!(f, "  refused: none")?;
            } else {
                writeln!(f, "  refused: {}", u.refused.len())?;
                for r in &u.refused {
                    writeln!(f, "    {}: {}", r.item, r.reason)?;
                }
            }
            for n in &u.notes {
                writeln!(f, "  note: {n}")?;
            }
        }
        let items: usize = self.users.iter().map(|u| u.refused.len()).sum::<usize>();
        writeln!(
            f,
            "{} users: {created} created, {existing} existing, {refused} refused, {failed} failed; {items} items refused",
            self.users.len()
        )
    }
}

// ---------------------------------------------------------------- preparing a user

/// An item's identity in the ledger: its `source_id`, or the hash of its content.
fn source_identity(item: &Map<String, Value>) -> std::result::Result<String, String> {
    match item.get("source_id") {
        None => {
            let digest = sha2::Sha256::digest(canonical(&Value::Object(item.clone())));
            Ok(format!("sha256:{}", hex::encode(digest)))
        }
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_SOURCE_ID => {
            Ok(s.trim().to_string())
        }
        Some(_) => Err(format!(
            "source_id: give it as text of 1 to {MAX_SOURCE_ID} characters"
        )),
    }
}

/// JSON text with every object's keys sorted, so that a hash does not depend on the order
/// the exporting program wrote them in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&o[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// A message of an imported conversation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMessage {
    role: String,
    content: String,
    #[serde(default)]
    created_at: Option<String>,
}

/// What an item becomes once read: the work its write does.
enum Work {
    /// A resource through `resources::create`; `refs` are resolved in the write job.
    Create {
        body: Map<String, Value>,
        name: Option<String>,
        description: Option<String>,
        refs: Refs,
        messages: Vec<(String, String, Option<DateTime<Utc>>)>,
    },
    /// A document through the upload's checks; then the knowledge bases that hold it are
    /// made later and link it.
    Document(Box<CheckedUpload>),
}

/// References from an item to other items of the same user, by `source_id`.
#[derive(Default)]
struct Refs {
    /// An agent's knowledge bases.
    knowledge_bases: Vec<String>,
    /// A knowledge base's documents.
    documents: Vec<String>,
    /// A conversation's agent.
    agent: Option<String>,
}

struct Prepared {
    kind: ResourceKind,
    label: String,
    source_id: String,
    work: std::result::Result<Work, String>,
}

/// A list of texts (`source_id`s) under `key`, taken out of the item.
fn take_refs(item: &mut Map<String, Value>, key: &str) -> std::result::Result<Vec<String>, String> {
    match item.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(format!("{key}: list the source_id of each, as text")),
            })
            .collect(),
        Some(_) => Err(format!("{key}: list the source_id of each, as text")),
    }
}

fn take_text(
    item: &mut Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<String>, String> {
    match item.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key}: give it as text")),
    }
}

fn item_label(kind: ResourceKind, index: usize, item: &Map<String, Value>) -> String {
    let name_key = match kind {
        ResourceKind::Conversation => "title",
        ResourceKind::Document => "filename",
        _ => "name",
    };
    let name = item
        .get("name")
        .or_else(|| item.get(name_key))
        .and_then(Value::as_str)
        .map(|n| n.chars().take(60).collect::<String>());
    match name {
        Some(n) => format!("{}[{index}] {n:?}", list_key(kind)),
        None => format!("{}[{index}]", list_key(kind)),
    }
}

/// Reads one item into the work its write will do; the error is why it is refused.
fn prepare_item(
    kind: ResourceKind,
    mut item: Map<String, Value>,
) -> std::result::Result<Work, String> {
    item.remove("source_id");
    if kind == ResourceKind::Document {
        return prepare_document(item).map(|u| Work::Document(Box::new(u)));
    }
    let name_key = if kind == ResourceKind::Conversation {
        "title"
    } else {
        "name"
    };
    let mut name = take_text(&mut item, name_key)?;
    let description = take_text(&mut item, "description")?;
    let mut refs = Refs::default();
    let mut messages = Vec::new();
    match kind {
        ResourceKind::Agent => refs.knowledge_bases = take_refs(&mut item, "knowledge_base_refs")?,
        ResourceKind::KnowledgeBase => refs.documents = take_refs(&mut item, "document_refs")?,
        ResourceKind::Conversation => {
            refs.agent = take_text(&mut item, "agent_ref")?;
            let raw = item.remove("messages").unwrap_or(Value::Array(Vec::new()));
            let list: Vec<FileMessage> =
                serde_json::from_value(raw).map_err(|e| format!("messages: {e}"))?;
            if list.len() > MAX_MESSAGES {
                return Err(format!("messages: at most {MAX_MESSAGES} per conversation"));
            }
            for (i, m) in list.into_iter().enumerate() {
                if !["user", "assistant", "system", "tool"].contains(&m.role.as_str()) {
                    return Err(format!(
                        "messages[{i}]: role is user, assistant, system or tool, not {:?}",
                        m.role
                    ));
                }
                if m.content.chars().count() > MAX_MESSAGE_CHARS {
                    return Err(format!(
                        "messages[{i}]: at most {MAX_MESSAGE_CHARS} characters"
                    ));
                }
                let at = m
                    .created_at
                    .as_deref()
                    .map(|t| {
                        DateTime::parse_from_rfc3339(t)
                            .map(|t| t.with_timezone(&Utc))
                            .map_err(|_| {
                                format!("messages[{i}]: created_at {t:?} is not an RFC 3339 time")
                            })
                    })
                    .transpose()?;
                messages.push((m.role, m.content, at));
            }
            if name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                name = Some(untitled(&messages));
            }
        }
        _ => {}
    }
    Ok(Work::Create {
        body: item,
        name,
        description,
        refs,
        messages,
    })
}

/// The name of a conversation the file gives no title: its first question, cut short.
fn untitled(messages: &[(String, String, Option<DateTime<Utc>>)]) -> String {
    let first = messages
        .iter()
        .find(|(role, content, _)| role == "user" && !content.trim().is_empty())
        .map(|(_, c, _)| c.split_whitespace().collect::<Vec<_>>().join(" "));
    match first {
        Some(q) if q.chars().count() > 60 => {
            format!("{}…", q.chars().take(60).collect::<String>())
        }
        Some(q) => q,
        None => "Imported conversation".into(),
    }
}

/// A document's bytes (base64 or text) through the upload's checks.
fn prepare_document(mut item: Map<String, Value>) -> std::result::Result<CheckedUpload, String> {
    let name = take_text(&mut item, "name")?;
    let description = take_text(&mut item, "description")?;
    let filename = take_text(&mut item, "filename")?
        .filter(|f| !f.trim().is_empty())
        .ok_or("filename: give the document's file name")?;
    let declared_type = take_text(&mut item, "content_type")?;
    let bytes = match (
        take_text(&mut item, "content_base64")?,
        take_text(&mut item, "text")?,
    ) {
        (Some(b64), None) => {
            let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| "content_base64: this is not base64".to_string())?
        }
        (None, Some(text)) => text.into_bytes(),
        _ => {
            return Err(
                "give the document's content as content_base64 or as text (one of them)".into(),
            );
        }
    };
    if let Some(key) = item.keys().next() {
        return Err(format!("\"{key}\" is not a field of documents"));
    }
    let mut input = Input::new(Patch::empty(ResourceKind::Document));
    input.name = name;
    input.description = description;
    res::check_upload(
        input,
        Some(Upload {
            filename,
            declared_type,
            bytes,
        }),
    )
    .map_err(|e| reason(&e).unwrap_or_else(|| "the document could not be read".into()))
}

/// A refusal in words: the message, with the fields a validation names; `None` for an
/// internal failure, which fails the whole user instead.
fn reason(e: &AppError) -> Option<String> {
    match e {
        AppError::Internal(_) => None,
        AppError::BadRequest { fields, .. } if !fields.is_empty() => Some(
            fields
                .iter()
                .filter(|(k, _)| !k.contains('.'))
                .map(|(k, why)| format!("{k}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => Some(other.public_message()),
    }
}

/// A user of the file, checked, with each item read.
struct PreparedUser {
    email: Email,
    name: PersonName,
    password_hash: Option<String>,
    items: Vec<Prepared>,
}

fn prepare_user(user: FileUser) -> std::result::Result<PreparedUser, Vec<String>> {
    let mut problems = Vec::new();
    let email = Email::parse(&user.email)
        .map_err(|e| problems.push(format!("email: {}", e.reason)))
        .ok();
    let fallback = user
        .email
        .split('@')
        .next()
        .unwrap_or("user")
        .trim()
        .to_string();
    let name = PersonName::parse(user.name.as_deref().unwrap_or(&fallback))
        .map_err(|e| problems.push(format!("name: {}", e.reason)))
        .ok();
    if let Some(h) = &user.password_hash
        && auth::hash_kind(h).is_none()
    {
        problems.push(
            "password_hash: give an argon2 PHC string ($argon2id$…) or a bcrypt hash ($2a$, $2b$ or $2y$)"
                .into(),
        );
    }
    let (Some(email), Some(name)) = (email, name) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut items = Vec::new();
    for kind in ORDER {
        for (index, item) in user.items(kind).iter().enumerate() {
            let label = item_label(kind, index, item);
            let (source_id, work) = match source_identity(item) {
                Ok(id) => (id, prepare_item(kind, item.clone())),
                Err(why) => (String::new(), Err(why)),
            };
            items.push(Prepared {
                kind,
                label,
                source_id,
                work,
            });
        }
    }
    Ok(PreparedUser {
        email,
        name,
        password_hash: user.password_hash,
        items,
    })
}

// ---------------------------------------------------------------- importing

/// Imports every user of the file in turn, each in a write job of their own. `source`
/// names the file in the audit rows.
pub async fn import(svc: &Services, file: ImportFile, source: &str) -> Report {
    let mut reports = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in file.users.into_iter().enumerate() {
        let email_shown = raw
            .get("email")
            .and_then(Value::as_str)
            .map_or_else(|| format!("users[{i}]"), str::to_string);
        let user: FileUser = match serde_json::from_value(raw) {
            Ok(u) => u,
            Err(e) => {
                reports.push(UserReport::refused_user(&email_shown, vec![e.to_string()]));
                continue;
            }
        };
        let prepared = match prepare_user(user) {
            Ok(p) => p,
            Err(reasons) => {
                reports.push(UserReport::refused_user(&email_shown, reasons));
                continue;
            }
        };
        if let Some(first) = seen.get(prepared.email.as_str()) {
            reports.push(UserReport::refused_user(
                &email_shown,
                vec![format!("the same email as users[{first}] of this file")],
            ));
            continue;
        }
        seen.insert(prepared.email.as_str().to_string(), i);
        let now = svc.now();
        let source = source.to_string();
        let shown = email_shown.clone();
        let written = svc
            .db
            .write(move |tx| import_user(tx, prepared, &shown, &source, now))
            .await;
        reports.push(written.unwrap_or_else(|e| {
            let mut r = UserReport::new(&email_shown);
            r.account = Account::Failed(match e {
                AppError::Internal(cause) => cause,
                other => other.public_message(),
            });
            r
        }));
    }
    Report { users: reports }
}

/// One user's import, inside their write job: the account, the personal organization,
/// each item in order, the ledger and the audit row.
fn import_user(
    tx: &WriteTx<'_>,
    user: PreparedUser,
    shown: &str,
    source: &str,
    at: DateTime<Utc>,
) -> Result<UserReport> {
    let now = fmt_time(at);
    let mut report = UserReport::new(shown);
    let meta = ClientMeta {
        ip: None,
        user_agent: Some("xagent-import".into()),
    };
    let (account, ctx) = match users::find_by_email(tx, &user.email)? {
        None => {
            let (made, org) = super::identity::insert_user_with_workspace(
                tx,
                &user.email,
                &user.name,
                user.password_hash.as_deref(),
                false,
                &meta,
                &now,
            )?;
            if user.password_hash.is_none() {
                report
                    .notes
                    .push("no password_hash: the account cannot sign in with a password".into());
            }
            let ctx = enter(tx, made.id, &org.id.to_string())?.ok_or_else(AppError::not_found)?;
            (Account::Created { org: org.slug }, ctx)
        }
        Some((existing, _)) => {
            if user.password_hash.is_some() {
                report.notes.push(
                    "the account exists: it keeps its password, the file's password_hash is not used"
                        .into(),
                );
            }
            let actor = Actor {
                user_id: existing.id,
                email: existing.email.clone(),
                meta: meta.clone(),
            };
            let personal = unscoped_memberships_of(tx, existing.id)?
                .into_iter()
                .find(|m| m.organization.kind == OrgKind::Personal && m.role == Role::Owner)
                .map(|m| m.organization);
            let org = match personal {
                Some(org) => org,
                None => {
                    report
                        .notes
                        .push("the account had no personal organization: one was made".into());
                    super::identity::create_personal_org(tx, &actor, &user.name, &now)?
                }
            };
            let Some(ctx) = enter(tx, existing.id, &org.id.to_string())? else {
                report.account = Account::Refused(vec![format!(
                    "the personal organization {} cannot be entered (suspended?)",
                    org.slug
                )]);
                return Ok(report);
            };
            (Account::Existing { org: org.slug }, ctx)
        }
    };
    report.account = account;
    let actor = Actor {
        user_id: ctx.user_id(),
        email: user.email.to_string(),
        meta,
    };
    let mut made: HashMap<(ResourceKind, String), ResourceId> = HashMap::new();
    let mut messages_at = at;
    for item in user.items {
        let list = list_key(item.kind);
        let work = match item.work {
            Ok(w) => w,
            Err(why) => {
                report.refused.push(Refusal {
                    item: item.label,
                    reason: why,
                });
                continue;
            }
        };
        let key = (item.kind, item.source_id.clone());
        if made.contains_key(&key) {
            *report.skipped.entry(list).or_default() += 1;
            report.notes.push(format!(
                "{}: the same item as an earlier one of the file",
                item.label
            ));
            continue;
        }
        if let Some(id) = imports::find(tx, &ctx, item.kind, &item.source_id)? {
            *report.skipped.entry(list).or_default() += 1;
            made.insert(key, id);
            continue;
        }
        let outcome = tx.savepoint(|tx| {
            write_item(
                tx,
                &ctx,
                &actor,
                item.kind,
                work,
                &made,
                &now,
                &mut messages_at,
            )
            .and_then(|(id, done)| {
                imports::record(tx, &ctx, item.kind, &item.source_id, id, &now)?;
                Ok((id, done))
            })
        });
        match outcome {
            Ok((id, done)) => {
                *report.imported.entry(list).or_default() += 1;
                if done.messages > 0 {
                    *report.imported.entry("messages").or_default() += done.messages;
                }
                report.queued += done.queued;
                made.insert(key, id);
            }
            Err(e) => match reason(&e) {
                Some(why) => report.refused.push(Refusal {
                    item: item.label,
                    reason: why,
                }),
                // Not a rule of the item: the whole user is rolled back.
                None => return Err(e),
            },
        }
    }
    let by_kind = |c: &BTreeMap<&'static str, usize>| -> Value {
        Value::Object(
            c.iter()
                .map(|(k, n)| ((*k).to_string(), json!(n)))
                .collect(),
        )
    };
    audit::append(
        tx,
        &ctx,
        &actor.entry(
            "import.completed",
            "organization",
            Some(ctx.org_id().to_string()),
            json!({
                "source": source,
                "account": match report.account { Account::Created { .. } => "created", _ => "existing" },
                "imported": by_kind(&report.imported),
                "skipped": by_kind(&report.skipped),
                "refused": report.refused.len(),
                "queued_for_indexing": report.queued,
            }),
        ),
        &now,
    )?;
    Ok(report)
}

/// What an item's write added besides the item.
#[derive(Default)]
struct Done {
    messages: usize,
    queued: usize,
}

/// The id an item of the file became (this run or an earlier one), by its `source_id`.
fn resolve(
    made: &HashMap<(ResourceKind, String), ResourceId>,
    kind: ResourceKind,
    source_id: &str,
) -> Result<ResourceId> {
    made.get(&(kind, source_id.trim().to_string()))
        .copied()
        .ok_or_else(|| AppError::Unprocessable {
            code: "import_reference",
            message: format!(
                "it refers to {} {source_id:?}, which is not among this user's imported {}",
                kind.share_type().replace('_', " "),
                list_key(kind).replace('_', " ")
            ),
        })
}

/// Rewrites a workflow's steps from `agent_ref` / `tool_ref` to the ids they became.
fn resolve_steps(
    body: &mut Map<String, Value>,
    made: &HashMap<(ResourceKind, String), ResourceId>,
) -> Result<()> {
    let Some(Value::Array(steps)) = body.get_mut("steps") else {
        return Ok(());
    };
    for step in steps.iter_mut() {
        let Value::Object(step) = step else { continue };
        for (from, to, kind) in [
            ("agent_ref", "agent_id", ResourceKind::Agent),
            ("tool_ref", "tool_id", ResourceKind::Tool),
        ] {
            match step.remove(from) {
                None => {}
                Some(Value::String(r)) => {
                    let id = resolve(made, kind, &r)?;
                    step.insert(to.into(), Value::String(id.to_string()));
                }
                Some(_) => {
                    return Err(AppError::invalid(vec![crate::domain::Invalid::new(
                        "steps",
                        "Give a step's agent_ref and tool_ref as text.",
                    )]));
                }
            }
        }
    }
    Ok(())
}

/// Writes one item (inside its savepoint) the way the API's create does.
#[allow(clippy::too_many_arguments)]
fn write_item(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    actor: &Actor,
    kind: ResourceKind,
    work: Work,
    made: &HashMap<(ResourceKind, String), ResourceId>,
    now: &str,
    messages_at: &mut DateTime<Utc>,
) -> Result<(ResourceId, Done)> {
    let mut done = Done::default();
    let (mut body, name, description, refs, messages) = match work {
        Work::Document(upload) => {
            let view = res::store_upload_in_tx(tx, ctx, actor, &upload, now)?;
            return Ok((view.resource.id, done));
        }
        Work::Create {
            body,
            name,
            description,
            refs,
            messages,
        } => (body, name, description, refs, messages),
    };
    match kind {
        ResourceKind::Agent if !refs.knowledge_bases.is_empty() => {
            let ids = refs
                .knowledge_bases
                .iter()
                .map(|r| resolve(made, ResourceKind::KnowledgeBase, r).map(|id| json!(id)))
                .collect::<Result<Vec<Value>>>()?;
            body.insert("knowledge_base_ids".into(), Value::Array(ids));
        }
        ResourceKind::Workflow => resolve_steps(&mut body, made)?,
        ResourceKind::Conversation => {
            if let Some(agent) = &refs.agent {
                let id = resolve(made, ResourceKind::Agent, agent)?;
                body.insert("agent_id".into(), json!(id));
            }
        }
        _ => {}
    }
    // The documents of a knowledge base must be there before it is made.
    let documents = refs
        .documents
        .iter()
        .map(|r| resolve(made, ResourceKind::Document, r))
        .collect::<Result<Vec<_>>>()?;
    let (patch, unknown) = Patch::from_json(kind, body);
    let mut input = Input::new(patch);
    input.name = name;
    input.description = description;
    input.unknown_fields = unknown;
    let view = res::create_in_tx(tx, ctx, actor, &input.checked_create()?, now)?;
    let id = view.resource.id;
    for doc in documents {
        res::kb_document_in_tx(tx, ctx, actor, id, doc, true, now)?;
        done.queued += 1;
    }
    for (role, content, created_at) in messages {
        // Without its time a message comes right after the one before it.
        let when = created_at.unwrap_or(*messages_at + chrono::Duration::microseconds(1));
        *messages_at = when;
        let message = Message {
            id: MessageId::new(),
            user_id: (role == "user").then(|| ctx.user_id()),
            role,
            content,
            created_at: when,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros: Micros::ZERO,
            model: None,
            citations: Vec::new(),
            complete: true,
        };
        repo::add_message(tx, ctx, id, &message, &fmt_time(when))?;
        done.messages += 1;
    }
    Ok((id, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_identity_is_its_source_id_or_a_hash_of_its_content_in_any_key_order() {
        let a: Map<String, Value> = serde_json::from_str(
            r#"{"name": "A", "config": {"x": 1, "y": [1, {"b": 2, "a": 1}]}}"#,
        )
        .unwrap();
        let b: Map<String, Value> = serde_json::from_str(
            r#"{"config": {"y": [1, {"a": 1, "b": 2}], "x": 1}, "name": "A"}"#,
        )
        .unwrap();
        let ha = source_identity(&a).unwrap();
        assert!(ha.starts_with("sha256:") && ha.len() == 71, "{ha}");
        assert_eq!(ha, source_identity(&b).unwrap());
        let c: Map<String, Value> = serde_json::from_str(r#"{"name": "B"}"#).unwrap();
        assert_ne!(ha, source_identity(&c).unwrap());
        let named: Map<String, Value> =
            serde_json::from_str(r#"{"source_id": " agent-7 ", "name": "A"}"#).unwrap();
        assert_eq!(source_identity(&named).unwrap(), "agent-7");
        for bad in [r#"{"source_id": 7}"#, r#"{"source_id": "  "}"#] {
            let m: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(source_identity(&m).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file_must_be_of_a_known_version_and_shape() {
        assert!(ImportFile::parse(r#"{"version": 1, "users": []}"#).is_ok());
        let e = ImportFile::parse(r#"{"version": 2, "users": []}"#).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let e = ImportFile::parse(r#"{"version": 1, "users": [], "orgs": []}"#).unwrap_err();
        assert!(e.contains("unknown field `orgs`"), "{e}");
        assert!(ImportFile::parse("not json").is_err());
    }

    #[test]
    fn a_user_with_a_bad_email_name_or_hash_is_refused_with_every_reason() {
        let user: FileUser = serde_json::from_value(json!({
            "email": "not-an-email",
            "name": "",
            "password_hash": "md5:abc"
        }))
        .unwrap();
        let reasons = prepare_user(user).err().unwrap();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("email: "), "{reasons:?}");
        assert!(reasons[1].starts_with("name: "), "{reasons:?}");
        assert!(reasons[2].starts_with("password_hash: "), "{reasons:?}");
    }

    #[test]
    fn a_conversation_without_a_title_is_named_after_its_first_question() {
        let work = prepare_item(
            ResourceKind::Conversation,
            serde_json::from_value(json!({"messages": [
                {"role": "system", "content": "You help."},
                {"role": "user", "content": "  How do   refunds work when the order shipped already and was paid by card?"}
            ]}))
            .unwrap(),
        );
        let Ok(Work::Create { name, messages, .. }) = work else {
            panic!("a conversation to create");
        };
        assert_eq!(
            name.as_deref(),
            Some("How do refunds work when the order shipped already and was p…")
        );
        assert_eq!(messages.len(), 2);
        let bad = prepare_item(
            ResourceKind::Conversation,
            serde_json::from_value(
                json!({"title": "x", "messages": [{"role": "robot", "content": "x"}]}),
            )
            .unwrap(),
        );
        assert!(
            matches!(bad, Err(ref e) if e.contains("messages[0]: role")),
            "{:?}",
            bad.err()
        );
    }

    #[test]
    fn a_document_needs_one_content_and_readable_base64() {
        let doc = |v: Value| prepare_document(serde_json::from_value(v).unwrap()).err();
        assert!(doc(json!({"filename": "Notes.txt", "text": "hello"})).is_none());
        assert!(doc(json!({"filename": "Notes.txt", "content_base64": "aGVs\nbG8="})).is_none());
        assert_eq!(
            doc(json!({"filename": "Notes.txt", "content_base64": "***"})).as_deref(),
            Some("content_base64: this is not base64")
        );
        assert!(
            doc(json!({"filename": "Notes.txt", "text": "a", "content_base64": "YQ=="}))
                .unwrap()
                .contains("one of them")
        );
        assert!(
            doc(json!({"filename": "Notes.txt", "text": ""}))
                .unwrap()
                .contains("empty")
        );
        assert_eq!(
            doc(json!({"filename": "Notes.txt", "text": "x", "visibility": "public"})).as_deref(),
            Some("\"visibility\" is not a field of documents")
        );
    }
}
