//! `/metrics`: scraped over HTTP and read with a parser of the Prometheus text format. API
//! calls, a model call against the mock provider and a quota refusal move exactly the
//! series they should; route labels are templates, never paths with ids; the token guards
//! the main listener and a separate listener serves the metrics without one.
use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::mock_llm::MockLlm;
use crate::common::{TestApp, tls};
use crate::org_fixture::{create_org, new_person, token_for};

const METRICS_TOKEN: &str = "metrics-scrape-token-0123456789";

/// One sample of the exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Prometheus text format (0.0.4), strictly: every sample belongs to a family with
/// `# HELP` and `# TYPE` lines, label values are quoted with `\\`, `\"` and `\n` escapes,
/// and values are numbers. Panics on anything else, so a malformed exposition fails.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let (start, c) = chars.next().unwrap();
                if c == '}' {
                    rest = &body[start + 1..];
                    break;
                }
                if c == ',' {
                    continue;
                }
                let eq = body[start..].find('=').unwrap() + start;
                let key = body[start..eq].to_string();
                while chars.peek().unwrap().0 <= eq {
                    chars.next();
                }
                assert_eq!(chars.next().unwrap().1, '"', "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => break,
                        other => value.push(other),
                    }
                }
                labels.insert(key, value);
            }
        }
        let value_text = rest.trim().split(' ').next().unwrap();
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let family = [
            name,
            name.strip_suffix("_bucket").unwrap_or(name),
            name.strip_suffix("_sum").unwrap_or(name),
            name.strip_suffix("_count").unwrap_or(name),
        ]
        .into_iter()
        .find(|f| typed.contains_key(*f))
        .unwrap_or_else(|| panic!("sample without a # TYPE: {line}"));
        assert!(helped.iter().any(|h| h == family), "no # HELP for {family}");
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// The scraped metrics: a sample by name and labels (0 when absent, as a counter that has
/// not moved yet).
struct Scrape(Vec<Sample>);

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

async fn scrape_at(url: &str, token: Option<&str>) -> (StatusCode, String, String) {
    tls();
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, res.text().await.unwrap())
}

