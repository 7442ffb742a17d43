//! Organizations (the tenants themselves) and the owner membership made with each.
use rusqlite::{Row, params};

use chrono::{DateTime, Utc};

use super::{json_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, WriteTx};
use crate::domain::{OrgId, OrgKind, OrgName, OrgStatus, Role, Slug, UserId};

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
    pub kind: OrgKind,
    pub plan: String,
    pub settings: serde_json::Value,
    pub status: OrgStatus,
    /// Why an instance administrator suspended it (shown to its members).
    pub suspended_reason: Option<String>,
    /// Its security policy (IP allowlist, session and token lifetimes, API rate limit).
    pub security: crate::domain::security::SecurityPolicy,
    /// "Require two-factor": since when, and how many days of grace members have.
    pub two_factor: TwoFactorPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const ORG_COLUMNS: &str = "o.id, o.name, o.slug, o.kind, o.plan, o.settings, o.status, \
     o.created_at, o.updated_at, o.suspended_reason, o.require_2fa_since, o.require_2fa_grace_days, \
     o.security_policy";
/// How many columns `ORG_COLUMNS` names: what a query selecting more reads after them.
pub(crate) const ORG_COLUMN_COUNT: usize = 13;

/// An organization's "require two-factor" policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwoFactorPolicy {
    /// When it was turned on; `None`: not required.
    pub since: Option<DateTime<Utc>>,
    pub grace_days: u32,
}

impl TwoFactorPolicy {
    /// From when members without two-factor are refused (`None`: never).
    pub fn enforced_from(&self) -> Option<DateTime<Utc>> {
        self.since
            .map(|s| s + chrono::Duration::days(i64::from(self.grace_days)))
    }
}

pub(crate) fn org_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Org> {
    Ok(Org {
        id: OrgId::from_uuid(uuid_at(r, at)?),
        name: r.get(at + 1)?,
        slug: r.get(at + 2)?,
        kind: word_at(r, at + 3)?,
        plan: r.get(at + 4)?,
        settings: json_at(r, at + 5)?,
        status: word_at(r, at + 6)?,
        created_at: time_at(r, at + 7)?,
        updated_at: time_at(r, at + 8)?,
        suspended_reason: r.get(at + 9)?,
        two_factor: TwoFactorPolicy {
            since: super::opt_time_at(r, at + 10)?,
            grace_days: r.get(at + 11)?,
        },
        security: crate::domain::security::SecurityPolicy::from_stored(
            &r.get::<_, String>(at + 12)?,
        ),
    })
}

/// By id or by slug, as `{org}` in a path may be either.
pub fn find_by_ref(c: &Conn<'_>, org_ref: &str) -> Result<Option<Org>, DbError> {
    match OrgId::parse(org_ref) {
        Some(id) => c.query_opt(
            &format!("SELECT {ORG_COLUMNS} FROM organizations o WHERE o.id = ?1"),
            [id.to_string()],
            |r| org_from_row(r, 0),
        ),
        None => c.query_opt(
            &format!("SELECT {ORG_COLUMNS} FROM organizations o WHERE o.slug = ?1"),
            [org_ref],
            |r| org_from_row(r, 0),
        ),
    }
}

pub fn slug_taken(c: &Conn<'_>, slug: &Slug) -> Result<bool, DbError> {
    Ok(c.query_opt(
        "SELECT 1 FROM organizations WHERE slug = ?1",
        [slug.as_str()],
        |_| Ok(()),
    )?
    .is_some())
}

pub struct NewOrg<'a> {
    pub id: OrgId,
    pub name: &'a OrgName,
    pub slug: &'a Slug,
    pub kind: OrgKind,
    pub plan: &'a str,
    pub owner: UserId,
    pub now: &'a str,
}

