//! Plans and their limits (instance-wide rows; an organization names its plan).

use crate::db::{Conn, DbError, OrgContext};
use crate::domain::Micros;

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub max_agents: Option<i64>,
    pub max_workflows: Option<i64>,
    pub max_members: Option<i64>,
    pub max_storage_bytes: Option<i64>,
    pub max_document_bytes: Option<i64>,
    pub monthly_ai_credits_micros: Option<Micros>,
    pub price_monthly_micros: Micros,
}

pub fn for_org(c: &Conn<'_>, ctx: &OrgContext) -> Result<Option<Plan>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT p.id, p.name, p.max_agents, p.max_workflows, p.max_members, p.max_storage_bytes,
                p.max_document_bytes, p.monthly_ai_credits_micros, p.price_monthly_micros
         FROM organizations o JOIN plans p ON p.id = o.plan WHERE o.id = ?1",
        &[],
        |r| {
            Ok(Plan {
                id: r.get(0)?,
                name: r.get(1)?,
                max_agents: r.get(2)?,
                max_workflows: r.get(3)?,
                max_members: r.get(4)?,
                max_storage_bytes: r.get(5)?,
                max_document_bytes: r.get(6)?,
                monthly_ai_credits_micros: r.get(7)?,
                price_monthly_micros: r.get(8)?,
            })
        },
    )
}
