//! Resources of an organization: create, read, update, delete, share, search, explain
//! access, and the plan limits that bound them. Reads go through the visibility predicate;
//! writes need the type's permission and ownership, or `<type>.manage` (ARCHITECTURE §4).
use crate::domain::Permission;
use rusqlite::types::Value as SqlValue;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Actor, fresh_context, require};
use crate::db::repo::resources::{
    self as repo, Changes, Fields, ListQuery, NewResource, Resource, ResourceKind, SharedWith,
    Skill, Trait,
};
use crate::db::repo::{audit, members, plans, teams};
use crate::db::scope::has_permission;
use crate::db::{Conn, Db, OrgContext, WriteTx};
use crate::domain::{Invalid, Role, UserId, Visibility, new_id, now_str};
use crate::error::{AppError, Result};

/// Who a resource is shared with, as sent by clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedWithInput {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
}

/// A create or update request: common fields plus the type's own.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<Visibility>,
    pub shared_with: Option<SharedWithInput>,
    pub fields: Map<String, Value>,
    /// The version the client last saw (optimistic concurrency); None = last write wins.
    pub version: Option<i64>,
    /// Fields the client sent that could not be read at all (a page's JSON text that does
    /// not parse): reported together with what is wrong with the rest.
    pub unreadable: Vec<Invalid>,
}

/// A resource with what the caller may do to it and, per type, its parts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct View {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personality_traits: Option<Vec<Trait>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<Skill>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<String>>,
    pub can_write: bool,
}

fn text(v: &Value, field: &'static str, max: usize, errors: &mut Vec<Invalid>) -> Option<String> {
    match v.as_str() {
        Some(s) if s.chars().count() <= max => Some(s.to_string()),
        Some(_) => {
            errors.push(Invalid::new(
                field,
                format!("Use at most {max} characters."),
            ));
            None
        }
        None => {
            errors.push(Invalid::new(field, "Send this as text."));
            None
        }
    }
}

fn opt_text(
    v: &Value,
    field: &'static str,
    max: usize,
    errors: &mut Vec<Invalid>,
) -> Option<SqlValue> {
    if v.is_null() {
        return Some(SqlValue::Null);
    }
    text(v, field, max, errors).map(|s| {
        if s.trim().is_empty() {
            SqlValue::Null
        } else {
            SqlValue::Text(s.trim().to_string())
        }
    })
}

fn json_of(
    v: &Value,
    field: &'static str,
    object: bool,
    errors: &mut Vec<Invalid>,
) -> Option<SqlValue> {
    let ok = if object { v.is_object() } else { v.is_array() };
    if !ok {
        errors.push(Invalid::new(
            field,
            if object {
                "Send this as an object."
            } else {
                "Send this as a list."
            },
        ));
        return None;
    }
    if v.to_string().len() > 256 * 1024 {
        errors.push(Invalid::new(field, "Keep this under 256 KiB."));
        return None;
    }
    Some(SqlValue::Text(v.to_string()))
}

/// Type-specific fields, checked. Agents' traits and skills come back separately.
pub struct Parsed {
    pub fields: Fields,
    pub traits: Option<Vec<Trait>>,
    pub skills: Option<Vec<Skill>>,
}

fn parse_fields(
    kind: ResourceKind,
    input: &Map<String, Value>,
    errors: &mut Vec<Invalid>,
) -> Parsed {
    let mut fields = Fields::new();
    let (mut traits, mut skills) = (None, None);
    for (key, v) in input {
        match (kind, key.as_str()) {
            (ResourceKind::Agent, "model") => {
                if let Some(x) = opt_text(v, "model", 200, errors) {
                    fields.insert("model", x);
                }
            }
            (ResourceKind::Agent, "system_prompt") => {
                if let Some(x) = text(v, "system_prompt", 100_000, errors) {
                    fields.insert("system_prompt", SqlValue::Text(x));
                }
            }
            (ResourceKind::Agent, "tools") => {
                let ok = v.as_array().is_some_and(|a| {
                    a.len() <= 100
                        && a.iter()
                            .all(|t| t.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 200))
                });
                if ok {
                    fields.insert("tools", SqlValue::Text(v.to_string()));
                } else {
                    errors.push(Invalid::new(
                        "tools",
                        "List at most 100 tools, each a name or id of at most 200 characters.",
                    ));
                }
            }
            (ResourceKind::Agent, "personality_traits") => {
                match serde_json::from_value::<Vec<Trait>>(v.clone()) {
                    Ok(t) => match check_named(
                        "trait",
                        t.iter().map(|t| (t.name.as_str(), t.value.as_str())),
                        500,
                    ) {
                        Ok(()) => traits = Some(t),
                        Err(why) => errors.push(Invalid::new("personality_traits", why)),
                    },
                    Err(_) => errors.push(Invalid::new(
                        "personality_traits",
                        "Send a list like [{\"trait\": \"curious\", \"value\": \"high\"}].",
                    )),
                }
            }
            (ResourceKind::Agent, "skills") => {
                match serde_json::from_value::<Vec<Skill>>(v.clone()) {
                    Ok(list) => match check_named(
                        "skill",
                        list.iter().map(|s| (s.name.as_str(), s.level.as_str())),
                        100,
                    ) {
                        Ok(()) => skills = Some(list),
                        Err(why) => errors.push(Invalid::new("skills", why)),
                    },
                    Err(_) => errors.push(Invalid::new(
                        "skills",
                        "Send a list like [{\"skill\": \"sql\", \"level\": \"expert\"}].",
                    )),
                }
            }
            (ResourceKind::Agent | ResourceKind::Tool | ResourceKind::KnowledgeBase, "config") => {
                if let Some(x) = json_of(v, "config", true, errors) {
                    fields.insert("config", x);
                }
            }
            (ResourceKind::Workflow, "steps") => match validate_steps(v) {
                Ok(()) => {
                    fields.insert("steps", SqlValue::Text(v.to_string()));
                }
                Err(e) => errors.push(e),
            },
            (ResourceKind::Tool, "input_schema") => match validate_schema(v) {
                Ok(()) => {
                    fields.insert("input_schema", SqlValue::Text(v.to_string()));
                }
                Err(e) => errors.push(e),
            },
            (ResourceKind::KnowledgeBase, "embedding_model") => {
                if let Some(x) = opt_text(v, "embedding_model", 200, errors) {
                    fields.insert("embedding_model", x);
                }
            }
            (ResourceKind::Conversation, "agent_id") => {
                if let Some(x) = opt_text(v, "agent_id", 64, errors) {
                    fields.insert("agent_id", x);
                }
            }
            _ => errors.push(Invalid::new(
                "body",
                format!("\"{key}\" is not a field of {}.", kind.path()),
            )),
        }
    }
    Parsed {
        fields,
        traits,
        skills,
    }
}

