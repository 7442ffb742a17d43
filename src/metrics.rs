//! Prometheus metrics: what the server counts (HTTP requests by route template, model calls,
//! tokens and cost by organization, quota refusals, backups), what it reads at each scrape
//! (the database writer's queue and batches, the database and WAL file sizes), and the
//! text exposition of it all (Prometheus text format 0.0.4).
//!
//! Each server has its own registry (`Services::metrics`), not a process-wide one, so that
//! several servers in one process (the tests) keep their own counts.
//!
//! Label values stay bounded by the installation: routes are the router's templates (never
//! a request's path), methods and outcomes are closed lists, organizations are ids, and a
//! model is named only when it is priced or named by its organization's policy (else
//! `other`), with a hard cap on how many model names are ever used.
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::db::Db;

/// The `Content-Type` of `render`'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of a request no route matched (a 404 of the fallback).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The model label of a model that is neither priced nor named by a policy.
pub const OTHER_MODEL: &str = "other";

/// Distinct model names the metrics ever use; beyond that, `other`. Priced and configured
/// names are few; this only guards against a misconfiguration growing the series.
const MAX_MODEL_LABELS: usize = 200;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    org: String,
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    org: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgLabels {
    org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// How a model call ended, as the `outcome` label says it.
pub fn call_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        // The client went away before the answer was complete.
        499 => "cancelled",
        400..=498 => "rejected",
        _ => "upstream_error",
    }
}

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    calls: Family<CallLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<OrgLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    backups: Family<OutcomeLabels, Counter>,
    backup_last_success: Gauge<f64, AtomicU64>,
    backup_last_failure: Gauge<f64, AtomicU64>,
    /// The model names used so far (bounded by `MAX_MODEL_LABELS`).
    models: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The registry of a server on `db`; the writer's figures and the file sizes are read
    /// from `db` at each scrape.
    pub fn new(db: &Db) -> Metrics {
        let mut registry = Registry::default();
        let build: Family<VersionLabels, Gauge> = Family::default();
        build
            .get_or_create(&VersionLabels {
                version: crate::VERSION,
            })
            .set(1);
        registry.register("xagent_build_info", "The running version (always 1)", build);
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "xagent_http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "xagent_http_request_duration",
            "Time from a request's arrival to its response's head, by method and route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "xagent_gateway_calls",
            "Model calls (gateway and agent services), by organization id, model and outcome",
            calls.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "xagent_gateway_tokens",
            "Tokens of model calls, by organization id and direction (input, output)",
            tokens.clone(),
        );
        let cost = Family::<OrgLabels, Counter>::default();
        registry.register(
            "xagent_gateway_cost_micros",
            "Cost of model calls as metered, in micro-USD, by organization id",
            cost.clone(),
        );
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "xagent_quota_refusals",
            "Model calls refused by a quota or rate limit, by the limit that was reached",
            refusals.clone(),
        );
        let backups = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "xagent_backups",
            "Backups attempted, by outcome (success, failure)",
            backups.clone(),
        );
        let backup_last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "xagent_backup_last_success_timestamp_seconds",
            "When the last backup succeeded, in seconds since the Unix epoch (0: none since start)",
            backup_last_success.clone(),
        );
        let backup_last_failure = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "xagent_backup_last_failure_timestamp_seconds",
            "When the last backup failed, in seconds since the Unix epoch (0: none since start)",
            backup_last_failure.clone(),
        );
        registry.register_collector(Box::new(DbCollector { db: db.clone() }));
        Metrics {
            registry,
            http_requests,
            http_duration,
            calls,
            tokens,
            cost,
            refusals,
            backups,
            backup_last_success,
            backup_last_failure,
            models: Mutex::new(HashSet::new()),
        }
    }

    /// One answered HTTP request; `route` is the matched route's template (`None`: no
    /// route matched).
    pub fn http_request(
        &self,
        method: &'static str,
        route: Option<&str>,
        status: u16,
        took: Duration,
    ) {
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_string();
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The model label for `model`: itself while fewer than `MAX_MODEL_LABELS` names are
    /// in use (or it is one of them), else `other`. Callers pass only priced or configured
    /// names (see `gateway::Call::metric_model`).
    fn model_label(&self, model: &str) -> String {
        if model == OTHER_MODEL {
            return OTHER_MODEL.to_string();
        }
        let mut seen = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(model) {
            return model.to_string();
        }
        if seen.len() < MAX_MODEL_LABELS {
            seen.insert(model.to_string());
            return model.to_string();
        }
        OTHER_MODEL.to_string()
    }

    /// A model call whose usage was metered: its outcome, tokens and (when the usage was
    /// committed) its cost.
    pub fn model_call(
        &self,
        org: &str,
        model: &str,
        status: u16,
        input_tokens: i64,
        output_tokens: i64,
        cost_micros: Option<i64>,
    ) {
        self.calls
            .get_or_create(&CallLabels {
                org: org.to_string(),
                model: self.model_label(model),
                outcome: call_outcome(status),
            })
            .inc();
        for (direction, n) in [("input", input_tokens), ("output", output_tokens)] {
            let counter = self.tokens.get_or_create(&TokenLabels {
                org: org.to_string(),
                direction,
            });
            counter.inc_by(u64::try_from(n).unwrap_or(0));
        }
        if let Some(c) = cost_micros {
            self.cost
                .get_or_create(&OrgLabels {
                    org: org.to_string(),
                })
                .inc_by(u64::try_from(c).unwrap_or(0));
        }
    }

    /// A model call refused before it went upstream: `reason` is the limit that was
    /// reached (`LimitKind::as_str`).
    pub fn refused(&self, org: &str, model: &str, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
        self.calls
            .get_or_create(&CallLabels {
                org: org.to_string(),
                model: self.model_label(model),
                outcome: "refused",
            })
            .inc();
    }

    /// A backup finished at `at`: feeds `xagent_backup_last_success_timestamp_seconds` (or
    /// `…_last_failure_…`) and `xagent_backups_total{outcome}`. For the scheduled backups.
    pub fn record_backup(&self, success: bool, at: chrono::DateTime<chrono::Utc>) {
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        let (outcome, gauge) = if success {
            ("success", &self.backup_last_success)
        } else {
            ("failure", &self.backup_last_failure)
        };
        gauge.set(seconds);
        self.backups.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Everything in the Prometheus text format (`CONTENT_TYPE`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; a collector's error would leave the families
        // written so far, which is still a valid exposition.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encoding the metrics failed part way");
        }
        out
    }
}

