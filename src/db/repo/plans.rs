//! Plans and their limits (instance-wide rows; an organization names its plan), and the
//! limits an instance administrator overrides for one organization.

use rusqlite::params;

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Micros, PlanLimits};

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub max_agents: Option<i64>,
    pub max_workflows: Option<i64>,
    pub max_members: Option<i64>,
    pub max_documents: Option<i64>,
    pub max_storage_bytes: Option<i64>,
    pub max_document_bytes: Option<i64>,
    pub monthly_ai_credits_micros: Option<Micros>,
    pub rate_limit_rpm: Option<i64>,
    pub price_monthly_micros: Micros,
}

impl Plan {
    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            agents: self.max_agents,
            workflows: self.max_workflows,
            members: self.max_members,
            documents: self.max_documents,
            storage_bytes: self.max_storage_bytes,
            document_bytes: self.max_document_bytes,
            monthly_credits_micros: self.monthly_ai_credits_micros.map(Micros::get),
            rate_limit_rpm: self.rate_limit_rpm,
        }
    }

    /// The plan with every limit replaced by `l`'s.
    pub fn with_limits(mut self, l: &PlanLimits) -> Plan {
        self.max_agents = l.agents;
        self.max_workflows = l.workflows;
        self.max_members = l.members;
        self.max_documents = l.documents;
        self.max_storage_bytes = l.storage_bytes;
        self.max_document_bytes = l.document_bytes;
        self.monthly_ai_credits_micros = l.monthly_credits_micros.map(Micros::new);
        self.rate_limit_rpm = l.rate_limit_rpm;
        self
    }
}

const PLAN_COLUMNS: &str = "p.id, p.name, p.max_agents, p.max_workflows, p.max_members, \
     p.max_documents, p.max_storage_bytes, p.max_document_bytes, p.monthly_ai_credits_micros, \
     p.rate_limit_rpm, p.price_monthly_micros";

fn plan_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Plan> {
    Ok(Plan {
        id: r.get(0)?,
        name: r.get(1)?,
        max_agents: r.get(2)?,
        max_workflows: r.get(3)?,
        max_members: r.get(4)?,
        max_documents: r.get(5)?,
        max_storage_bytes: r.get(6)?,
        max_document_bytes: r.get(7)?,
        monthly_ai_credits_micros: r.get(8)?,
        rate_limit_rpm: r.get(9)?,
        price_monthly_micros: r.get(10)?,
    })
}

/// The organization's plan with the limits overridden for it applied: what every limit
/// check reads, so an override takes effect everywhere at once.
pub fn for_org(c: &Conn<'_>, ctx: &OrgContext) -> Result<Option<Plan>, DbError> {
    let found = c.scoped(ctx).query_opt(
        &format!(
            "SELECT {PLAN_COLUMNS}, o.limit_overrides
             FROM organizations o JOIN plans p ON p.id = o.plan WHERE o.id = ?1"
        ),
        &[],
        |r| Ok((plan_from_row(r)?, r.get::<_, String>(11)?)),
    )?;
    Ok(found.map(|(plan, overrides)| {
        let limits = plan.limits().overridden_by(&overrides);
        plan.with_limits(&limits)
    }))
}

/// The plan whose fee the invoice of `period` charges, when a plan change left the fee of
/// that period on the earlier plan: (name, fee).
pub fn fee_plan_for_period(
    c: &Conn<'_>,
    ctx: &OrgContext,
    period: &str,
) -> Result<Option<(String, Micros)>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT p.name, p.price_monthly_micros
         FROM organizations o JOIN plans p ON p.id = o.fee_plan
         WHERE o.id = ?1 AND o.fee_plan_period = ?2",
        &[&period],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

pub fn list(c: &Conn<'_>) -> Result<Vec<(Plan, i64)>, DbError> {
    c.query_vec(
        &format!(
            "SELECT {PLAN_COLUMNS}, (SELECT COUNT(*) FROM organizations o WHERE o.plan = p.id)
             FROM plans p ORDER BY p.price_monthly_micros, p.name, p.id"
        ),
        [],
        |r| Ok((plan_from_row(r)?, r.get(11)?)),
    )
}

pub fn find(c: &Conn<'_>, id: &str) -> Result<Option<Plan>, DbError> {
    c.query_opt(
        &format!("SELECT {PLAN_COLUMNS} FROM plans p WHERE p.id = ?1"),
        [id],
        plan_from_row,
    )
}

/// Inserts or rewrites the plan `p.id`.
pub fn save(tx: &WriteTx<'_>, p: &Plan, now: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO plans (id, name, max_agents, max_workflows, max_members, max_documents,
                            max_storage_bytes, max_document_bytes, monthly_ai_credits_micros,
                            rate_limit_rpm, price_monthly_micros, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
         ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, max_agents = excluded.max_agents,
            max_workflows = excluded.max_workflows, max_members = excluded.max_members,
            max_documents = excluded.max_documents, max_storage_bytes = excluded.max_storage_bytes,
            max_document_bytes = excluded.max_document_bytes,
            monthly_ai_credits_micros = excluded.monthly_ai_credits_micros,
            rate_limit_rpm = excluded.rate_limit_rpm,
            price_monthly_micros = excluded.price_monthly_micros, updated_at = excluded.updated_at",
        params![
            p.id,
            p.name,
            p.max_agents,
            p.max_workflows,
            p.max_members,
            p.max_documents,
            p.max_storage_bytes,
            p.max_document_bytes,
            p.monthly_ai_credits_micros,
            p.rate_limit_rpm,
            p.price_monthly_micros,
            now
        ],
    )?;
    Ok(())
}

/// Removes a plan no organization is on; `false` when there was no such plan.
pub fn delete(tx: &WriteTx<'_>, id: &str) -> Result<bool, DbError> {
    Ok(tx.execute("DELETE FROM plans WHERE id = ?1", [id])? > 0)
}

/// How many organizations are on the plan.
pub fn organizations_on(c: &Conn<'_>, id: &str) -> Result<i64, DbError> {
    Ok(c.query_opt(
        "SELECT COUNT(*) FROM organizations WHERE plan = ?1",
        [id],
        |r| r.get(0),
    )?
    .unwrap_or(0))
}
