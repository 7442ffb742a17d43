//! Agent memory: facts an agent keeps between conversations, a member's own or the
//! organization's.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_uuid_at, time_at, uuid_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{ResourceId, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub id: String,
    pub agent_id: ResourceId,
    /// `None`: shared by the organization's members who may read the agent.
    pub user_id: Option<UserId>,
    pub key: String,
    pub value: String,
    pub created_by: Option<UserId>,
    pub source_conversation_id: Option<ResourceId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, agent_id, user_id, key, value, created_by, source_conversation_id, created_at, updated_at";

fn fact_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Fact> {
    Ok(Fact {
        id: r.get(0)?,
        agent_id: ResourceId::from_uuid(uuid_at(r, 1)?),
        user_id: opt_uuid_at(r, 2)?.map(UserId::from_uuid),
        key: r.get(3)?,
        value: r.get(4)?,
        created_by: opt_uuid_at(r, 5)?.map(UserId::from_uuid),
        source_conversation_id: opt_uuid_at(r, 6)?.map(ResourceId::from_uuid),
        created_at: time_at(r, 7)?,
        updated_at: time_at(r, 8)?,
    })
}

/// Whose facts: one member's, or the organization's shared ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Member(UserId),
    Organization,
}

impl Owner {
    fn bound(self) -> String {
        match self {
            Owner::Member(u) => u.to_string(),
            Owner::Organization => String::new(),
        }
    }
}

/// The facts of `owner` for an agent, by key.
pub fn list(
    c: &Conn<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
    owner: Owner,
    limit: i64,
) -> Result<Vec<Fact>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {COLUMNS} FROM agent_memories
             WHERE organization_id = ?1 AND agent_id = ?2 AND COALESCE(user_id, '') = ?3
             ORDER BY key LIMIT ?4"
        ),
        params![agent, owner.bound(), limit],
        fact_from_row,
    )
}

pub fn get(
    c: &Conn<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
    owner: Owner,
    id: &str,
) -> Result<Option<Fact>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {COLUMNS} FROM agent_memories
             WHERE organization_id = ?1 AND agent_id = ?2 AND COALESCE(user_id, '') = ?3 AND id = ?4"
        ),
        params![agent, owner.bound(), id],
        fact_from_row,
    )
}

/// Stores a fact, replacing the value of the same key; returns its id.
#[allow(clippy::too_many_arguments)]
pub fn put(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
    owner: Owner,
    key: &str,
    value: &str,
    source: Option<ResourceId>,
    now: &str,
) -> Result<String, DbError> {
    let s = tx.scoped(ctx);
    let existing: Option<String> = s.query_opt(
        "SELECT id FROM agent_memories
         WHERE organization_id = ?1 AND agent_id = ?2 AND COALESCE(user_id, '') = ?3 AND key = ?4",
        params![agent, owner.bound(), key],
        |r| r.get(0),
    )?;
    if let Some(id) = existing {
        s.execute(
            "UPDATE agent_memories SET value = ?3, updated_at = ?4,
                    source_conversation_id = COALESCE(?5, source_conversation_id)
             WHERE organization_id = ?1 AND id = ?2",
            params![id, value, now, source.map(|c| c.to_string())],
        )?;
        return Ok(id);
    }
    let id = crate::domain::new_id().to_string();
    let user = match owner {
        Owner::Member(u) => Some(u.to_string()),
        Owner::Organization => None,
    };
    s.execute(
        "INSERT INTO agent_memories (organization_id, id, agent_id, user_id, key, value, created_by,
                                     source_conversation_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            agent,
            user,
            key,
            value,
            ctx.user_id().to_string(),
            source.map(|c| c.to_string()),
            now
        ],
    )?;
    Ok(id)
}

/// Changes a fact's key or value; false when it is not `owner`'s. A key another fact of
/// the owner has is a constraint error (the service checks first).
pub fn update(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: &str,
    key: &str,
    value: &str,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE agent_memories SET key = ?3, value = ?4, updated_at = ?5
         WHERE organization_id = ?1 AND id = ?2",
        params![id, key, value, now],
    )? == 1)
}

pub fn delete(tx: &WriteTx<'_>, ctx: &OrgContext, id: &str) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM agent_memories WHERE organization_id = ?1 AND id = ?2",
        params![id],
    )? == 1)
}