/// An agent's traits or skills: at most 50, each named (at most 100 characters) with a
/// value of at most `max_value` characters. The reason names what is wrong in words.
fn check_named<'a>(
    what: &str,
    items: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    max_value: usize,
) -> std::result::Result<(), String> {
    if items.len() > 50 {
        return Err(format!("Give at most 50 {what}s."));
    }
    for (name, value) in items {
        if name.trim().is_empty() {
            return Err(format!("Give every {what} a name."));
        }
        if name.chars().count() > 100 {
            return Err(format!("Keep each {what}'s name under 100 characters."));
        }
        if value.chars().count() > max_value {
            return Err(format!(
                "Keep the value of the {what} \"{name}\" under {max_value} characters."
            ));
        }
    }
    Ok(())
}

/// Workflow steps: an ordered array of at most 200 objects, each with a `name` and a
/// `type`, and ids (when given) unique. Reasons count steps from 1, as people do.
pub fn validate_steps(v: &Value) -> std::result::Result<(), Invalid> {
    let bad = |why: String| Invalid::new("steps", why);
    let steps = v.as_array().ok_or_else(|| {
        bad("Send the steps as a list, e.g. [{\"name\": \"fetch\", \"type\": \"http\"}].".into())
    })?;
    if steps.len() > 200 {
        return Err(bad("Use at most 200 steps.".into()));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let o = s.as_object().ok_or_else(|| {
            bad(format!(
                "Step {n} must be an object with a name and a type."
            ))
        })?;
        for key in ["name", "type"] {
            match o.get(key).and_then(Value::as_str) {
                Some(x) if !x.trim().is_empty() && x.len() <= 100 => {}
                _ => {
                    return Err(bad(format!(
                        "Step {n} needs a \"{key}\" of 1 to 100 characters."
                    )));
                }
            }
        }
        if let Some(id) = o.get("id") {
            let id = id
                .as_str()
                .ok_or_else(|| bad(format!("Step {n} needs its id as text.")))?;
            if !ids.insert(id.to_string()) {
                return Err(bad(format!(
                    "Step {n} has the id \"{id}\" of an earlier step; ids must differ."
                )));
            }
        }
    }
    Ok(())
}

/// A tool's input schema must be a valid JSON Schema describing an object.
pub fn validate_schema(v: &Value) -> std::result::Result<(), Invalid> {
    let bad = |why: &str| Invalid::new("input_schema", why);
    // `{}` is what a tool has before anyone describes its inputs.
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(());
    }
    if !v.is_object() {
        return Err(bad("Send the schema as a JSON Schema object."));
    }
    if v.get("type").and_then(Value::as_str) != Some("object") {
        return Err(bad(
            "Describe an object: the schema needs \"type\": \"object\" (tool inputs are named arguments).",
        ));
    }
    jsonschema::meta::validate(v).map_err(|e| {
        Invalid::new(
            "input_schema",
            format!("This is not a valid JSON Schema: {e}."),
        )
    })?;
    Ok(())
}

fn check_shares(c: &Conn<'_>, ctx: &OrgContext, s: &SharedWithInput) -> Result<SharedWith> {
    if s.users.len() + s.teams.len() > 200 {
        return Err(AppError::invalid(vec![Invalid::new(
            "shared_with",
            "Share with at most 200 members and teams.",
        )]));
    }
    let mut out = SharedWith::default();
    for u in &s.users {
        let id = UserId::parse(u).ok_or_else(|| {
            AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{u} is not a member."),
            )])
        })?;
        if members::find(c, ctx, id)?.is_none() {
            return Err(AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{u} is not a member."),
            )]));
        }
        if !out.users.contains(&id.to_string()) {
            out.users.push(id.to_string());
        }
    }
    for t in &s.teams {
        if teams::find(c, ctx, t)?.is_none() {
            return Err(AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{t} is not a team of this organization."),
            )]));
        }
        if !out.teams.contains(t) {
            out.teams.push(t.clone());
        }
    }
    out.users.sort();
    out.teams.sort();
    Ok(out)
}