async fn scrape(app: &TestApp) -> Scrape {
    let (status, ctype, text) = scrape_at(&app.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    Scrape(parse(&text))
}

/// Scrapes until `ok` holds (metering is written right after the answer).
async fn scrape_until(app: &TestApp, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let s = scrape(app).await;
        if ok(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the metrics never showed what was expected");
}

#[tokio::test]
async fn api_calls_a_model_call_and_a_quota_refusal_move_exactly_their_series() {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(|c| {
        c.metrics_token = Some(xagent::config::Secret::new(METRICS_TOKEN));
    })
    .await;
    let (_, owner) = new_person(&app, "owner@metrics.example", "Owner").await;
    let (org, slug) = create_org(&owner, "Metered Org", "metered-org").await;
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": "sk-metrics-test-0000", "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, token) = token_for(&app, &owner, &org, "metrics").await;
    let db = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    // 0.15 $ / 0.60 $ per million tokens: 11 in and 7 out cost 6 µ$ (rounded up).
    db.execute(
        "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'gpt-test', 150000, 600000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        [],
    )
    .unwrap();

    let before = scrape(&app).await;
    let show = [
        ("method", "GET"),
        ("route", "/api/v1/orgs/{org}"),
        ("status", "200"),
    ];
    for path in [
        format!("/api/v1/orgs/{org}"),
        format!("/api/v1/orgs/{slug}"),
        format!("/api/v1/orgs/{org}"),
    ] {
        assert_eq!(owner.get(&path).await.status, StatusCode::OK);
    }
    let missing = "0190f000-0000-7000-8000-000000000000";
    let r = owner.get(&format!("/api/v1/orgs/{missing}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = owner.get("/no/such/page/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let call = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]});
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(call.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let org_l = ("org", org.as_str());
    let after = scrape_until(&app, |s| {
        s.get("xagent_gateway_cost_micros_total", &[org_l]) > 0.0
    })
    .await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    // Exactly the three calls, under the template whether they named the id or the slug.
    assert_eq!(moved("xagent_http_requests_total", &show), 3.0);
    assert_eq!(
        moved(
            "xagent_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/api/v1/orgs/{org}")]
        ),
        4.0,
        "three found and one not found"
    );
    assert_eq!(
        moved(
            "xagent_http_request_duration_seconds_bucket",
            &[
                ("method", "GET"),
                ("route", "/api/v1/orgs/{org}"),
                ("le", "+Inf")
            ]
        ),
        4.0
    );
    assert_eq!(
        moved(
            "xagent_http_requests_total",
            &[("route", "/api/v1/orgs/{org}"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "xagent_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "xagent_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/chat/completions"),
                ("status", "200")
            ]
        ),
        1.0
    );
    // The model call: what the mock reported, at the model's price.
    let ok = [org_l, ("model", "gpt-test"), ("outcome", "ok")];
    assert_eq!(moved("xagent_gateway_calls_total", &ok), 1.0);
    assert_eq!(
        moved(
            "xagent_gateway_tokens_total",
            &[org_l, ("direction", "input")]
        ),
        11.0
    );
    assert_eq!(
        moved(
            "xagent_gateway_tokens_total",
            &[org_l, ("direction", "output")]
        ),
        7.0
    );
    assert_eq!(moved("xagent_gateway_cost_micros_total", &[org_l]), 6.0);
    // The writer committed the usage; the database has a size.
    assert!(moved("xagent_db_write_jobs_total", &[]) >= 1.0);
    assert!(after.get("xagent_db_write_commits_total", &[]) >= 1.0);
    assert!(after.get("xagent_db_write_batch_size_count", &[]) >= 1.0);
    assert_eq!(
        after.get("xagent_db_write_batch_size_count", &[]),
        after.get("xagent_db_write_batch_size_bucket", &[("le", "+Inf")])
    );
    assert!(after.get("xagent_db_size_bytes", &[]) > 0.0);
    assert!(after.0.iter().any(|s| s.name == "xagent_db_wal_size_bytes"));
    assert!(
        after
            .0
            .iter()
            .any(|s| s.name == "xagent_db_write_queue_depth")
    );
    assert_eq!(
        after.get("xagent_backup_last_success_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(
        after.get(
            "xagent_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // A model name nobody priced or allowed is `other`, never the client's word.
    let r = token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": "made-up-model-7f3a", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let other = [org_l, ("model", "other"), ("outcome", "ok")];
    let with_other =
        scrape_until(&app, |s| s.get("xagent_gateway_calls_total", &other) == 1.0).await;
    assert!(
        with_other
            .0
            .iter()
            .all(|s| s.labels.get("model").map(String::as_str) != Some("made-up-model-7f3a"))
    );

    // A quota refusal: the organization's monthly requests are used up.
    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/quota"),
            Some(json!({"monthly_requests": 2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = token
        .send(Method::POST, "/v1/chat/completions", Some(call))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let last = scrape(&app).await;
    assert_eq!(
        last.get("xagent_quota_refusals_total", &[("reason", "org_requests")]),
        1.0
    );
    assert_eq!(
        last.get(
            "xagent_gateway_calls_total",
            &[org_l, ("model", "gpt-test"), ("outcome", "refused")]
        ),
        1.0
    );
    assert_eq!(
        last.get(
            "xagent_http_requests_total",
            &[("route", "/v1/chat/completions"), ("status", "429")]
        ),
        1.0
    );

    // Routes are templates: no id, slug or other path value is ever a label, and orgs are
    // named by id only.
    let uuid_like = |v: &str| {
        v.split(|c: char| !c.is_ascii_hexdigit() && c != '-')
            .any(|w| w.len() >= 32 && w.matches('-').count() == 4)
    };
    for s in &last.0 {
        if let Some(route) = s.labels.get("route") {
            assert!(route.starts_with('/') || route == "unmatched", "{s:?}");
            assert!(!uuid_like(route), "an id in a route label: {s:?}");
            for raw in [org.as_str(), slug.as_str(), missing, "/no/such/page/here"] {
                assert!(!route.contains(raw), "a path value in a route label: {s:?}");
            }
        }
        if let Some(o) = s.labels.get("org") {
            assert!(uuid_like(o) && o != &slug, "{s:?}");
        }
    }
}

#[tokio::test]
async fn the_token_guards_metrics_on_the_main_listener_and_nothing_leaks() {
    let app = TestApp::spawn_with(|c| {
        c.metrics_token = Some(xagent::config::Secret::new(METRICS_TOKEN));
    })
    .await;
    for token in [
        None,
        Some("wrong-token"),
        Some("metrics-scrape-token-012345678"),
    ] {
        let (status, _, body) = scrape_at(&app.url("/metrics"), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(!body.contains("xagent_"), "{body}");
        assert!(!body.contains(METRICS_TOKEN));
    }
    let (status, _, body) = scrape_at(&app.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains(METRICS_TOKEN), "the token is never exposed");
    // The refusals were counted like any request, under the route.
    let s = Scrape(parse(&body));
    assert_eq!(
        s.get(
            "xagent_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        3.0
    );
}

#[tokio::test]
async fn without_a_token_metrics_are_not_found_and_a_separate_listener_serves_them_openly() {
    let app = TestApp::spawn_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    for token in [None, Some(METRICS_TOKEN)] {
        let (status, _, body) = scrape_at(&app.url("/metrics"), token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("xagent_http"), "{body}");
    }
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    let separate = app.metrics_base.clone().expect("a metrics listener");
    assert_ne!(separate, app.base);
    let (status, ctype, body) = scrape_at(&format!("{separate}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let s = Scrape(parse(&body));
    // The main listener's requests are there, the 404s of /metrics among them.
    assert_eq!(
        s.get(
            "xagent_http_requests_total",
            &[("route", "/healthz"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            "xagent_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        2.0
    );
    assert_eq!(
        s.get("xagent_backup_last_success_timestamp_seconds", &[]),
        0.0
    );
    // A backup, as the schedule takes one, sets its time and counts.
    let before = chrono::Utc::now().timestamp() as f64;
    xagent::services::backups::back_up_now(&app.svc)
        .await
        .unwrap();
    let (_, _, body) = scrape_at(&format!("{separate}/metrics"), None).await;
    let s = Scrape(parse(&body));
    let at = s.get("xagent_backup_last_success_timestamp_seconds", &[]);
    assert!(at >= before - 1.0 && at <= before + 60.0, "{at}");
    assert_eq!(
        s.get("xagent_backups_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(
        s.get("xagent_backups_total", &[("outcome", "failure")]),
        0.0
    );
    // It serves nothing but the metrics.
    let (status, _, _) = scrape_at(&format!("{separate}/api/v1/me"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = scrape_at(&format!("{separate}/healthz"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_parser_reads_escaped_labels_and_refuses_untyped_samples() {
    let s = parse(
        "# HELP a_total An a.\n# TYPE a_total counter\na_total{x=\"q\\\"u\\\\o\\nte\",y=\"2\"} 3\n",
    );
    assert_eq!(s[0].labels["x"], "q\"u\\o\nte");
    assert_eq!(s[0].labels["y"], "2");
    assert_eq!(s[0].value, 3.0);
    let refused = std::panic::catch_unwind(|| parse("b 1\n"));
    assert!(refused.is_err());
}
