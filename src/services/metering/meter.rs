//! Writing usage: every call's event, and the period totals per organization and member
//! added up in memory first, in one write job for all the calls that arrived while the
//! previous job was committing. One job per call spent most of the writer's time on
//! per-job savepoints and repeated upserts.
use std::collections::BTreeMap;

use super::admission::Reservation;
use super::tokens::{Tokens, cost};
use crate::db::repo::usage;
use crate::db::{Db, OrgContext};
use crate::domain::{Micros, new_id};
use crate::error::AppError;

/// One finished call waiting to be written.
pub struct Metered {
    pub ctx: OrgContext,
    pub token_id: Option<String>,
    pub endpoint: &'static str,
    pub provider: String,
    /// The model as the client named it.
    pub model: String,
    /// The model as the upstream knows it (its price is looked up by this name).
    pub upstream_model: String,
    /// The model as metrics name it (`gateway::Call::metric_model`).
    pub metric_model: String,
    /// Whose key paid (`KeySource::as_str`).
    pub key_source: &'static str,
    pub status: u16,
    pub tokens: Tokens,
    /// The model the provider's answer named, when it named one.
    pub served_model: Option<String>,
    pub latency_ms: i64,
    /// When the call ended (the gateway's clock): its period and the event's time.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Released once the call's usage is committed.
    pub reservation: Option<Reservation>,
}