/// Write access: the type's `manage`, or ownership with the type's `create`.
pub fn can_write(ctx: &OrgContext, r: &Resource) -> bool {
    has_permission(ctx, r.kind.manage_permission())
        || (r.owner_id == Some(ctx.user_id()) && has_permission(ctx, r.kind.create_permission()))
}

fn view(c: &Conn<'_>, ctx: &OrgContext, r: Resource) -> Result<View> {
    let (traits, skills) = if r.kind == ResourceKind::Agent {
        (
            Some(repo::agent_traits(c, ctx, &r.id)?),
            Some(repo::agent_skills(c, ctx, &r.id)?),
        )
    } else {
        (None, None)
    };
    let documents = (r.kind == ResourceKind::KnowledgeBase)
        .then(|| repo::kb_documents(c, ctx, &r.id))
        .transpose()?;
    Ok(View {
        can_write: can_write(ctx, &r),
        resource: r,
        personality_traits: traits,
        skills,
        documents,
    })
}

pub async fn list(
    db: &Db,
    ctx: &OrgContext,
    kind: ResourceKind,
    q: ListQuery,
) -> Result<Vec<View>> {
    let ctx = ctx.clone();
    db.read(move |tx| {
        repo::list_visible(tx, &ctx, kind, &q)?
            .into_iter()
            .map(|r| {
                Ok(View {
                    can_write: can_write(&ctx, &r),
                    resource: r,
                    personality_traits: None,
                    skills: None,
                    documents: None,
                })
            })
            .collect()
    })
    .await
}

/// One resource by id: a lookup by key (plus its few parts), so it runs inline.
pub async fn get(db: &Db, ctx: &OrgContext, kind: ResourceKind, id: String) -> Result<View> {
    db.lookup(|tx| {
        let r = repo::find_visible(tx, ctx, kind, &id)?.ok_or_else(AppError::not_found)?;
        view(tx, ctx, r)
    })
}

fn plan_limit(kind: ResourceKind, plan: &plans::Plan) -> Option<i64> {
    match kind {
        ResourceKind::Agent => plan.max_agents,
        ResourceKind::Workflow => plan.max_workflows,
        _ => None,
    }
}

fn limit_reached(what: &str, max: i64, plan: &str) -> AppError {
    AppError::Unprocessable {
        code: "plan_limit",
        message: format!(
            "the {plan} plan allows at most {max} {what}; upgrade the plan or remove some"
        ),
    }
}

/// Counts against the plan inside the write job: the single writer makes the check and
/// the insert atomic, so parallel creates never pass the limit.
fn check_count_limit(tx: &WriteTx<'_>, ctx: &OrgContext, kind: ResourceKind) -> Result<()> {
    let plan = plans::for_org(tx, ctx)?.ok_or_else(AppError::not_found)?;
    if let Some(max) = plan_limit(kind, &plan)
        && repo::count(tx, ctx, kind)? >= max
    {
        return Err(limit_reached(kind.path(), max, &plan.name));
    }
    Ok(())
}

fn check_conversation_agent(c: &Conn<'_>, ctx: &OrgContext, parsed: &Parsed) -> Result<()> {
    if let Some(SqlValue::Text(agent)) = parsed.fields.get("agent_id")
        && repo::find_visible(c, ctx, ResourceKind::Agent, agent)?.is_none()
    {
        return Err(AppError::invalid(vec![Invalid::new(
            "agent_id",
            "Choose an agent of this organization.",
        )]));
    }
    Ok(())
}

fn short(v: &Value) -> Value {
    let s = v.to_string();
    if s.len() > 500 {
        Value::String(format!(
            "{}…",
            &s[..s.char_indices().nth(500).map_or(s.len(), |(i, _)| i)]
        ))
    } else {
        v.clone()
    }
}

/// A resource's name: 1 to 200 characters. False (with the reason added) otherwise.
fn check_name(name: &str, errors: &mut Vec<Invalid>) -> bool {
    let why = if name.trim().is_empty() {
        "Enter a name."
    } else if name.chars().count() > 200 {
        "Use at most 200 characters."
    } else {
        return true;
    };
    errors.push(Invalid::new("name", why));
    false
}

fn check_description(description: &str, errors: &mut Vec<Invalid>) {
    if description.chars().count() > 5000 {
        errors.push(Invalid::new("description", "Use at most 5000 characters."));
    }
}

