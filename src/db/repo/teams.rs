//! Teams inside one organization, and their members (who must be members of the org).
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};

use super::members::MemberUser;
use super::{time_at, uuid_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Principal, TeamId, UserId};

#[derive(Debug, Clone)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub description: String,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "t.id, t.name, t.description,
    (SELECT COUNT(*) FROM team_members tm WHERE tm.organization_id = t.organization_id AND tm.team_id = t.id),
    t.created_at, t.updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Team> {
    Ok(Team {
        id: TeamId::from_uuid(uuid_at(r, 0)?),
        name: r.get(1)?,
        description: r.get(2)?,
        member_count: r.get(3)?,
        created_at: time_at(r, 4)?,
        updated_at: time_at(r, 5)?,
    })
}

pub fn list(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<Team>, DbError> {
    c.scoped(ctx).query_vec(
        &format!("SELECT {COLUMNS} FROM teams t WHERE t.organization_id = ?1 ORDER BY t.name COLLATE NOCASE, t.id"),
        &[],
        from_row,
    )
}

pub fn find(c: &Conn<'_>, ctx: &OrgContext, id: TeamId) -> Result<Option<Team>, DbError> {
    c.scoped(ctx).query_opt(
        &format!("SELECT {COLUMNS} FROM teams t WHERE t.organization_id = ?1 AND t.id = ?2"),
        params![id.to_string()],
        from_row,
    )
}

pub fn name_taken(
    c: &Conn<'_>,
    ctx: &OrgContext,
    name: &str,
    except: Option<TeamId>,
) -> Result<bool, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT 1 FROM teams WHERE organization_id = ?1 AND name = ?2 AND id != ?3",
            params![name, except.map(|t| t.to_string()).unwrap_or_default()],
            |_| Ok(()),
        )?
        .is_some())
}

pub fn insert(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: TeamId,
    name: &str,
    description: &str,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO teams (organization_id, id, name, description, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![id.to_string(), name, description, ctx.user_id().to_string(), now],
    )?;
    Ok(())
}

pub fn update(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: TeamId,
    name: &str,
    description: &str,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE teams SET name = ?3, description = ?4, updated_at = ?5 WHERE organization_id = ?1 AND id = ?2",
        params![id.to_string(), name, description, now],
    )? == 1)
}

pub fn delete(tx: &WriteTx<'_>, ctx: &OrgContext, id: TeamId) -> Result<bool, DbError> {
    super::resources::drop_shares_with(tx, ctx, Principal::Team(id))?;
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM teams WHERE organization_id = ?1 AND id = ?2",
        params![id.to_string()],
    )? == 1)
}

pub fn members(c: &Conn<'_>, ctx: &OrgContext, team: TeamId) -> Result<Vec<MemberUser>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT u.id, u.email, u.name FROM team_members tm JOIN users u ON u.id = tm.user_id
         WHERE tm.organization_id = ?1 AND tm.team_id = ?2 ORDER BY u.name COLLATE NOCASE, u.id",
        params![team.to_string()],
        |r| {
            Ok(MemberUser {
                id: UserId::from_uuid(uuid_at(r, 0)?),
                email: r.get(1)?,
                name: r.get(2)?,
            })
        },
    )
}

/// Adds a member; false when they were already in the team.
pub fn add_member(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    team: TeamId,
    user: UserId,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "INSERT INTO team_members (organization_id, team_id, user_id, added_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        params![team.to_string(), user.to_string(), now],
    )? == 1)
}

pub fn remove_member(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    team: TeamId,
    user: UserId,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM team_members WHERE organization_id = ?1 AND team_id = ?2 AND user_id = ?3",
        params![team.to_string(), user.to_string()],
    )? == 1)
}
