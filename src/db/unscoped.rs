//! Deliberately cross-tenant queries, each named for what it crosses. Everything here
//! starts from the signed-in user (their own memberships), never from request data.
use rusqlite::params;

use super::repo::orgs::{ORG_COLUMNS, Org, org_from_row};
use super::{Conn, DbError};
use crate::domain::{Role, UserId};

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
        |r| Ok((org_from_row(r, 0)?, r.get::<_, String>(9)?)),
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