pub async fn create(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    kind: ResourceKind,
    input: Input,
) -> Result<View> {
    require(ctx, kind.create_permission())?;
    let mut errors = input.unreadable.clone();
    let name = match input.name.as_deref().map(str::trim) {
        Some(n) => check_name(n, &mut errors).then(|| n.to_string()),
        None => {
            errors.push(Invalid::new("name", "Enter a name."));
            None
        }
    };
    let description = input.description.clone().unwrap_or_default();
    check_description(&description, &mut errors);
    let parsed = parse_fields(kind, &input.fields, &mut errors);
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let (ctx, actor) = (ctx.clone(), actor.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        require(&me, kind.create_permission())?;
        check_count_limit(tx, &me, kind)?;
        check_conversation_agent(tx, &me, &parsed)?;
        let shares = input
            .shared_with
            .as_ref()
            .map(|s| check_shares(tx, &me, s))
            .transpose()?
            .unwrap_or_default();
        let id = new_id().to_string();
        let now = now_str();
        let visibility = input.visibility.unwrap_or(Visibility::Private);
        repo::insert(
            tx,
            &me,
            kind,
            &NewResource {
                id: &id,
                name: &name,
                description: description.trim(),
                visibility,
                fields: &parsed.fields,
                now: &now,
            },
        )?;
        if let Some(t) = &parsed.traits {
            repo::set_agent_traits(tx, &me, &id, t)?;
        }
        if let Some(s) = &parsed.skills {
            repo::set_agent_skills(tx, &me, &id, s)?;
        }
        repo::set_shares(tx, &me, kind, &id, &shares, &now)?;
        let action = format!("{}.created", kind.share_type());
        audit::append(
            tx,
            &me,
            &actor.entry(
                &action,
                kind.share_type(),
                Some(id.clone()),
                json!({"name": name, "visibility": visibility, "shared_with": shares}),
            ),
            &now,
        )?;
        let r = repo::find_in_org(tx, &me, kind, &id)?.ok_or_else(AppError::not_found)?;
        view(tx, &me, r)
    })
    .await
}

pub async fn update(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    kind: ResourceKind,
    id: String,
    input: Input,
) -> Result<View> {
    let mut errors = input.unreadable.clone();
    let name = input.name.as_deref().map(str::trim).map(|n| {
        check_name(n, &mut errors);
        n.to_string()
    });
    if let Some(d) = input.description.as_deref() {
        check_description(d, &mut errors);
    }
    let parsed = parse_fields(kind, &input.fields, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor) = (ctx.clone(), actor.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        let before = repo::find_visible(tx, &me, kind, &id)?.ok_or_else(AppError::not_found)?;
        if !can_write(&me, &before) {
            return Err(AppError::Forbidden {
                code: "permission_denied",
                message: format!("you may read this {} but not change it", kind.share_type()),
            });
        }
        if let Some(v) = input.version
            && v != before.version
        {
            return Err(AppError::conflict(
                "version_conflict",
                format!(
                    "this {} was changed meanwhile (now version {}); reload and try again",
                    kind.share_type(),
                    before.version
                ),
            ));
        }
        check_conversation_agent(tx, &me, &parsed)?;
        let shares = input
            .shared_with
            .as_ref()
            .map(|s| check_shares(tx, &me, s))
            .transpose()?;
        let now = now_str();
        let changes = Changes {
            name: name.as_deref(),
            description: input.description.as_deref().map(str::trim),
            visibility: input.visibility,
            fields: &parsed.fields,
            now: &now,
            expected_version: before.version,
        };
        if !repo::update(tx, &me, kind, &id, &changes)? {
            return Err(AppError::conflict(
                "version_conflict",
                "changed meanwhile; reload and try again",
            ));
        }
        if let Some(t) = &parsed.traits {
            repo::set_agent_traits(tx, &me, &id, t)?;
        }
        if let Some(s) = &parsed.skills {
            repo::set_agent_skills(tx, &me, &id, s)?;
        }
        if let Some(s) = &shares {
            repo::set_shares(tx, &me, kind, &id, s, &now)?;
        }
        let after = repo::find_in_org(tx, &me, kind, &id)?.ok_or_else(AppError::not_found)?;
        let (mut b, mut a) = (Map::new(), Map::new());
        let common = [
            ("name", json!(before.name), json!(after.name)),
            (
                "description",
                json!(before.description),
                json!(after.description),
            ),
            (
                "visibility",
                json!(before.visibility),
                json!(after.visibility),
            ),
            (
                "shared_with",
                json!(before.shared_with),
                json!(after.shared_with),
            ),
        ];
        for (k, x, y) in common {
            if x != y {
                b.insert(k.into(), x);
                a.insert(k.into(), y);
            }
        }
        for (k, x) in &before.fields {
            let y = after.fields.get(k).cloned().unwrap_or(Value::Null);
            if *x != y {
                b.insert(k.clone(), short(x));
                a.insert(k.clone(), short(&y));
            }
        }
        if parsed.traits.is_some() {
            a.insert("personality_traits".into(), json!(parsed.traits));
        }
        if parsed.skills.is_some() {
            a.insert("skills".into(), json!(parsed.skills));
        }
        let action = format!("{}.updated", kind.share_type());
        audit::append(
            tx,
            &me,
            &actor.entry(
                &action,
                kind.share_type(),
                Some(id.clone()),
                json!({"before": b, "after": a}),
            ),
            &now,
        )?;
        view(tx, &me, after)
    })
    .await
}

pub async fn delete(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    kind: ResourceKind,
    id: String,
) -> Result<()> {
    let (ctx, actor) = (ctx.clone(), actor.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        let r = repo::find_visible(tx, &me, kind, &id)?.ok_or_else(AppError::not_found)?;
        if !can_write(&me, &r) {
            return Err(AppError::Forbidden {
                code: "permission_denied",
                message: format!("you may read this {} but not delete it", kind.share_type()),
            });
        }
        let now = now_str();
        repo::delete(tx, &me, kind, &id)?;
        let action = format!("{}.deleted", kind.share_type());
        audit::append(
            tx,
            &me,
            &actor.entry(
                &action,
                kind.share_type(),
                Some(id.clone()),
                json!({"name": r.name}),
            ),
            &now,
        )?;
        Ok(())
    })
    .await
}

