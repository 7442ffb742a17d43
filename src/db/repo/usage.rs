//! Metering: one append-only event per gateway call and running totals per period.
use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Micros, fmt_time};

/// One call through the gateway, as metered.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub api_token_id: Option<String>,
    pub endpoint: &'static str,
    pub provider: String,
    pub model: String,
    /// What the provider's answer named as the model that served the call.
    pub served_model: Option<String>,
    /// Whether a price was found (an unpriced call costs 0 and is flagged).
    pub priced: bool,
    pub key_source: &'static str,
    pub status_code: u16,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: Micros,
    pub latency_ms: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Default, Clone, Copy)]
struct Sum {
    requests: i64,
    input: i64,
    output: i64,
    cost: Micros,
}

/// A total being added up: whose it is, the sums, and the time of the last event added.
type Running = (OrgContext, Sum, DateTime<Utc>);

/// Events of one write job, with their totals added up before they are written.
#[derive(Default)]
pub struct Batch {
    orgs: std::collections::BTreeMap<(String, String), Running>,
    members: std::collections::BTreeMap<(String, String, String), Running>,
}

impl Batch {
    /// Appends the event (in the caller's transaction) and counts it for the totals.
    pub fn add(
        &mut self,
        tx: &WriteTx<'_>,
        ctx: &OrgContext,
        period: &str,
        e: &Event,
    ) -> Result<(), DbError> {
        let org = ctx.org_id().to_string();
        let user = ctx.user_id().to_string();
        tx.scoped(ctx).execute(
            "INSERT INTO usage_events (organization_id, id, user_id, api_token_id, endpoint, provider,
                 model, key_source, status_code, input_tokens, output_tokens, cost_micros, latency_ms,
                 created_at, served_model, priced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                e.id,
                user,
                e.api_token_id,
                e.endpoint,
                e.provider,
                e.model,
                e.key_source,
                e.status_code,
                e.input_tokens,
                e.output_tokens,
                e.cost_micros,
                e.latency_ms,
                fmt_time(e.created_at),
                e.served_model,
                e.priced
            ],
        )?;
        let add = |s: &mut Sum| {
            s.requests += 1;
            s.input = s.input.saturating_add(e.input_tokens);
            s.output = s.output.saturating_add(e.output_tokens);
            s.cost = s.cost.saturating_add(e.cost_micros);
        };
        let o = self
            .orgs
            .entry((org.clone(), period.to_string()))
            .or_insert_with(|| (ctx.clone(), Sum::default(), e.created_at));
        add(&mut o.1);
        o.2 = e.created_at;
        let m = self
            .members
            .entry((org, period.to_string(), user))
            .or_insert_with(|| (ctx.clone(), Sum::default(), e.created_at));
        add(&mut m.1);
        m.2 = e.created_at;
        Ok(())
    }

    /// The organizations and periods this batch adds to.
    pub fn periods(&self) -> Vec<(OrgContext, String)> {
        self.orgs
            .iter()
            .map(|((_, period), (ctx, _, _))| (ctx.clone(), period.clone()))
            .collect()
    }

    /// Adds the batch to the organization and member totals of each period.
    pub fn commit_totals(self, tx: &WriteTx<'_>) -> Result<(), DbError> {
        for ((org, period), (ctx, s, at)) in &self.orgs {
            debug_assert_eq!(*org, ctx.org_id().to_string());
            tx.scoped(ctx).execute(
                "INSERT INTO organization_usage (organization_id, period, requests, input_tokens,
                     output_tokens, cost_micros, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (organization_id, period) DO UPDATE SET
                     requests = requests + excluded.requests,
                     input_tokens = input_tokens + excluded.input_tokens,
                     output_tokens = output_tokens + excluded.output_tokens,
                     cost_micros = cost_micros + excluded.cost_micros,
                     updated_at = excluded.updated_at",
                params![period, s.requests, s.input, s.output, s.cost, fmt_time(*at)],
            )?;
        }
        for ((_, period, user), (ctx, s, at)) in &self.members {
            tx.scoped(ctx).execute(
                "INSERT INTO member_usage (organization_id, user_id, period, requests, input_tokens,
                     output_tokens, cost_micros, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (organization_id, period, user_id) DO UPDATE SET
                     requests = requests + excluded.requests,
                     input_tokens = input_tokens + excluded.input_tokens,
                     output_tokens = output_tokens + excluded.output_tokens,
                     cost_micros = cost_micros + excluded.cost_micros,
                     updated_at = excluded.updated_at",
                params![user,
                    period,
                    s.requests,
                    s.input,
                    s.output,
                    s.cost,
                    fmt_time(*at)
                ],
            )?;
        }
        Ok(())
    }
}

