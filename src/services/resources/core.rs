//! One resource's life: list, read, create, update and delete, the checks of the common
//! fields, the plan limits they count against, and a conversation's messages.
use crate::domain::Permission;
use crate::domain::ResourceId;
use crate::services::Services;
use serde_json::{Map, Value, json};

use super::{SharedWithInput, can_write, check_shares, writable};
use crate::db::repo::resources::{
    self as repo, Changes, ListQuery, NewResource, Resource, ResourceKind, SharedWith, Skill, Trait,
};
use crate::db::repo::{audit, members, plans, teams};
use crate::db::scope::has_permission;
use crate::db::{Conn, OrgContext, WriteTx};
use crate::domain::resources::{Checked, Patch, Sent};
use crate::domain::{Invalid, Micros, Visibility};
use crate::error::{AppError, Result};
use crate::services::{Actor, fresh_context, require};

/// A create or update request: common fields plus the type's own.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<Visibility>,
    pub shared_with: Option<SharedWithInput>,
    /// The kind's own fields; their kind is the kind of resource made or changed.
    pub fields: Patch,
    /// Keys the client sent that are no field of the kind.
    pub unknown_fields: Vec<String>,
    /// The version the client last saw (optimistic concurrency); None = last write wins.
    pub version: Option<i64>,
    /// Fields the client sent that could not be read at all (a page's JSON text that does
    /// not parse): reported together with what is wrong with the rest.
    pub unreadable: Vec<Invalid>,
}

impl Input {
    /// A request that changes nothing yet.
    pub fn new(fields: Patch) -> Self {
        Self {
            name: None,
            description: None,
            visibility: None,
            shared_with: None,
            fields,
            unknown_fields: Vec::new(),
            version: None,
            unreadable: Vec::new(),
        }
    }

    /// Checks every field at once, common and the kind's own; on create a name is
    /// required. The one validation of a create or an update, before its write job.
    fn check(&self, creating: bool) -> Result<Checked> {
        let mut errors = self.unreadable.clone();
        match self.name.as_deref().map(str::trim) {
            Some(n) => {
                check_name(n, &mut errors);
            }
            None if creating => errors.push(Invalid::new("name", "Enter a name.")),
            None => {}
        }
        if let Some(d) = self.description.as_deref() {
            check_description(d, &mut errors);
        }
        let checked = self.fields.clone().check(&self.unknown_fields, &mut errors);
        match checked {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(AppError::invalid(errors)),
        }
    }
}

/// A resource with what the caller may do to it and, per type, its parts.
#[derive(Debug, Clone)]
pub struct View {
    pub resource: Resource,
    pub personality_traits: Option<Vec<Trait>>,
    pub skills: Option<Vec<Skill>>,
    pub documents: Option<Vec<String>>,
    pub can_write: bool,
}