enum MeterMsg {
    Call(Box<Metered>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The handle calls are submitted to; the task behind it writes them in batches.
#[derive(Clone)]
pub struct Meter {
    tx: tokio::sync::mpsc::UnboundedSender<MeterMsg>,
}

type Metrics = std::sync::Arc<crate::metrics::Metrics>;

/// Calls written per job at most.
const METER_BATCH: usize = 1024;
/// How long a batch gathers calls after its first one. Each commit costs the writer a WAL
/// sync whatever its size; gathering for a few milliseconds keeps that to a few hundred
/// a second under load (answers never wait for it; a crash can lose this much usage).
const METER_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

impl Meter {
    /// The meter's task; each written batch is also counted in `metrics`.
    pub fn start(db: Db, metrics: Metrics) -> Meter {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MeterMsg>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let deadline = tokio::time::Instant::now() + METER_WINDOW;
                let mut calls = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        MeterMsg::Call(c) => calls.push(*c),
                        // Whoever flushes is waiting: write now.
                        MeterMsg::Flush(done) => {
                            flushes.push(done);
                            break;
                        }
                    }
                    if calls.len() >= METER_BATCH {
                        break;
                    }
                    next = tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten();
                }
                if !calls.is_empty() {
                    write_batch(&db, &metrics, calls).await;
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        Meter { tx }
    }

    pub fn submit(&self, m: Metered) {
        if let Err(e) = self.tx.send(MeterMsg::Call(Box::new(m))) {
            tracing::error!(error = %e, "the usage meter has stopped; a call was not metered");
        }
    }

    /// Waits until everything submitted before this call is written (shutdown).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(MeterMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batch(db: &Db, metrics: &Metrics, calls: Vec<Metered>) {
    let rows: Vec<(
        OrgContext,
        chrono::DateTime<chrono::Utc>,
        String,
        usage::Event,
    )> = calls
        .iter()
        .map(|m| {
            (
                m.ctx.clone(),
                m.at,
                m.upstream_model.clone(),
                usage::Event {
                    id: new_id().to_string(),
                    api_token_id: m.token_id.clone(),
                    endpoint: m.endpoint,
                    provider: m.provider.clone(),
                    model: m.model.clone(),
                    served_model: m.served_model.clone(),
                    priced: false,
                    key_source: m.key_source,
                    status_code: m.status,
                    input_tokens: m.tokens.input,
                    output_tokens: m.tokens.output,
                    cost_micros: Micros::ZERO,
                    latency_ms: m.latency_ms,
                    created_at: m.at,
                },
            )
        })
        .collect();
    let n = rows.len();
    let done = db
        .write_bookkeeping(crate::db::Bookkeeping::Usage, move |tx| {
            type PriceKey = (String, Option<String>, String);
            let mut prices: BTreeMap<PriceKey, Option<(Micros, Micros)>> = BTreeMap::new();
            let mut anchors: BTreeMap<crate::domain::OrgId, u32> = BTreeMap::new();
            let mut batch = usage::Batch::default();
            let mut costs = Vec::with_capacity(rows.len());
            let mut last = None;
            for (ctx, at, upstream_model, mut e) in rows {
                last = Some(at);
                let key = (e.provider.clone(), e.served_model.clone(), upstream_model);
                let price = match prices.get(&key) {
                    Some(p) => *p,
                    None => {
                        let served = key.1.as_deref().unwrap_or("");
                        let p = usage::price(
                            tx,
                            &key.0,
                            &[served, &key.2],
                            &crate::domain::fmt_time(at),
                        )?;
                        prices.insert(key, p);
                        p
                    }
                };
                e.priced = price.is_some();
                e.cost_micros = cost(
                    price,
                    Tokens {
                        input: e.input_tokens,
                        output: e.output_tokens,
                    },
                );
                costs.push(e.cost_micros);
                let anchor = match anchors.get(&ctx.org_id()) {
                    Some(a) => *a,
                    None => {
                        let (q, _) = crate::services::quota::current_period(tx, &ctx, at)?;
                        anchors.insert(ctx.org_id(), q.billing_anchor_day);
                        q.billing_anchor_day
                    }
                };
                let period = crate::domain::period::period_at(at, anchor).label;
                batch.add(tx, &ctx, &period, &e)?;
            }
            let touched = batch.periods();
            batch.commit_totals(tx)?;
            // Alerts are stamped with the time of the calls that crossed them.
            if let Some(at) = last {
                let now = crate::domain::fmt_time(at);
                for (ctx, period) in touched {
                    super::alerts::check_alerts(tx, &ctx, &period, &now)?;
                }
            }
            Ok::<_, AppError>(costs)
        })
        .await;
    let count = |m: &Metered, cost: Option<Micros>| {
        metrics.model_call(
            &m.ctx.org_id().to_string(),
            &m.metric_model,
            m.status,
            m.tokens.input,
            m.tokens.output,
            cost.map(Micros::get),
        );
    };
    match done {
        Ok(costs) => {
            for (m, c) in calls.into_iter().zip(costs) {
                count(&m, Some(c));
                if let Some(r) = m.reservation {
                    r.settle(c);
                }
            }
        }
        Err(e) => {
            // The reservations end unsettled: nothing of these calls was committed, so
            // no cost is counted either; the calls and their tokens still happened.
            tracing::error!(error = %e, calls = n, "writing usage failed");
            for m in &calls {
                count(m, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;
    use crate::db::repo::quotas;
    use crate::services::metering::test_member;

    fn call(ctx: &OrgContext, input: i64, at: chrono::DateTime<chrono::Utc>) -> Metered {
        Metered {
            ctx: ctx.clone(),
            token_id: None,
            endpoint: crate::domain::usage::EMBEDDINGS,
            provider: "openai".into(),
            model: "openai/gpt-4o-mini".into(),
            upstream_model: "gpt-4o-mini".into(),
            metric_model: "openai/gpt-4o-mini".into(),
            key_source: "organization",
            status: 200,
            tokens: Tokens { input, output: 0 },
            served_model: None,
            latency_ms: 1,
            at,
            reservation: None,
        }
    }

    #[tokio::test]
    async fn usage_is_priced_totalled_and_each_alert_threshold_fires_once() {
        let (_dir, db, ctx) = test_member().await;
        let c = ctx.clone();
        db.write(move |tx| {
            let q = quotas::Quota {
                monthly_credits_micros: Some(Micros::new(100_000)),
                ..quotas::Quota::default()
            };
            quotas::save(
                tx,
                &c,
                &q,
                c.user_id(),
                &crate::domain::fmt_time(chrono::Utc::now()),
            )
        })
        .await
        .unwrap();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(&db));
        let meter = Meter::start(db.clone(), metrics.clone());
        let at = chrono::Utc::now();
        // gpt-4o-mini costs 0.15 $ per million input tokens: 600,000 tokens are 90,000 µ$.
        meter.submit(call(&ctx, 600_000, at));
        meter.flush().await;
        let period = crate::domain::period::period_at(at, 1).label;
        let (c, p) = (ctx.clone(), period.clone());
        let (totals, sent) = db
            .read(move |tx| {
                Ok::<_, DbError>((usage::totals(tx, &c, &p)?, usage::alerts_sent(tx, &c, &p)?))
            })
            .await
            .unwrap();
        assert_eq!(
            (totals.requests, totals.cost_micros),
            (1, Micros::new(90_000))
        );
        assert_eq!(sent, vec![80, 90]);
        meter.submit(call(&ctx, 100_000, at));
        meter.submit(call(&ctx, 100_000, at));
        meter.flush().await;
        let (c, p) = (ctx.clone(), period);
        let (totals, sent, notes) = db
            .read(move |tx| {
                Ok::<_, DbError>((
                    usage::totals(tx, &c, &p)?,
                    usage::alerts_sent(tx, &c, &p)?,
                    crate::db::repo::notifications::list(tx, &c, c.user_id(), 50)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            (totals.requests, totals.cost_micros),
            (3, Micros::new(120_000))
        );
        assert_eq!(sent, vec![80, 90, 100]);
        assert_eq!(notes.len(), 3, "one notification per threshold, each once");
        // The metrics count what was committed.
        let text = metrics.render();
        let org = ctx.org_id().to_string();
        let line = format!("xagent_gateway_cost_micros_total{{org=\"{org}\"}} 120000");
        assert!(text.lines().any(|l| l == line), "{text}");
        let calls = format!(
            "xagent_gateway_calls_total{{org=\"{org}\",model=\"openai/gpt-4o-mini\",outcome=\"ok\"}} 3"
        );
        assert!(text.lines().any(|l| l == calls), "{text}");
    }
}