/// Why a user can or cannot read and write a resource.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Access {
    pub user_id: UserId,
    pub role: Option<Role>,
    pub can_read: bool,
    pub can_write: bool,
    pub reasons: Vec<String>,
}

/// Explains access to a resource for every member (or one): owner, visibility, teams,
/// direct shares, manage permission. For admins (members.manage) and the owner.
pub async fn explain_access(
    db: &Db,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: String,
    only: Option<UserId>,
) -> Result<Vec<Access>> {
    let ctx = ctx.clone();
    db.read(move |tx| {
        let r = repo::find_visible(tx, &ctx, kind, &id)?.ok_or_else(AppError::not_found)?;
        if !(r.owner_id == Some(ctx.user_id()) || has_permission(&ctx, Permission::MembersManage)) {
            return Err(AppError::Forbidden {
                code: "permission_denied",
                message: "only the owner and administrators can see who has access".into(),
            });
        }
        let mut out = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = members::list(
                tx,
                &ctx,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                500,
            )?;
            if page.is_empty() {
                break;
            }
            after = page
                .last()
                .map(|m| (m.joined_at.clone(), m.user.id.to_string()));
            for m in page {
                if only.is_some_and(|u| u != m.user.id) {
                    continue;
                }
                let Some(mctx) = crate::db::scope::colleague(tx, &ctx, m.user.id)? else {
                    continue;
                };
                let manage = has_permission(&mctx, kind.manage_permission());
                let owner = r.owner_id == Some(m.user.id);
                let mut reasons = Vec::new();
                if owner {
                    reasons.push("owner of the resource".to_string());
                }
                if matches!(r.visibility, Visibility::Organization | Visibility::Public) {
                    if mctx.role() == Role::Guest {
                        reasons.push(format!(
                            "not by {} visibility: guests see only what is shared with them",
                            r.visibility.as_str()
                        ));
                    } else {
                        reasons.push(format!("{} visibility", r.visibility.as_str()));
                    }
                }
                if r.shared_with.users.contains(&m.user.id.to_string()) {
                    reasons.push("shared directly".to_string());
                }
                for t in &r.shared_with.teams {
                    if mctx.teams().contains(t) {
                        let name = teams::find(tx, &ctx, t)?.map_or(t.clone(), |x| x.name);
                        reasons.push(format!("member of team {name}"));
                    }
                }
                if manage {
                    reasons.push(format!("holds {}", kind.manage_permission()));
                }
                let can_read = repo::find_visible(tx, &mctx, kind, &r.id)?.is_some();
                if !can_read {
                    reasons.retain(|x| x.starts_with("not by"));
                    reasons.push("no owner, visibility, share or manage rule applies".to_string());
                }
                out.push(Access {
                    user_id: m.user.id,
                    role: Some(mctx.role()),
                    can_read,
                    can_write: can_read && can_write(&mctx, &r),
                    reasons,
                });
            }
        }
        if let Some(u) = only
            && out.is_empty()
        {
            out.push(Access {
                user_id: u,
                role: None,
                can_read: false,
                can_write: false,
                reasons: vec!["not a member of this organization".into()],
            });
        }
        Ok(out)
    })
    .await
}

/// One item of the cross-organization "accessible to me" view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accessible {
    #[serde(flatten)]
    pub view: View,
    pub organization: crate::db::repo::orgs::Org,
}

/// Everything of `kind` the user may read in any of their organizations (the seed's
/// `user_accessible_agents`), newest first: each organization is read through its own
/// context (role, overrides, teams), then the pages are merged.
pub async fn accessible(
    db: &Db,
    user: UserId,
    kind: ResourceKind,
    q: ListQuery,
    only_org: Option<crate::domain::OrgId>,
) -> Result<Vec<Accessible>> {
    db.read(move |tx| {
        let memberships = crate::db::unscoped::unscoped_memberships_of(tx, user)?;
        let mut all = Vec::new();
        for m in memberships {
            if only_org.is_some_and(|o| o != m.organization.id) {
                continue;
            }
            let Some(ctx) = crate::db::scope::enter(tx, user, &m.organization.id.to_string())?
            else {
                continue;
            };
            if !has_permission(&ctx, Permission::OrgView) {
                continue;
            }
            for r in repo::list_visible(tx, &ctx, kind, &q)? {
                all.push(Accessible {
                    view: View {
                        can_write: can_write(&ctx, &r),
                        resource: r,
                        personality_traits: None,
                        skills: None,
                        documents: None,
                    },
                    organization: ctx.org().clone(),
                });
            }
        }
        all.sort_by(|a, b| {
            (&b.view.resource.created_at, &b.view.resource.id)
                .cmp(&(&a.view.resource.created_at, &a.view.resource.id))
        });
        all.truncate(q.limit.max(0) as usize);
        Ok(all)
    })
    .await
}