pub(super) fn view(c: &Conn<'_>, ctx: &OrgContext, r: Resource) -> Result<View> {
    let (traits, skills) = if r.kind == ResourceKind::Agent {
        (
            Some(repo::agent_traits(c, ctx, r.id)?),
            Some(repo::agent_skills(c, ctx, r.id)?),
        )
    } else {
        (None, None)
    };
    let documents = (r.kind == ResourceKind::KnowledgeBase)
        .then(|| repo::kb_documents(c, ctx, r.id))
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
    svc: &Services,
    ctx: &OrgContext,
    kind: ResourceKind,
    q: ListQuery,
) -> Result<Vec<View>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
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
pub async fn get(
    svc: &Services,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<View> {
    svc.db.lookup(|tx| {
        let r = repo::find_visible(tx, ctx, kind, id)?.ok_or_else(AppError::not_found)?;
        view(tx, ctx, r)
    })
}

pub(super) fn plan_limit(kind: ResourceKind, plan: &plans::Plan) -> Option<i64> {
    match kind {
        ResourceKind::Agent => plan.max_agents,
        ResourceKind::Workflow => plan.max_workflows,
        ResourceKind::Document => plan.max_documents,
        _ => None,
    }
}

pub(super) fn limit_reached(what: &str, max: i64, plan: &str) -> AppError {
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

fn check_conversation_agent(c: &Conn<'_>, ctx: &OrgContext, fields: &Checked) -> Result<()> {
    if let Patch::Conversation(p) = fields.patch()
        && let Some(agent) = p.agent()
        && ResourceId::parse(agent)
            .map(|a| repo::find_visible(c, ctx, ResourceKind::Agent, a))
            .transpose()?
            .flatten()
            .is_none()
    {
        return Err(AppError::invalid(vec![Invalid::new(
            "agent_id",
            "Choose an agent of this organization.",
        )]));
    }
    Ok(())
}

/// The knowledge bases an agent patch names must be ones the writer can read here.
fn check_agent_knowledge_bases(c: &Conn<'_>, ctx: &OrgContext, fields: &Checked) -> Result<()> {
    if let Patch::Agent(p) = fields.patch()
        && let Sent::Given(kbs) = &p.knowledge_base_ids
    {
        for kb in kbs {
            let visible = ResourceId::parse(kb)
                .map(|k| repo::find_visible(c, ctx, ResourceKind::KnowledgeBase, k))
                .transpose()?
                .flatten();
            if visible.is_none() {
                return Err(AppError::invalid(vec![Invalid::new(
                    "knowledge_base_ids",
                    "Choose knowledge bases of this organization that you can read.",
                )]));
            }
        }
    }
    Ok(())
}

/// An agent's traits and skills, when the patch sends them.
fn set_agent_parts(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: ResourceId,
    fields: &Checked,
) -> Result<()> {
    if let Patch::Agent(p) = fields.patch() {
        if let Sent::Given(t) = &p.personality_traits {
            repo::set_agent_traits(tx, ctx, id, t)?;
        }
        if let Sent::Given(s) = &p.skills {
            repo::set_agent_skills(tx, ctx, id, s)?;
        }
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
pub(super) fn check_name(name: &str, errors: &mut Vec<Invalid>) -> bool {
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

pub(super) fn check_description(description: &str, errors: &mut Vec<Invalid>) {
    if description.chars().count() > 5000 {
        errors.push(Invalid::new("description", "Use at most 5000 characters."));
    }
}

pub async fn create(svc: &Services, ctx: &OrgContext, actor: &Actor, input: Input) -> Result<View> {
    require(ctx, input.fields.kind().create_permission())?;
    let new = input.checked_create()?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| create_in_tx(tx, &ctx, &actor, &new, &now))
        .await
}

/// A create request whose every field passed its checks: what `create_in_tx` writes.
#[derive(Debug, Clone)]
pub(crate) struct NewItem {
    name: String,
    description: String,
    visibility: Visibility,
    shared_with: Option<SharedWithInput>,
    fields: Checked,
}

impl Input {
    /// The request as a create, once every field passed its checks (a name is required).
    pub(crate) fn checked_create(self) -> Result<NewItem> {
        let fields = self.check(true)?;
        Ok(NewItem {
            name: self
                .name
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .to_string(),
            description: self.description.unwrap_or_default(),
            visibility: self.visibility.unwrap_or(Visibility::Private),
            shared_with: self.shared_with,
            fields,
        })
    }
}

/// Creates a resource inside the caller's write job, with the rules a create checks
/// against the committed state (permission, plan limit, the agent and knowledge bases it
/// names, shares) and its audit row.
pub(crate) fn create_in_tx(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    actor: &Actor,
    new: &NewItem,
    now: &str,
) -> Result<View> {
    let kind = new.fields.kind();
    let me = fresh_context(tx, ctx)?;
    require(&me, kind.create_permission())?;
    check_count_limit(tx, &me, kind)?;
    check_conversation_agent(tx, &me, &new.fields)?;
    check_agent_knowledge_bases(tx, &me, &new.fields)?;
    let shares = new
        .shared_with
        .as_ref()
        .map(|s| check_shares(tx, &me, s))
        .transpose()?
        .unwrap_or_default();
    let id = ResourceId::new();
    let (name, visibility) = (&new.name, new.visibility);
    repo::insert(
        tx,
        &me,
        &NewResource {
            id,
            name,
            description: new.description.trim(),
            visibility,
            fields: &new.fields,
            now,
        },
    )?;
    set_agent_parts(tx, &me, id, &new.fields)?;
    repo::set_shares(tx, &me, kind, id, &shares, now)?;
    let action = format!("{}.created", kind.share_type());
    audit::append(
        tx,
        &me,
        &actor.entry(
            &action,
            kind.share_type(),
            Some(id.to_string()),
            json!({"name": name, "visibility": visibility, "shared_with": shares_json(&shares)}),
        ),
        now,
    )?;
    let r = repo::find_in_org(tx, &me, kind, id)?.ok_or_else(AppError::not_found)?;
    view(tx, &me, r)
}

/// Shares as the audit trail records them (`{"teams": [...], "users": [...]}`).
pub(super) fn shares_json(s: &SharedWith) -> Value {
    json!({"users": s.users().collect::<Vec<_>>(), "teams": s.teams().collect::<Vec<_>>()})
}

/// The audit detail of an update: each common or own field that changed, before and after
/// (long values cut short), and an agent's traits and skills as sent, which have no row
/// to compare.
fn changes_of(before: &Resource, after: &Resource, fields: &Checked) -> Value {
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
            shares_json(&before.shared_with),
            shares_json(&after.shared_with),
        ),
    ];
    for (k, x, y) in common {
        if x != y {
            b.insert(k.into(), x);
            a.insert(k.into(), y);
        }
    }
    let (was, now_is) = (json!(before.fields), json!(after.fields));
    for (k, x) in was.as_object().into_iter().flatten() {
        let y = now_is.get(k).cloned().unwrap_or(Value::Null);
        if *x != y {
            b.insert(k.clone(), short(x));
            a.insert(k.clone(), short(&y));
        }
    }
    if let Patch::Agent(p) = fields.patch() {
        if let Sent::Given(t) = &p.personality_traits {
            a.insert("personality_traits".into(), json!(t));
        }
        if let Sent::Given(s) = &p.skills {
            a.insert("skills".into(), json!(s));
        }
    }
    json!({"before": b, "after": a})
}

pub async fn update(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: ResourceId,
    input: Input,
) -> Result<View> {
    let kind = input.fields.kind();
    let fields = input.check(false)?;
    let name = input.name.as_deref().map(str::trim).map(str::to_string);
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            let before = writable(tx, &me, kind, id, kind.share_type(), "change it")?;
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
            check_conversation_agent(tx, &me, &fields)?;
            check_agent_knowledge_bases(tx, &me, &fields)?;
            let shares = input
                .shared_with
                .as_ref()
                .map(|s| check_shares(tx, &me, s))
                .transpose()?;
            let changes = Changes {
                name: name.as_deref(),
                description: input.description.as_deref().map(str::trim),
                visibility: input.visibility,
                fields: &fields,
                now: &now,
                expected_version: before.version,
            };
            if !repo::update(tx, &me, id, &changes)? {
                return Err(AppError::conflict(
                    "version_conflict",
                    "changed meanwhile; reload and try again",
                ));
            }
            set_agent_parts(tx, &me, id, &fields)?;
            if let Some(s) = &shares {
                repo::set_shares(tx, &me, kind, id, s, &now)?;
            }
            let after = repo::find_in_org(tx, &me, kind, id)?.ok_or_else(AppError::not_found)?;
            let action = format!("{}.updated", kind.share_type());
            audit::append(
                tx,
                &me,
                &actor.entry(
                    &action,
                    kind.share_type(),
                    Some(id.to_string()),
                    changes_of(&before, &after, &fields),
                ),
                &now,
            )?;
            view(tx, &me, after)
        })
        .await
}

