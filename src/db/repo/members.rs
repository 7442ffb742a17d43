//! Memberships of one organization: roles, permission overrides, status.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Row, params};

use super::{json_at, opt_time_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{MemberStatus, Principal, Role, UserId};

#[derive(Debug, Clone)]
pub struct MemberUser {
    pub id: UserId,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user: MemberUser,
    pub role: Role,
    /// The explicit overrides (`{"path": true|false}`), not the effective set.
    pub permissions: BTreeMap<String, bool>,
    pub status: MemberStatus,
    pub joined_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    /// Whether the member has a confirmed second factor (their account's, not the org's).
    pub two_factor: bool,
}

const COLUMNS: &str =
    "u.id, u.email, u.name, m.role, m.permissions, m.status, m.joined_at, m.last_active_at,
     EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = m.user_id AND t.confirmed_at IS NOT NULL)";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let perms = json_at(r, 4)?;
    Ok(Member {
        user: MemberUser {
            id: UserId::from_uuid(uuid_at(r, 0)?),
            email: r.get(1)?,
            name: r.get(2)?,
        },
        role: word_at(r, 3)?,
        permissions: serde_json::from_value(perms).unwrap_or_default(),
        status: word_at(r, 5)?,
        joined_at: time_at(r, 6)?,
        last_active_at: opt_time_at(r, 7)?,
        two_factor: r.get(8)?,
    })
}

/// Members in join order; `after` is the (joined_at, user id) the previous page ended at.
pub fn list(
    c: &Conn<'_>,
    ctx: &OrgContext,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Member>, DbError> {
    let (at, id) = after.unwrap_or(("", ""));
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {COLUMNS} FROM organization_members m JOIN users u ON u.id = m.user_id
             WHERE m.organization_id = ?1 AND (m.joined_at, m.user_id) > (?2, ?3)
             ORDER BY m.joined_at, m.user_id LIMIT ?4"
        ),
        params![at, id, limit],
        from_row,
    )
}

pub fn find(c: &Conn<'_>, ctx: &OrgContext, user: UserId) -> Result<Option<Member>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {COLUMNS} FROM organization_members m JOIN users u ON u.id = m.user_id
             WHERE m.organization_id = ?1 AND m.user_id = ?2"
        ),
        params![user.to_string()],
        from_row,
    )
}

pub fn find_by_email(
    c: &Conn<'_>,
    ctx: &OrgContext,
    email: &str,
) -> Result<Option<Member>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {COLUMNS} FROM organization_members m JOIN users u ON u.id = m.user_id
             WHERE m.organization_id = ?1 AND u.email = ?2"
        ),
        params![email],
        from_row,
    )
}

/// Active owners of the organization.
pub fn count_owners(c: &Conn<'_>, ctx: &OrgContext) -> Result<i64, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT COUNT(*) FROM organization_members
             WHERE organization_id = ?1 AND role = 'owner' AND status = 'active'",
            &[],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

pub fn count(c: &Conn<'_>, ctx: &OrgContext) -> Result<i64, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT COUNT(*) FROM organization_members WHERE organization_id = ?1",
            &[],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

pub fn set_role(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    role: Role,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organization_members SET role = ?3 WHERE organization_id = ?1 AND user_id = ?2",
        params![user.to_string(), role.as_str()],
    )?;
    Ok(())
}

pub fn set_permissions(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    overrides: &BTreeMap<String, bool>,
) -> Result<(), DbError> {
    let json = serde_json::to_string(overrides).unwrap_or_else(|_| "{}".into());
    tx.scoped(ctx).execute(
        "UPDATE organization_members SET permissions = ?3 WHERE organization_id = ?1 AND user_id = ?2",
        params![user.to_string(), json],
    )?;
    Ok(())
}

pub fn insert(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    role: Role,
    invited_by: Option<UserId>,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO organization_members (organization_id, user_id, role, invited_by, joined_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user.to_string(),
            role.as_str(),
            invited_by.map(|u| u.to_string()),
            now
        ],
    )?;
    Ok(())
}

/// Removes the membership (team memberships and the member's own keys go with it by
/// foreign key) and revokes the user's API tokens for this organization.
pub fn remove(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    now: &str,
) -> Result<bool, DbError> {
    let n = tx.scoped(ctx).execute(
        "DELETE FROM organization_members WHERE organization_id = ?1 AND user_id = ?2",
        params![user.to_string()],
    )?;
    // Direct shares end with the membership (team shares end with the team membership,
    // which the foreign key removes).
    super::resources::drop_shares_with(tx, ctx, Principal::User(user))?;
    tx.scoped(ctx).execute(
        "UPDATE api_tokens SET revoked_at = ?3
         WHERE organization_id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![user.to_string(), now],
    )?;
    tx.scoped(ctx).execute(
        "UPDATE users SET current_organization_id = NULL
         WHERE id = ?2 AND current_organization_id = ?1",
        params![user.to_string()],
    )?;
    Ok(n == 1)
}
