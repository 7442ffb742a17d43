//! The tenancy layer's proof type. An `OrgContext` says "this user is an active member of
//! this organization, with this role and these permissions"; only `membership_check` makes
//! one, and every function on a tenant table takes it and binds its organization id.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::repo::orgs::{ORG_COLUMN_COUNT, ORG_COLUMNS, Org, org_from_row};
use super::{Conn, DbError};
use crate::domain::{OrgId, Permission, PermissionSet, Role, UserId};

/// Who acts in which organization, checked. Shared, not copied: a request hands it to
/// several places (the gateway to its caches and to metering).
#[derive(Debug, Clone)]
pub struct OrgContext(std::sync::Arc<Ctx>);

#[derive(Debug)]
struct Ctx {
    org: Org,
    user_id: UserId,
    role: Role,
    permissions: PermissionSet,
    last_active_at: Option<DateTime<Utc>>,
    /// Sessions made before this are refused in this organization (an administrator ended
    /// the member's sessions here).
    sessions_revoked_at: Option<DateTime<Utc>>,
    /// The background job acting, for a `SystemScope` context; `None` for a member.
    system_job: Option<&'static str>,
}

impl OrgContext {
    fn new(c: Ctx) -> Self {
        OrgContext(std::sync::Arc::new(c))
    }

    pub fn org(&self) -> &Org {
        &self.0.org
    }
    pub fn org_id(&self) -> OrgId {
        self.0.org.id
    }
    pub fn user_id(&self) -> UserId {
        self.0.user_id
    }
    pub fn role(&self) -> Role {
        self.0.role
    }
    pub fn permissions(&self) -> &PermissionSet {
        &self.0.permissions
    }
    /// The background job this context belongs to (`SystemScope`), if it is one.
    pub fn system_job(&self) -> Option<&'static str> {
        self.0.system_job
    }
    /// When the member last acted in this organization (updated at most every few minutes).
    pub fn last_active_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_active_at
    }
    pub fn sessions_revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.sessions_revoked_at
    }
}

/// The one permission check everything calls.
pub fn has_permission(ctx: &OrgContext, p: Permission) -> bool {
    ctx.permissions().contains(p)
}

/// A signed-in user entering an organization (by id or slug): their context there, or
/// `None` (no such organization, not a member, suspended), which callers turn into 404 so
/// that other organizations stay invisible. `user` is the authenticated user.
pub fn enter(c: &Conn<'_>, user: UserId, org_ref: &str) -> Result<Option<OrgContext>, DbError> {
    membership_check(c, user, org_ref)
}

/// `ctx` read again (inside a write job, so that role rules see the committed state).
pub fn refresh(c: &Conn<'_>, ctx: &OrgContext) -> Result<Option<OrgContext>, DbError> {
    membership_check(c, ctx.user_id(), &ctx.org_id().to_string())
}

/// A member's permissions: their role's defaults with the overrides stored on their
/// membership (a JSON object of path to grant).
pub(in crate::db) fn member_permissions(role: Role, overrides: &str) -> PermissionSet {
    PermissionSet::effective(role, &serde_json::from_str(overrides).unwrap_or_default())
}

/// The membership check: `Some` only when `user` is an active member of the organization
/// named by `org_ref` (id or slug).
pub(in crate::db) fn membership_check(
    c: &Conn<'_>,
    user: UserId,
    org_ref: &str,
) -> Result<Option<OrgContext>, DbError> {
    let by_id = OrgId::parse(org_ref).is_some();
    let sql = format!(
        "SELECT {ORG_COLUMNS}, m.role, m.permissions, m.last_active_at, m.sessions_revoked_at
         FROM organizations o
         JOIN organization_members m ON m.organization_id = o.id
         WHERE {} AND m.organization_id = o.id AND m.user_id = ?2 AND m.status = 'active'",
        if by_id { "o.id = ?1" } else { "o.slug = ?1" }
    );
    // The join binds the organization through o.id/o.slug, which the guard cannot see.
    let found = c
        .unscoped()
        .query_opt(&sql, params![org_ref, user.to_string()], |r| {
            let org = org_from_row(r, 0)?;
            let role: String = r.get(ORG_COLUMN_COUNT)?;
            let perms: String = r.get(ORG_COLUMN_COUNT + 1)?;
            // A last-active time that does not read is treated as never: refusing the
            // organization for it would also stop the touch that rewrites it.
            let last = super::repo::opt_time_at(r, ORG_COLUMN_COUNT + 2)
                .ok()
                .flatten();
            let revoked = super::repo::opt_time_at(r, ORG_COLUMN_COUNT + 3)?;
            Ok((org, role, perms, last, revoked))
        })?;
    let Some((org, role, perms, last_active_at, sessions_revoked_at)) = found else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    Ok(Some(OrgContext::new(Ctx {
        permissions: member_permissions(role, &perms),
        org,
        user_id: user,
        role,
        last_active_at,
        sessions_revoked_at,
        system_job: None,
    })))
}

/// The context of someone joining through a valid invitation: the proof is the token
/// (already checked pending by the caller), the role is the invited one.
pub(crate) fn joining_context(
    c: &Conn<'_>,
    invitation: &super::repo::invitations::Invitation,
    user: UserId,
) -> Result<Option<OrgContext>, DbError> {
    let Some(org) = super::repo::orgs::find_by_ref(c, &invitation.organization_id.to_string())?
    else {
        return Ok(None);
    };
    Ok(Some(OrgContext::new(Ctx {
        permissions: PermissionSet::effective(invitation.role, &Default::default()),
        org,
        user_id: user,
        role: invitation.role,
        last_active_at: None,
        sessions_revoked_at: None,
        system_job: None,
    })))
}

/// What a background job or maintenance command acts as (audit retention and
/// verification, invoices, webhook deliveries, key re-wrapping, invitation clean-up):
/// named, logged, and holding no permission, so that a service check (`require`) on its
/// behalf fails instead of passing as an owner would. Nothing that serves a request
/// makes one.
#[derive(Debug, Clone, Copy)]
pub struct SystemScope {
    job: &'static str,
}

impl SystemScope {
    pub const fn new(job: &'static str) -> Self {
        SystemScope { job }
    }

    pub fn job(&self) -> &'static str {
        self.job
    }

    /// The job's context in `org`; `None` when the organization no longer exists.
    pub fn in_org(&self, c: &Conn<'_>, org: OrgId) -> Result<Option<OrgContext>, DbError> {
        let Some(org) = super::repo::orgs::find_by_ref(c, &org.to_string())? else {
            return Ok(None);
        };
        tracing::debug!(job = self.job, org = %org.id, "system job in organization");
        Ok(Some(OrgContext::new(Ctx {
            permissions: PermissionSet::default(),
            org,
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            role: Role::Guest,
            last_active_at: None,
            sessions_revoked_at: None,
            system_job: Some(self.job),
        })))
    }
}