pub async fn delete(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<Vec<ResourceId>> {
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            let r = writable(tx, &me, kind, id, kind.share_type(), "delete it")?;
            // A document's chunks go with it (and its vectors from these knowledge bases).
            let bases = if kind == ResourceKind::Document {
                crate::db::repo::knowledge::bases_holding(tx, &me, id)?
            } else {
                Vec::new()
            };
            repo::delete(tx, &me, kind, id)?;
            let action = format!("{}.deleted", kind.share_type());
            audit::append(
                tx,
                &me,
                &actor.entry(
                    &action,
                    kind.share_type(),
                    Some(id.to_string()),
                    json!({"name": r.name}),
                ),
                &now,
            )?;
            Ok(bases)
        })
        .await
}

/// A count against the plan's maximum.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = PlanLimit)]
pub struct Limit {
    #[schema(minimum = 0)]
    pub used: i64,
    /// null: no limit
    pub max: Option<i64>,
}

/// AI credits against their limit; `used` only for callers with usage.view.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CreditLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, nullable = false)]
    pub used: Option<Micros>,
    pub max: Option<Micros>,
}

/// A limit with no count beside it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct MaxOnly {
    pub max: Option<i64>,
}

/// `GET …/limits`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Limits)]
pub struct Limits {
    pub plan: String,
    pub agents: Limit,
    pub workflows: Limit,
    pub users: Limit,
    pub storage_bytes: Limit,
    /// micro-USD this month; `used` only with usage.view
    pub ai_credits: CreditLimit,
    pub document_bytes: MaxOnly,
}