/// What is read from the database at each scrape: the writer's queue, jobs, commits and
/// batch sizes, and the size of the database and WAL files.
struct DbCollector {
    db: Db,
}

impl std::fmt::Debug for DbCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbCollector")
    }
}

/// A histogram read from counters kept elsewhere: per-bucket (not cumulative) counts.
struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn file_size(path: &std::path::Path) -> i64 {
    std::fs::metadata(path)
        .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Collector for DbCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.db.writer_stats();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
        };
        gauge(
            &mut encoder,
            "xagent_db_write_queue_depth",
            "Write jobs waiting for the single writer",
            i64::try_from(self.db.write_queue_depth()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "xagent_db_write_jobs",
            "Write jobs the single writer ran",
            stats.jobs.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "xagent_db_write_commits",
            "Transactions the single writer committed (each holds one or more jobs)",
            stats.commits.load(Ordering::Relaxed),
        )?;
        let sizes = stats.batch_sizes();
        let batches = ConstHistogram {
            sum: sizes.jobs as f64,
            count: sizes.batches,
            buckets: sizes
                .buckets
                .iter()
                .map(|(le, n)| (*le as f64, *n))
                .collect(),
        };
        batches.encode(encoder.encode_descriptor(
            "xagent_db_write_batch_size",
            "Jobs per transaction of the single writer (group commit)",
            None,
            MetricType::Histogram,
        )?)?;
        let path = self.db.path();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        gauge(
            &mut encoder,
            "xagent_db_size_bytes",
            "Size of the database file",
            file_size(path),
        )?;
        gauge(
            &mut encoder,
            "xagent_db_wal_size_bytes",
            "Size of the database's write-ahead log file",
            file_size(std::path::Path::new(&wal)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        (dir, db)
    }

    /// The value of the sample `series` (name with labels, as written) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn counts_render_in_the_text_format_with_bounded_labels() {
        let (_dir, db) = db();
        let m = Metrics::new(&db);
        m.http_request(
            "GET",
            Some("/api/v1/orgs/{org}"),
            200,
            Duration::from_millis(3),
        );
        m.http_request(
            "GET",
            Some("/api/v1/orgs/{org}"),
            200,
            Duration::from_millis(30),
        );
        m.http_request("GET", None, 404, Duration::from_millis(1));
        m.model_call("o1", "gpt-test", 200, 11, 7, Some(6));
        m.model_call("o1", "gpt-test", 502, 3, 0, None);
        m.refused("o1", "gpt-test", "org_requests");
        m.record_backup(
            true,
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        );
        let text = m.render();
        let s = |series| sample(&text, series);
        assert_eq!(
            s(
                r#"xagent_http_requests_total{method="GET",route="/api/v1/orgs/{org}",status="200"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            s(r#"xagent_http_requests_total{method="GET",route="unmatched",status="404"}"#),
            Some(1.0)
        );
        assert_eq!(
            s(r#"xagent_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/orgs/{org}"}"#)
                .or_else(|| s(r#"xagent_http_request_duration_seconds_bucket{method="GET",route="/api/v1/orgs/{org}",le="0.005"}"#)),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            s(r#"xagent_gateway_calls_total{org="o1",model="gpt-test",outcome="ok"}"#),
            Some(1.0)
        );
        assert_eq!(
            s(r#"xagent_gateway_calls_total{org="o1",model="gpt-test",outcome="upstream_error"}"#),
            Some(1.0)
        );
        assert_eq!(
            s(r#"xagent_gateway_tokens_total{org="o1",direction="input"}"#),
            Some(14.0)
        );
        assert_eq!(
            s(r#"xagent_gateway_cost_micros_total{org="o1"}"#),
            Some(6.0)
        );
        assert_eq!(
            s(r#"xagent_quota_refusals_total{reason="org_requests"}"#),
            Some(1.0)
        );
        assert_eq!(
            s("xagent_backup_last_success_timestamp_seconds"),
            Some(1_800_000_000.0)
        );
        assert_eq!(s("xagent_backup_last_failure_timestamp_seconds"), Some(0.0));
        assert!(s("xagent_db_size_bytes").unwrap() > 0.0, "{text}");
        assert!(text.contains("# TYPE xagent_db_write_batch_size histogram"));
        assert!(text.contains("# TYPE xagent_http_requests_total counter"));
    }

    #[tokio::test]
    async fn model_names_beyond_the_cap_are_other() {
        let (_dir, db) = db();
        let m = Metrics::new(&db);
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(m.model_label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(m.model_label("one-too-many"), OTHER_MODEL);
        assert_eq!(m.model_label("m0"), "m0", "names in use stay");
    }

    #[test]
    fn outcomes_are_a_closed_list() {
        assert_eq!(call_outcome(200), "ok");
        assert_eq!(call_outcome(499), "cancelled");
        assert_eq!(call_outcome(429), "rejected");
        assert_eq!(call_outcome(502), "upstream_error");
    }
}