/// The public gallery: public items of every organization, read-only, with nothing that
/// tells about the owning organization beyond its name.
pub async fn public(db: &Db, kind: ResourceKind, q: ListQuery) -> Result<Vec<Value>> {
    db.read(move |tx| {
        let rows = crate::db::unscoped::unscoped_public_gallery(tx, kind, &q)?;
        Ok(rows
            .into_iter()
            .map(|(r, org_name)| {
                let mut v = json!({
                    "id": r.id, "type": r.kind, "name": r.name, "description": r.description,
                    "created_at": r.created_at, "updated_at": r.updated_at,
                    "organization": {"name": org_name},
                });
                // Only fields that describe the item itself; never ids of other items,
                // owners, shares or configuration.
                let keep: &[&str] = match kind {
                    ResourceKind::Agent => &["model", "system_prompt"],
                    ResourceKind::Workflow => &["steps"],
                    ResourceKind::Document => &["filename", "content_type", "size_bytes"],
                    ResourceKind::Tool => &["input_schema"],
                    ResourceKind::KnowledgeBase => &["embedding_model"],
                    ResourceKind::Conversation => &[],
                };
                for k in keep {
                    if let Some(x) = r.fields.get(*k) {
                        v[*k] = x.clone();
                    }
                }
                v
            })
            .collect())
    })
    .await
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Limit {
    pub used: i64,
    pub max: Option<i64>,
}

/// `GET …/limits`: usage against the plan (and, for AI credits, against the org's own
/// quota when it has one: the limit the gateway enforces).
pub async fn limits(db: &Db, ctx: &OrgContext, at: chrono::DateTime<chrono::Utc>) -> Result<Value> {
    // Guests see only what is shared with them; counts of the rest are not theirs to see.
    require(ctx, Permission::MembersView)?;
    let usage = has_permission(ctx, Permission::UsageView);
    let ctx = ctx.clone();
    db.read(move |tx| {
        let plan = plans::for_org(tx, &ctx)?.ok_or_else(AppError::not_found)?;
        let credits = super::quota::credit_use(tx, &ctx, at)?;
        let (cost, credit_max) = (credits.used_micros, credits.limit_micros);
        Ok(json!({
            "plan": plan.id,
            "agents": Limit { used: repo::count(tx, &ctx, ResourceKind::Agent)?, max: plan.max_agents },
            "workflows": Limit { used: repo::count(tx, &ctx, ResourceKind::Workflow)?, max: plan.max_workflows },
            "users": Limit { used: members::count(tx, &ctx)?, max: plan.max_members },
            "storage_bytes": Limit { used: repo::storage_bytes(tx, &ctx)?, max: plan.max_storage_bytes },
            "ai_credits": if usage { json!(Limit { used: cost, max: credit_max }) } else { json!({"max": credit_max}) },
            "document_bytes": {"max": plan.max_document_bytes},
        }))
    })
    .await
}

/// The largest document the organization can upload now: its plan's limit, or the
/// server's own body limit when that is lower (or the plan has none).
pub async fn document_size_limit(db: &Db, ctx: &OrgContext, server_max: i64) -> Result<i64> {
    let ctx = ctx.clone();
    db.read(move |tx| {
        let plan = plans::for_org(tx, &ctx)?.ok_or_else(AppError::not_found)?;
        Ok(plan
            .max_document_bytes
            .map_or(server_max, |m| m.min(server_max)))
    })
    .await
}

/// `GET …/summary` (the seed's `organization_resource_summary`).
pub async fn summary(
    db: &Db,
    ctx: &OrgContext,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Value> {
    require(ctx, Permission::MembersView)?;
    let usage = has_permission(ctx, Permission::UsageView);
    let ctx = ctx.clone();
    db.read(move |tx| {
        let mut resources = Map::new();
        for kind in ResourceKind::ALL {
            let by = repo::count_by_visibility(tx, &ctx, kind)?;
            let total: i64 = by.values().sum();
            resources.insert(
                kind.path().to_string(),
                json!({"total": total, "by_visibility": by}),
            );
        }
        let credits = super::quota::credit_use(tx, &ctx, at)?;
        let (period, cost, requests) = (credits.period.label, credits.used_micros, credits.requests);
        Ok(json!({
            "organization_id": ctx.org_id(),
            "resources": resources,
            "members": members::count(tx, &ctx)?,
            "teams": teams::list(tx, &ctx)?.len(),
            "storage_bytes": repo::storage_bytes(tx, &ctx)?,
            "usage": if usage { json!({"period": period, "requests": requests, "cost_micros": cost}) } else { Value::Null },
        }))
    })
    .await
}

/// What an upload turned out to be, by its bytes (not by what the client said).
pub fn sniff(bytes: &[u8], filename: &str) -> std::result::Result<&'static str, AppError> {
    const BINARY: &[&str] = &[
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    ];
    if let Some(t) = infer::get(bytes) {
        return BINARY.iter().find(|b| **b == t.mime_type()).copied().ok_or_else(|| AppError::Unprocessable {
            code: "unsupported_content_type",
            message: format!("files of type {} are not accepted; upload PDF, Office documents, images or text", t.mime_type()),
        });
    }
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| AppError::Unprocessable {
            code: "unsupported_content_type",
            message: "this file is neither text nor a known document type".into(),
        })?;
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => {
            if serde_json::from_str::<Value>(text).is_err() {
                return Err(AppError::invalid(vec![Invalid::new(
                    "file",
                    "The file is named .json but is not valid JSON.",
                )]));
            }
            "application/json"
        }
        _ => "text/plain",
    })
}

/// The declared type must agree with the sniffed one (generic declarations are fine).
fn declared_matches(declared: Option<&str>, sniffed: &str) -> bool {
    let Some(d) = declared.map(|d| {
        d.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) else {
        return true;
    };
    d.is_empty()
        || d == "application/octet-stream"
        || d == sniffed
        || (d.starts_with("text/")
            && (sniffed.starts_with("text/") || sniffed == "application/json"))
        || (d == "application/json" && sniffed == "application/json")
}

fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let s: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    if s.trim().is_empty() {
        "document".into()
    } else {
        s.trim().to_string()
    }
}