/// One kind's count, in total and by visibility.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KindCount {
    #[schema(minimum = 0)]
    pub total: i64,
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    pub by_visibility: std::collections::BTreeMap<String, i64>,
}

/// This period's calls.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodUse {
    pub period: String,
    pub requests: i64,
    pub cost_micros: Micros,
}

/// `GET …/summary`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Summary)]
pub struct Summary {
    pub organization_id: crate::domain::OrgId,
    /// by kind (`agents`, `knowledge-bases`, …)
    pub resources: std::collections::BTreeMap<String, KindCount>,
    #[schema(minimum = 0)]
    pub members: i64,
    #[schema(minimum = 0)]
    pub teams: i64,
    #[schema(minimum = 0)]
    pub storage_bytes: i64,
    /// null without usage.view
    pub usage: Option<PeriodUse>,
}

/// `GET …/limits`: usage against the plan (and, for AI credits, against the org's own
/// quota when it has one: the limit the gateway enforces).
pub async fn limits(
    svc: &Services,
    ctx: &OrgContext,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Limits> {
    // Guests see only what is shared with them; counts of the rest are not theirs to see.
    require(ctx, Permission::MembersView)?;
    let usage = has_permission(ctx, Permission::UsageView);
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let plan = plans::for_org(tx, &ctx)?.ok_or_else(AppError::not_found)?;
            let credits = crate::services::quota::credit_use(tx, &ctx, at)?;
            let (cost, credit_max) = (credits.used_micros, credits.limit_micros);
            Ok(Limits {
                agents: Limit {
                    used: repo::count(tx, &ctx, ResourceKind::Agent)?,
                    max: plan.max_agents,
                },
                workflows: Limit {
                    used: repo::count(tx, &ctx, ResourceKind::Workflow)?,
                    max: plan.max_workflows,
                },
                users: Limit {
                    used: members::count(tx, &ctx)?,
                    max: plan.max_members,
                },
                storage_bytes: Limit {
                    used: repo::storage_bytes(tx, &ctx)?,
                    max: plan.max_storage_bytes,
                },
                ai_credits: CreditLimit {
                    used: usage.then_some(cost),
                    max: credit_max,
                },
                document_bytes: MaxOnly {
                    max: plan.max_document_bytes,
                },
                plan: plan.id,
            })
        })
        .await
}

