//! Shareable resources, read through the visibility predicate.
use rusqlite::params;
use serde::Serialize;

use super::opt_uuid_at;
use crate::db::scope::{has_permission, visibility_predicate};
use crate::db::{Conn, DbError, OrgContext};
use crate::domain::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Agent,
    Workflow,
    Document,
    Tool,
    KnowledgeBase,
    Conversation,
}

impl ResourceKind {
    pub fn table(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agents",
            ResourceKind::Workflow => "workflows",
            ResourceKind::Document => "uploaded_documents",
            ResourceKind::Tool => "tools",
            ResourceKind::KnowledgeBase => "knowledge_bases",
            ResourceKind::Conversation => "conversations",
        }
    }
    /// The name used in `resource_shares.resource_type` and audit rows.
    pub fn share_type(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agent",
            ResourceKind::Workflow => "workflow",
            ResourceKind::Document => "document",
            ResourceKind::Tool => "tool",
            ResourceKind::KnowledgeBase => "knowledge_base",
            ResourceKind::Conversation => "conversation",
        }
    }
    /// The permission prefix (`agents.manage`, ...).
    pub fn permission_prefix(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agents",
            ResourceKind::Workflow => "workflows",
            ResourceKind::Document => "documents",
            ResourceKind::Tool => "tools",
            ResourceKind::KnowledgeBase => "knowledge_bases",
            ResourceKind::Conversation => "conversations",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub owner_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The newest `limit` resources of `kind` the context's user may read in its organization.
pub fn list_visible(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    limit: i64,
) -> Result<Vec<ResourceSummary>, DbError> {
    let sql = format!(
        "SELECT a.id, a.name, a.description, a.visibility, a.user_id, a.created_at, a.updated_at
         FROM {} a
         WHERE {}
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT ?5",
        kind.table(),
        visibility_predicate(kind.share_type())
    );
    let manage = has_permission(ctx, &format!("{}.manage", kind.permission_prefix()));
    let not_guest = ctx.role() != Role::Guest;
    c.query_vec(
        &sql,
        params![
            ctx.org_id().to_string(),
            ctx.user_id().to_string(),
            manage,
            not_guest,
            limit
        ],
        |r| {
            Ok(ResourceSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                visibility: r.get(3)?,
                owner_id: opt_uuid_at(r, 4)?.map(|u| u.to_string()),
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        },
    )
}