pub struct Upload {
    pub filename: String,
    pub declared_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Stores an uploaded document (bytes inside the database, so one file is a backup).
pub async fn upload_document(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    mut input: Input,
    upload: Option<Upload>,
) -> Result<View> {
    require(ctx, Permission::DocumentsCreate)?;
    let mut errors = input.unreadable.clone();
    match &upload {
        None => errors.push(Invalid::new("file", "Choose a file to upload.")),
        Some(u) if u.bytes.is_empty() => errors.push(Invalid::new("file", "The file is empty.")),
        Some(_) => {}
    }
    let name = input.name.take().filter(|n| !n.trim().is_empty());
    if let Some(n) = &name {
        check_name(n.trim(), &mut errors);
    }
    if let Some(d) = input.description.as_deref() {
        check_description(d, &mut errors);
    }
    let Some(upload) = upload.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let filename = clean_filename(&upload.filename);
    let content_type = sniff(&upload.bytes, &filename)?;
    if !declared_matches(upload.declared_type.as_deref(), content_type) {
        return Err(AppError::bad_request(
            "content_type_mismatch",
            format!(
                "the file was sent as {} but its content is {content_type}",
                upload.declared_type.unwrap_or_default()
            ),
        ));
    }
    let name = name.map_or_else(|| filename.clone(), |n| n.trim().to_string());
    if !check_name(&name, &mut errors) {
        return Err(AppError::invalid(errors));
    }
    let size = upload.bytes.len() as i64;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&upload.bytes))
    };
    let (ctx, actor) = (ctx.clone(), actor.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        require(&me, Permission::DocumentsCreate)?;
        let plan = plans::for_org(tx, &me)?.ok_or_else(AppError::not_found)?;
        if let Some(max) = plan.max_document_bytes.filter(|m| size > *m) {
            return Err(AppError::Unprocessable { code: "plan_limit", message: format!("the {} plan accepts documents up to {}; this one has {}", plan.name, crate::domain::format::bytes(max), crate::domain::format::bytes(size)) });
        }
        if let Some(max) = plan.max_storage_bytes.filter(|m| repo::storage_bytes(tx, &me).map_or(true, |u| u + size > *m)) {
            return Err(AppError::Unprocessable { code: "plan_limit", message: format!("the {} plan allows {} of documents in all; this upload would pass it", plan.name, crate::domain::format::bytes(max)) });
        }
        let shares = input.shared_with.as_ref().map(|s| check_shares(tx, &me, s)).transpose()?.unwrap_or_default();
        let id = new_id().to_string();
        let now = now_str();
        let visibility = input.visibility.unwrap_or(Visibility::Private);
        let mut fields = Fields::new();
        fields.insert("filename", SqlValue::Text(filename.clone()));
        fields.insert("content_type", SqlValue::Text(content_type.into()));
        fields.insert("size_bytes", SqlValue::Integer(size));
        fields.insert("sha256", SqlValue::Text(sha.clone()));
        let description = input.description.clone().unwrap_or_default();
        repo::insert(tx, &me, ResourceKind::Document, &NewResource { id: &id, name: name.trim(), description: description.trim(), visibility, fields: &fields, now: &now })?;
        repo::insert_document_content(tx, &me, &id, &upload.bytes)?;
        repo::set_shares(tx, &me, ResourceKind::Document, &id, &shares, &now)?;
        audit::append(
            tx,
            &me,
            &actor.entry("document.created", "document", Some(id.clone()), json!({"name": name, "filename": filename, "content_type": content_type, "size_bytes": size, "sha256": sha, "visibility": visibility})),
            &now,
        )?;
        let r = repo::find_in_org(tx, &me, ResourceKind::Document, &id)?.ok_or_else(AppError::not_found)?;
        view(tx, &me, r)
    })
    .await
}

/// The stored bytes of a document the caller may read: (filename, content type, bytes).
pub async fn document_content(
    db: &Db,
    ctx: &OrgContext,
    id: String,
) -> Result<(String, String, Vec<u8>)> {
    let ctx = ctx.clone();
    db.read(move |tx| {
        let r = repo::find_visible(tx, &ctx, ResourceKind::Document, &id)?
            .ok_or_else(AppError::not_found)?;
        let bytes = repo::document_content(tx, &ctx, &id)?.ok_or_else(AppError::not_found)?;
        let field = |k: &str| {
            r.fields
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok((field("filename"), field("content_type"), bytes))
    })
    .await
}

/// Adds (or removes) a readable document to a knowledge base the caller may change.
pub async fn kb_document(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    kb: String,
    doc: String,
    add: bool,
) -> Result<bool> {
    let (ctx, actor) = (ctx.clone(), actor.clone());
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        let base = repo::find_visible(tx, &me, ResourceKind::KnowledgeBase, &kb)?
            .ok_or_else(AppError::not_found)?;
        if !can_write(&me, &base) {
            return Err(AppError::Forbidden {
                code: "permission_denied",
                message: "you may read this knowledge base but not change it".into(),
            });
        }
        let document = repo::find_visible(tx, &me, ResourceKind::Document, &doc)?
            .ok_or_else(AppError::not_found)?;
        let now = now_str();
        let changed = if add {
            repo::kb_add_document(tx, &me, &kb, &doc, &now)?
        } else {
            repo::kb_remove_document(tx, &me, &kb, &doc)?
        };
        if !add && !changed {
            return Err(AppError::not_found());
        }
        if changed {
            let action = if add {
                "knowledge_base.document_added"
            } else {
                "knowledge_base.document_removed"
            };
            audit::append(
                tx,
                &me,
                &actor.entry(
                    action,
                    "knowledge_base",
                    Some(kb.clone()),
                    json!({"document_id": doc, "document": document.name}),
                ),
                &now,
            )?;
        }
        Ok(changed)
    })
    .await
}