/// The largest document the organization can upload now: its plan's limit, or the
/// server's own body limit when that is lower (or the plan has none).
pub async fn document_size_limit(svc: &Services, ctx: &OrgContext, server_max: i64) -> Result<i64> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let plan = plans::for_org(tx, &ctx)?.ok_or_else(AppError::not_found)?;
            Ok(plan
                .max_document_bytes
                .map_or(server_max, |m| m.min(server_max)))
        })
        .await
}

/// `GET …/summary` (the seed's `organization_resource_summary`).
pub async fn summary(
    svc: &Services,
    ctx: &OrgContext,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Summary> {
    require(ctx, Permission::MembersView)?;
    let usage = has_permission(ctx, Permission::UsageView);
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let mut resources = std::collections::BTreeMap::new();
            for kind in ResourceKind::ALL {
                let by_visibility = repo::count_by_visibility(tx, &ctx, kind)?;
                let total: i64 = by_visibility.values().sum();
                resources.insert(
                    kind.path().to_string(),
                    KindCount {
                        total,
                        by_visibility,
                    },
                );
            }
            let credits = crate::services::quota::credit_use(tx, &ctx, at)?;
            let (period, cost, requests) =
                (credits.period.label, credits.used_micros, credits.requests);
            Ok(Summary {
                organization_id: ctx.org_id(),
                resources,
                members: members::count(tx, &ctx)?,
                teams: i64::try_from(teams::list(tx, &ctx)?.len()).unwrap_or(i64::MAX),
                storage_bytes: repo::storage_bytes(tx, &ctx)?,
                usage: usage.then_some(PeriodUse {
                    period,
                    requests,
                    cost_micros: cost,
                }),
            })
        })
        .await
}

pub async fn messages(
    svc: &Services,
    ctx: &OrgContext,
    conv: ResourceId,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<repo::Message>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            repo::find_visible(tx, &ctx, ResourceKind::Conversation, conv)?
                .ok_or_else(AppError::not_found)?;
            Ok(repo::messages(
                tx,
                &ctx,
                conv,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                limit,
            )?)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::repo::resources::{Fields, SharedWith};
    use crate::domain::resources::{Agent, AgentPatch};
    use crate::domain::{OrgId, UserId};

    fn agent(name: &str, model: Option<&str>, prompt: &str) -> Resource {
        Resource {
            id: ResourceId::new(),
            kind: ResourceKind::Agent,
            organization_id: OrgId::new(),
            owner_id: Some(UserId::new()),
            name: name.into(),
            description: String::new(),
            visibility: Visibility::Private,
            shared_with: SharedWith::default(),
            version: 1,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            fields: Fields::Agent(Agent {
                model: model.map(str::to_string),
                system_prompt: prompt.into(),
                ..Default::default()
            }),
        }
    }

    fn checked(patch: AgentPatch) -> Checked {
        let mut errors = Vec::new();
        let checked = Patch::Agent(patch).check(&[], &mut errors);
        checked.unwrap_or_else(|| panic!("a valid patch: {errors:?}"))
    }

    #[test]
    fn an_updates_audit_detail_names_only_what_changed_and_cuts_long_values() {
        let long = "p".repeat(600);
        let before = agent("Helper", None, "short");
        let after = agent("Helper", Some("gpt"), &long);
        let detail = changes_of(&before, &after, &checked(AgentPatch::default()));
        assert_eq!(
            detail["before"],
            json!({"model": null, "system_prompt": "short"})
        );
        assert_eq!(detail["after"]["model"], json!("gpt"));
        let cut = detail["after"]["system_prompt"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(cut.chars().count(), 501, "500 characters and an ellipsis");
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn an_agents_traits_and_skills_are_in_the_detail_as_sent() {
        let r = agent("Helper", None, "");
        let patch = AgentPatch {
            skills: Sent::Given(vec![Skill {
                name: "sql".into(),
                level: "expert".into(),
            }]),
            ..Default::default()
        };
        let detail = changes_of(&r, &r, &checked(patch));
        assert_eq!(detail["before"], json!({}));
        assert_eq!(
            detail["after"],
            json!({"skills": [{"skill": "sql", "level": "expert"}]})
        );
    }
}
