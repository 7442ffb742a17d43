//! The import ledger: which items of an imported file landed, per user in their personal
//! organization, by the identity they had in the file.
use rusqlite::params;

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::ResourceId;
use crate::domain::resources::ResourceKind;

/// The resource an item of the file became, if it was imported before by the context's
/// user (it may have been deleted since).
pub fn find(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    source_id: &str,
) -> Result<Option<ResourceId>, DbError> {
    let id: Option<String> = c.scoped(ctx).query_opt(
        "SELECT resource_id FROM import_ledger
         WHERE organization_id = ?1 AND user_id = ?2 AND kind = ?3 AND source_id = ?4",
        params![ctx.user_id().to_string(), kind.share_type(), source_id],
        |r| r.get(0),
    )?;
    Ok(id.as_deref().and_then(ResourceId::parse))
}

/// Records that an item of the file became `resource`.
pub fn record(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    source_id: &str,
    resource: ResourceId,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO import_ledger (organization_id, user_id, kind, source_id, resource_id, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            ctx.user_id().to_string(),
            kind.share_type(),
            source_id,
            resource,
            now
        ],
    )?;
    Ok(())
}