/// (input, output) micro-dollars per million tokens in effect at `at`; `None` when the
/// model has no price then. The price of a call to `provider`, by the first of `models`
/// (most specific first: the model the provider served, then the one it was asked for)
/// that has one; for each, a price set for that provider wins over one for any provider
/// (and over the older spelling `provider/model` under any provider). So the prefix a
/// client used to route a call never changes its price.
pub fn price(
    c: &Conn<'_>,
    provider: &str,
    models: &[&str],
    at: &str,
) -> Result<Option<(Micros, Micros)>, DbError> {
    for model in models.iter().filter(|m| !m.is_empty()) {
        let prefixed = format!("{provider}/{model}");
        for (p, m) in [(provider, *model), ("", prefixed.as_str()), ("", *model)] {
            let found = c.query_opt(
                "SELECT input_micros_per_mtok, output_micros_per_mtok FROM model_price_entries
                 WHERE provider = ?1 AND model = ?2 AND effective_from <= ?3
                 ORDER BY effective_from DESC LIMIT 1",
                params![p, m, at],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if found.is_some() {
                return Ok(found);
            }
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: Micros,
}

fn totals_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Totals> {
    Ok(Totals {
        requests: r.get(0)?,
        input_tokens: r.get(1)?,
        output_tokens: r.get(2)?,
        cost_micros: r.get(3)?,
    })
}

/// The caller's own totals in the period.
pub fn member_totals(
    c: &Conn<'_>,
    ctx: &OrgContext,
    user: crate::domain::UserId,
    period: &str,
) -> Result<Totals, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT requests, input_tokens, output_tokens, cost_micros FROM member_usage
             WHERE organization_id = ?1 AND period = ?2 AND user_id = ?3",
            params![period, user.to_string()],
            totals_from,
        )?
        .unwrap_or_default())
}

/// Totals per member in the period, most expensive first.
/// A member's totals in one period, with their email and name while they are a member.
#[derive(Debug, Clone)]
pub struct MemberTotals {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub totals: Totals,
}

pub fn by_member(
    c: &Conn<'_>,
    ctx: &OrgContext,
    period: &str,
) -> Result<Vec<MemberTotals>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT mu.requests, mu.input_tokens, mu.output_tokens, mu.cost_micros, mu.user_id,
                coalesce(u.email, ''), coalesce(u.name, '')
         FROM member_usage mu
         LEFT JOIN organization_members m
                ON m.organization_id = mu.organization_id AND m.user_id = mu.user_id
         LEFT JOIN users u ON u.id = m.user_id
         WHERE mu.organization_id = ?1 AND mu.period = ?2
         ORDER BY mu.cost_micros DESC, mu.user_id",
        params![period],
        |r| {
            Ok(MemberTotals {
                totals: totals_from(r)?,
                user_id: r.get(4)?,
                email: r.get(5)?,
                name: r.get(6)?,
            })
        },
    )
}

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Model,
    Day,
    /// The service that made the call (`chat.completions`, `agent.chat`, ...).
    Endpoint,
}

/// Totals per group over the events in [start, end), with the number of calls that used
/// tokens but had no price.
pub fn grouped(
    c: &Conn<'_>,
    ctx: &OrgContext,
    by: Group,
    start: &str,
    end: &str,
) -> Result<Vec<(String, Totals, i64)>, DbError> {
    let key = match by {
        Group::Day => "substr(created_at, 1, 10)",
        Group::Model => "model",
        Group::Endpoint => "endpoint",
    };
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_micros), {key},
                    SUM(priced = 0 AND input_tokens + output_tokens > 0)
             FROM usage_events
             WHERE organization_id = ?1 AND created_at >= ?2 AND created_at < ?3
             GROUP BY {key} ORDER BY {key}"
        ),
        params![start, end],
        |r| Ok((r.get(4)?, totals_from(r)?, r.get(5)?)),
    )
}

pub fn totals(c: &Conn<'_>, ctx: &OrgContext, period: &str) -> Result<Totals, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT requests, input_tokens, output_tokens, cost_micros FROM organization_usage
             WHERE organization_id = ?1 AND period = ?2",
            params![period],
            |r| {
                Ok(Totals {
                    requests: r.get(0)?,
                    input_tokens: r.get(1)?,
                    output_tokens: r.get(2)?,
                    cost_micros: r.get(3)?,
                })
            },
        )?
        .unwrap_or_default())
}

/// The alert thresholds (percent) already sent in the period.
pub fn alerts_sent(c: &Conn<'_>, ctx: &OrgContext, period: &str) -> Result<Vec<u8>, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT alerts_sent FROM organization_usage WHERE organization_id = ?1 AND period = ?2",
            params![period],
            |r| r.get::<_, String>(0),
        )?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

pub fn set_alerts_sent(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    period: &str,
    sent: &[u8],
) -> Result<(), DbError> {
    let json = serde_json::to_string(sent).unwrap_or_else(|_| "[]".into());
    tx.scoped(ctx).execute(
        "UPDATE organization_usage SET alerts_sent = ?3 WHERE organization_id = ?1 AND period = ?2",
        params![period, json],
    )?;
    Ok(())
}