pub async fn messages(
    db: &Db,
    ctx: &OrgContext,
    conv: String,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<repo::Message>> {
    let ctx = ctx.clone();
    db.read(move |tx| {
        repo::find_visible(tx, &ctx, ResourceKind::Conversation, &conv)?
            .ok_or_else(AppError::not_found)?;
        Ok(repo::messages(
            tx,
            &ctx,
            &conv,
            after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            limit,
        )?)
    })
    .await
}

pub async fn add_message(
    db: &Db,
    ctx: &OrgContext,
    actor: &Actor,
    conv: String,
    role: &str,
    content: &str,
) -> Result<repo::Message> {
    let mut errors = Vec::new();
    if !["system", "user", "assistant", "tool"].contains(&role) {
        errors.push(Invalid::new(
            "role",
            "Choose system, user, assistant or tool.",
        ));
    }
    if content.is_empty() {
        errors.push(Invalid::new("content", "Write a message."));
    } else if content.len() > 512 * 1024 {
        errors.push(Invalid::new("content", "Keep the message under 512 KiB."));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor, role, content) = (
        ctx.clone(),
        actor.clone(),
        role.to_string(),
        content.to_string(),
    );
    db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        let c = repo::find_visible(tx, &me, ResourceKind::Conversation, &conv)?
            .ok_or_else(AppError::not_found)?;
        if !can_write(&me, &c) {
            return Err(AppError::Forbidden {
                code: "permission_denied",
                message: "you may read this conversation but not add to it".into(),
            });
        }
        let id = new_id().to_string();
        let now = now_str();
        repo::add_message(tx, &me, &conv, &id, &role, &content, &now)?;
        audit::append(
            tx,
            &me,
            &actor.entry(
                "conversation.message_added",
                "conversation",
                Some(conv.clone()),
                json!({"message_id": id, "role": role, "length": content.len()}),
            ),
            &now,
        )?;
        Ok(repo::Message {
            id,
            role,
            content,
            user_id: Some(me.user_id().to_string()),
            created_at: now,
        })
    })
    .await
}

/// Moves everything the user owns in their personal workspace into an organization where
/// they may create each of those types (the seed's `migrate_user_to_organization`). The
/// target's plan limits apply to the result. Audited in both organizations.
pub async fn move_to_organization(
    db: &Db,
    actor: &Actor,
    from_ref: String,
    to_ref: String,
) -> Result<Value> {
    let actor = actor.clone();
    db.write(move |tx| {
        let user = actor.user_id;
        let from = crate::db::scope::enter(tx, user, &from_ref)?.ok_or_else(AppError::not_found)?;
        let to = crate::db::scope::enter(tx, user, &to_ref)?.ok_or_else(AppError::not_found)?;
        if from.org().kind != crate::domain::OrgKind::Personal || from.role() != Role::Owner {
            return Err(AppError::bad_request(
                "not_personal",
                "resources move from your personal workspace only",
            ));
        }
        if from.org_id() == to.org_id() {
            return Err(AppError::bad_request(
                "same_organization",
                "choose another organization to move to",
            ));
        }
        let counts = repo::owned_counts(tx, &from, user)?;
        for kind in counts.keys() {
            require(&to, kind.create_permission())?;
        }
        let plan = plans::for_org(tx, &to)?.ok_or_else(AppError::not_found)?;
        for (kind, n) in &counts {
            if let Some(max) = plan_limit(*kind, &plan)
                && repo::count(tx, &to, *kind)? + n > max
            {
                return Err(limit_reached(kind.path(), max, &plan.name));
            }
        }
        let bytes = repo::owned_storage(tx, &from, user)?;
        if let Some(max) = plan.max_storage_bytes
            && repo::storage_bytes(tx, &to)? + bytes > max
        {
            return Err(AppError::Unprocessable {
                code: "plan_limit",
                message: format!(
                    "the {} plan allows {} of documents in all; the move would pass it",
                    plan.name,
                    crate::domain::format::bytes(max)
                ),
            });
        }
        let now = now_str();
        repo::move_owned(tx, &from, &to, user, &now)?;
        let moved: Map<String, Value> = counts
            .iter()
            .map(|(k, n)| (k.path().to_string(), json!(n)))
            .collect();
        audit::append(
            tx,
            &from,
            &actor.entry(
                "resources.moved_out",
                "organization",
                Some(to.org_id().to_string()),
                json!({"to": to.org().slug, "moved": moved}),
            ),
            &now,
        )?;
        audit::append(
            tx,
            &to,
            &actor.entry(
                "resources.moved_in",
                "organization",
                Some(from.org_id().to_string()),
                json!({"from": from.org().slug, "moved": moved}),
            ),
            &now,
        )?;
        Ok(json!({"moved": moved, "organization_id": to.org_id()}))
    })
    .await
}
