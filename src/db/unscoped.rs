//! Deliberately cross-tenant queries, each named for what it crosses. Everything here
//! starts from the signed-in user (their own memberships), never from request data.
use rusqlite::params;

use super::repo::orgs::{ORG_COLUMN_COUNT, ORG_COLUMNS, Org, org_from_row};
use super::{Conn, DbError};
use crate::domain::{OrgId, Role, UserId};

#[derive(Debug, Clone)]
pub struct Membership {
    pub organization: Org,
    pub role: Role,
}

/// Every organization the user is an active member of, personal first, then by name.
pub fn unscoped_memberships_of(c: &Conn<'_>, user: UserId) -> Result<Vec<Membership>, DbError> {
    let rows = c.unscoped().query_vec(
        &format!(
            "SELECT {ORG_COLUMNS}, m.role
             FROM organization_members m JOIN organizations o ON o.id = m.organization_id
             WHERE m.user_id = ?1 AND m.status = 'active'
             ORDER BY o.kind = 'personal' DESC, o.name COLLATE NOCASE, o.id"
        ),
        params![user.to_string()],
        |r| Ok((org_from_row(r, 0)?, r.get::<_, String>(ORG_COLUMN_COUNT)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(organization, role)| {
            Role::parse(&role).map(|role| Membership { organization, role })
        })
        .collect())
}

/// An invitation by its token hash, whichever organization it belongs to: the token is
/// the proof, so this is how an invitee (not yet a member) finds it.
pub fn unscoped_invitation_by_token(
    c: &Conn<'_>,
    token_hash: &str,
) -> Result<Option<super::repo::invitations::Invitation>, DbError> {
    super::repo::invitations::find_by_token_hash(&c.unscoped(), token_hash)
}

/// Every organization's id (maintenance tasks walk them one by one).
pub fn unscoped_all_org_ids(c: &Conn<'_>) -> Result<Vec<crate::domain::OrgId>, DbError> {
    let ids: Vec<uuid::Uuid> =
        c.query_vec("SELECT id FROM organizations ORDER BY id", [], |r| {
            super::repo::uuid_at(r, 0)
        })?;
    Ok(ids
        .into_iter()
        .map(crate::domain::OrgId::from_uuid)
        .collect())
}

/// Webhook deliveries due by `now`, of every organization (the delivery worker's queue),
/// as (organization, delivery id), oldest first.
pub fn unscoped_due_webhook_deliveries(
    c: &Conn<'_>,
    now: &str,
    limit: i64,
) -> Result<Vec<(crate::domain::OrgId, String)>, DbError> {
    c.unscoped().query_vec(
        "SELECT organization_id, id FROM webhook_deliveries
         WHERE status = 'pending' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at LIMIT ?2",
        rusqlite::params![now, limit],
        |r| {
            Ok((
                crate::domain::OrgId::from_uuid(super::repo::uuid_at(r, 0)?),
                r.get(1)?,
            ))
        },
    )
}

/// Public items of every organization for the gallery, with the owning organization's name.
pub fn unscoped_public_gallery(
    c: &Conn<'_>,
    kind: super::repo::resources::ResourceKind,
    q: &super::repo::resources::ListQuery,
) -> Result<Vec<(super::repo::resources::Resource, String)>, DbError> {
    super::repo::resources::public_gallery(&c.unscoped(), kind, q)
}

/// Knowledge-base documents waiting for indexing or interrupted in it, of every
/// organization (the indexer's queue at start and after each wake-up), as (organization,
/// knowledge base, document), longest waiting first.
pub fn unscoped_unfinished_indexing(
    c: &Conn<'_>,
) -> Result<
    Vec<(
        crate::domain::OrgId,
        crate::domain::ResourceId,
        crate::domain::ResourceId,
    )>,
    DbError,
> {
    c.unscoped().query_vec(
        "SELECT organization_id, knowledge_base_id, document_id FROM knowledge_base_documents
         WHERE status IN ('queued', 'indexing') ORDER BY updated_at, added_at",
        [],
        |r| {
            Ok((
                crate::domain::OrgId::from_uuid(super::repo::uuid_at(r, 0)?),
                crate::domain::ResourceId::from_uuid(super::repo::uuid_at(r, 1)?),
                crate::domain::ResourceId::from_uuid(super::repo::uuid_at(r, 2)?),
            ))
        },
    )
}

/// Workflow runs that were queued or running, of every organization (resumed at start),
/// as (organization, run id), oldest first.
pub fn unscoped_unfinished_runs(
    c: &Conn<'_>,
) -> Result<Vec<(crate::domain::OrgId, String)>, DbError> {
    c.unscoped().query_vec(
        "SELECT organization_id, id FROM workflow_runs
         WHERE status IN ('queued', 'running') ORDER BY created_at",
        [],
        |r| {
            Ok((
                crate::domain::OrgId::from_uuid(super::repo::uuid_at(r, 0)?),
                r.get(1)?,
            ))
        },
    )
}

// ---------------------------------------------------------------- the instance console

/// One organization as the instance console lists it.
#[derive(Debug, Clone)]
pub struct AdminOrg {
    pub org: Org,
    pub members: i64,
    /// This billing period's totals.
    pub requests: i64,
    pub cost_micros: i64,
    /// The stored override object (JSON).
    pub limit_overrides: String,
    pub suspended_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A plan change whose fee waits: (earlier plan, the period it still pays for).
    pub fee_plan: Option<(String, String)>,
}

/// The label of the billing period containing `now` (RFC 3339) for an organization whose
/// quota row `q` names its anchor day: the month the period started in.
const PERIOD_LABEL: &str =
    "CASE WHEN CAST(strftime('%d', ?1) AS INTEGER) >= COALESCE(q.billing_anchor_day, 1)
          THEN strftime('%Y-%m', ?1)
          ELSE strftime('%Y-%m', ?1, 'start of month', '-1 month') END";

fn admin_org_sql(filter: &str) -> String {
    format!(
        "SELECT {ORG_COLUMNS},
            (SELECT COUNT(*) FROM organization_members m
              WHERE m.organization_id = o.id AND m.status = 'active'),
            COALESCE(u.requests, 0), COALESCE(u.cost_micros, 0),
            o.limit_overrides, o.suspended_at, o.fee_plan, o.fee_plan_period
         FROM organizations o
         LEFT JOIN organization_quotas q ON q.organization_id = o.id
         LEFT JOIN organization_usage u ON u.organization_id = o.id AND u.period = {PERIOD_LABEL}
         WHERE {filter}"
    )
}

fn admin_org_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AdminOrg> {
    let n = ORG_COLUMN_COUNT;
    let fee_plan: Option<String> = r.get(n + 5)?;
    let fee_period: Option<String> = r.get(n + 6)?;
    Ok(AdminOrg {
        org: org_from_row(r, 0)?,
        members: r.get(n)?,
        requests: r.get(n + 1)?,
        cost_micros: r.get(n + 2)?,
        limit_overrides: r.get(n + 3)?,
        suspended_at: super::repo::opt_time_at(r, n + 4)?,
        fee_plan: fee_plan.zip(fee_period),
    })
}

/// Every organization whose name or slug contains `q` (all when empty), by name, a page
/// of `limit` after `offset`, and how many match in all.
pub fn unscoped_admin_orgs(
    c: &Conn<'_>,
    q: &str,
    now: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AdminOrg>, i64), DbError> {
    // instr, not LIKE: a bound LIKE pattern makes SQLite plan the statement again each time.
    let pattern = q.trim().to_lowercase();
    let rows = c.unscoped().query_vec(
        &format!(
            "{} ORDER BY o.name COLLATE NOCASE, o.id LIMIT ?3 OFFSET ?4",
            admin_org_sql("(instr(lower(o.name), ?2) > 0 OR instr(o.slug, ?2) > 0)")
        ),
        params![now, pattern, limit, offset],
        admin_org_from_row,
    )?;
    let total = c
        .query_opt(
            "SELECT COUNT(*) FROM organizations o
             WHERE instr(lower(o.name), ?1) > 0 OR instr(o.slug, ?1) > 0",
            params![pattern],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    Ok((rows, total))
}

/// One organization by id or slug, as the console shows it.
pub fn unscoped_admin_org(
    c: &Conn<'_>,
    org_ref: &str,
    now: &str,
) -> Result<Option<AdminOrg>, DbError> {
    let Some(org) = super::repo::orgs::find_by_ref(c, org_ref)? else {
        return Ok(None);
    };
    c.unscoped().query_opt(
        &admin_org_sql("o.id = ?2"),
        params![now, org.id.to_string()],
        admin_org_from_row,
    )
}

/// Deletes an organization and, through the foreign keys, everything in it.
pub fn unscoped_delete_org(
    tx: &super::WriteTx<'_>,
    org: crate::domain::OrgId,
) -> Result<bool, DbError> {
    Ok(tx.execute("DELETE FROM organizations WHERE id = ?1", [org.to_string()])? == 1)
}

/// The organizations (and roles) of each of `users`, active memberships only.
pub fn unscoped_memberships_of_users(
    c: &Conn<'_>,
    users: &[UserId],
) -> Result<Vec<(UserId, Membership)>, DbError> {
    let mut out = Vec::new();
    for user in users {
        out.extend(
            unscoped_memberships_of(c, *user)?
                .into_iter()
                .map(|m| (*user, m)),
        );
    }
    Ok(out)
}

/// Adds `user` to the organization with `role` (an instance administrator entering it
/// explicitly); `false` when they are a member already.
pub fn unscoped_add_member(
    tx: &super::WriteTx<'_>,
    org: crate::domain::OrgId,
    user: UserId,
    role: Role,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.unscoped().execute(
        "INSERT INTO organization_members (organization_id, user_id, role, joined_at, last_active_at)
         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
        params![org.to_string(), user.to_string(), role.as_str(), now],
    )? == 1)
}

/// The organization's billing anchor day (1 when it never set a quota).
pub fn unscoped_billing_anchor(c: &Conn<'_>, org: crate::domain::OrgId) -> Result<u32, DbError> {
    Ok(c.unscoped()
        .query_opt(
            "SELECT billing_anchor_day FROM organization_quotas WHERE organization_id = ?1",
            params![org.to_string()],
            |r| r.get(0),
        )?
        .unwrap_or(1))
}

/// The organizations whose single sign-on refuses password sign-in, among those `user` is
/// an active member of, with the user's role in each: the password sign-in checks them
/// before it opens a session (the user is in no organization yet).
pub fn unscoped_sso_only_memberships_of(
    c: &Conn<'_>,
    user: UserId,
) -> Result<Vec<(OrgId, Role)>, DbError> {
    let rows = c.unscoped().query_vec(
        "SELECT p.organization_id, m.role FROM sso_providers p
         JOIN organization_members m ON m.organization_id = p.organization_id
         WHERE p.sso_only = 1 AND m.user_id = ?1 AND m.status = 'active'",
        params![user.to_string()],
        |r| Ok((super::repo::uuid_at(r, 0)?, r.get::<_, String>(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(org, role)| Role::parse(&role).map(|r| (OrgId::from_uuid(org), r)))
        .collect())
}