/// Creates the organization with `owner` as its first (owner) member.
/// Creates the organization with its owner, and returns the owner's context in it (the
/// one membership made without one: nothing exists yet to be scoped to).
pub fn create_with_owner(
    tx: &WriteTx<'_>,
    o: &NewOrg<'_>,
) -> Result<crate::db::OrgContext, DbError> {
    tx.execute(
        "INSERT INTO organizations (id, name, slug, kind, plan, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            o.id.to_string(),
            o.name.as_str(),
            o.slug.as_str(),
            o.kind.as_str(),
            o.plan,
            o.owner.to_string(),
            o.now
        ],
    )?;
    tx.unscoped().execute(
        "INSERT INTO organization_members (organization_id, user_id, role, joined_at, last_active_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![o.id.to_string(), o.owner.to_string(), Role::Owner.as_str(), o.now],
    )?;
    crate::db::scope::membership_check(tx, o.owner, &o.id.to_string())?
        .ok_or(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

pub fn plan_exists(c: &Conn<'_>, plan: &str) -> Result<bool, DbError> {
    Ok(
        c.query_opt("SELECT 1 FROM plans WHERE id = ?1", [plan], |_| Ok(()))?
            .is_some(),
    )
}

/// Records that the context's member acted in the organization now.
pub fn touch_member(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organization_members SET last_active_at = ?3
         WHERE organization_id = ?1 AND user_id = ?2",
        params![ctx.user_id().to_string(), now],
    )?;
    Ok(())
}

/// Renames, re-slugs or re-configures the context's organization.
pub fn update(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    name: &str,
    slug: &str,
    settings: &serde_json::Value,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organizations SET name = ?2, slug = ?3, settings = ?4, updated_at = ?5 WHERE id = ?1",
        params![name, slug, settings.to_string(), now],
    )?;
    Ok(())
}

/// Stores the context's organization's security policy.
pub fn set_security_policy(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    policy: &crate::domain::security::SecurityPolicy,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organizations SET security_policy = ?2, updated_at = ?3 WHERE id = ?1",
        params![policy.to_stored(), now],
    )?;
    Ok(())
}

/// Ends a member's sessions in the context's organization: sessions made before `now`
/// are refused there from now on (and only there).
pub fn revoke_member_sessions(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    member: UserId,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE organization_members SET sessions_revoked_at = ?3
         WHERE organization_id = ?1 AND user_id = ?2",
        params![member.to_string(), now],
    )? == 1)
}

/// Deletes the organization; every tenant table follows by ON DELETE CASCADE, in the
/// caller's transaction.
pub fn delete(tx: &WriteTx<'_>, ctx: &crate::db::OrgContext) -> Result<bool, DbError> {
    Ok(tx
        .scoped(ctx)
        .execute("DELETE FROM organizations WHERE id = ?1", &[])?
        == 1)
}

// ---------------------------------------------------------------- the instance console

/// Puts the organization on `plan`; `fee_plan` keeps the fee of one period on another plan
/// (`None` clears it).
pub fn set_plan(
    tx: &WriteTx<'_>,
    org: OrgId,
    plan: &str,
    fee_plan: Option<(&str, &str)>,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE organizations SET plan = ?2, fee_plan = ?3, fee_plan_period = ?4, updated_at = ?5
         WHERE id = ?1",
        params![
            org.to_string(),
            plan,
            fee_plan.map(|f| f.0),
            fee_plan.map(|f| f.1),
            now
        ],
    )?;
    Ok(())
}

pub fn set_limit_overrides(
    tx: &WriteTx<'_>,
    org: OrgId,
    overrides: &serde_json::Value,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE organizations SET limit_overrides = ?2, updated_at = ?3 WHERE id = ?1",
        params![org.to_string(), overrides.to_string(), now],
    )?;
    Ok(())
}

/// Suspends (with the reason shown to members) or reinstates the organization.
pub fn set_status(
    tx: &WriteTx<'_>,
    org: OrgId,
    status: OrgStatus,
    reason: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    let suspended = status == OrgStatus::Suspended;
    tx.execute(
        "UPDATE organizations SET status = ?2, suspended_reason = ?3, suspended_at = ?4,
                updated_at = ?5 WHERE id = ?1",
        params![
            org.to_string(),
            status.as_str(),
            reason.filter(|_| suspended),
            suspended.then_some(now),
            now
        ],
    )?;
    Ok(())
}

pub fn count_suspended(c: &Conn<'_>) -> Result<i64, DbError> {
    Ok(c.query_opt(
        "SELECT COUNT(*) FROM organizations WHERE status = 'suspended'",
        [],
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

/// Turns "require two-factor" on (from `since`, with `grace_days`) or off (`None`).
pub fn set_two_factor_policy(
    tx: &WriteTx<'_>,
    ctx: &crate::db::OrgContext,
    since: Option<&str>,
    grace_days: u32,
    now: &str,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE organizations SET require_2fa_since = ?2, require_2fa_grace_days = ?3,
                updated_at = ?4 WHERE id = ?1",
        params![ctx.org_id().to_string(), since, grace_days, now],
    )?;
    Ok(())
}
