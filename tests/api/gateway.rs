//! The OpenAI-compatible gateway against a real local mock provider: pass-through,
//! streaming, metering (also of a stream the client abandons), errors that never show a
//! key, the model policy, and one organization's token never touching another's keys or
//! usage.
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::{Session, TestApp, TokenClient};
use crate::org_fixture::{create_org, invite_and_join, new_person, token_for};

const ORG_KEY: &str = "sk-gateway-org-0000-AAAA1111";

struct Bed {
    app: TestApp,
    /// The server's clock for billing periods (tests move it forward).
    clock: xagent::domain::Clock,
    mock: MockLlm,
    owner: Session,
    org: String,
    /// A plain member's token for the org.
    token: TokenClient,
    token_id: String,
    member_id: String,
    /// The member's browser session (makes and revokes their tokens).
    member: Session,
}

async fn bed() -> Bed {
    let mock = MockLlm::start().await;
    let clock = xagent::domain::Clock::default();
    let app = TestApp::spawn_with(|c| {
        c.clock = clock.clone();
        c.webhook_tick = Duration::from_millis(50);
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let (_, owner) = new_person(&app, "owner@gw.example", "Owner").await;
    let (member, member_s) = new_person(&app, "member@gw.example", "Member").await;
    let (org, _) = create_org(&owner, "Gateway Org", "gw-org").await;
    invite_and_join(&owner, &org, "member@gw.example", "member", &member_s).await;
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/llm/providers/openai"),
            json!({"api_key": ORG_KEY, "base_url": mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (token_id, token) = token_for(&app, &member_s, &org, "gw").await;
    // A price for the test model: 0.15 $ / 0.60 $ per million tokens.
    raw_db(&app)
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'gpt-test', 150000, 600000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    Bed {
        app,
        clock,
        mock,
        owner,
        org,
        token,
        token_id,
        member_id: member.id,
        member: member_s,
    }
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

#[derive(Debug)]
struct Event {
    user_id: String,
    token_id: Option<String>,
    model: String,
    key_source: String,
    status: i64,
    input: i64,
    output: i64,
    cost: i64,
}

/// The org's usage events, oldest first, waiting up to 5 s for `n` of them (metering of
/// failures and streams is written right after the answer).
async fn events(app: &TestApp, org: &str, n: usize) -> Vec<Event> {
    for _ in 0..100 {
        let db = raw_db(app);
        let mut stmt = db
            .prepare(
                "SELECT user_id, api_token_id, model, key_source, status_code, input_tokens,
                        output_tokens, cost_micros
                 FROM usage_events WHERE organization_id = ?1 ORDER BY created_at, rowid",
            )
            .unwrap();
        let rows: Vec<Event> = stmt
            .query_map([org], |r| {
                Ok(Event {
                    user_id: r.get(0)?,
                    token_id: r.get(1)?,
                    model: r.get(2)?,
                    key_source: r.get(3)?,
                    status: r.get(4)?,
                    input: r.get(5)?,
                    output: r.get(6)?,
                    cost: r.get(7)?,
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} usage events for {org}");
}

fn totals(app: &TestApp, org: &str) -> (i64, i64, i64, i64) {
    raw_db(app)
        .query_row(
            "SELECT COALESCE(SUM(requests),0), COALESCE(SUM(input_tokens),0),
                    COALESCE(SUM(output_tokens),0), COALESCE(SUM(cost_micros),0)
             FROM organization_usage WHERE organization_id = ?1",
            [org],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

/// A streaming chat completion through the gateway with the member's token.
async fn stream_call(b: &Bed, model: &str) -> reqwest::Response {
    let mut body = chat_body(model);
    body["stream"] = json!(true);
    b.token
        .client
        .post(format!("{}/v1/chat/completions", b.app.base))
        .bearer_auth(&b.token.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test]
async fn a_completion_passes_through_with_the_orgs_key_and_is_metered() {
    let b = bed().await;
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["choices"][0]["message"]["content"],
        "Hello from the mock"
    );
    assert_eq!(r.body["usage"]["completion_tokens"], 7);
    let seen = b.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization, format!("Bearer {ORG_KEY}"));
    assert_eq!(seen[0].body["messages"][0]["content"], "Say hello");
    let ev = events(&b.app, &b.org, 1).await;
    let e = &ev[0];
    assert_eq!(e.user_id, b.member_id);
    assert_eq!(e.token_id.as_deref(), Some(b.token_id.as_str()));
    assert_eq!(
        (e.model.as_str(), e.key_source.as_str()),
        ("gpt-test", "organization")
    );
    assert_eq!((e.status, e.input, e.output), (200, 11, 7));
    // 11 × 0.15 + 7 × 0.60 = 5.85 µ$, rounded up.
    assert_eq!(e.cost, 6);
    assert_eq!(totals(&b.app, &b.org), (1, 11, 7, 6));
    // Embeddings go the same way.
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/embeddings",
            Some(json!({"model": "gpt-test", "input": "hello"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got: Vec<f64> = serde_json::from_value(r.body["data"][0]["embedding"].clone()).unwrap();
    let want: Vec<f64> = crate::common::mock_llm::embed("hello")
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-6),
        "the vector passes through unchanged"
    );
    let ev = events(&b.app, &b.org, 2).await;
    // The mock counts one token per word.
    assert_eq!((ev[1].input, ev[1].output, ev[1].status), (1, 0, 200));
    // Without a usage block the call is still counted, from an estimate.
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("no-usage")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = events(&b.app, &b.org, 3).await;
    assert!(ev[2].input > 0, "{:?}", ev[2]);
}

#[tokio::test]
async fn a_stream_is_forwarded_as_it_arrives_and_metered_from_its_usage_block() {
    let b = bed().await;
    let res = stream_call(&b, "gpt-test").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = res.text().await.unwrap();
    for i in 0..5 {
        assert!(text.contains(&format!("tok{i} ")), "{text}");
    }
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The gateway asked for the usage block.
    let seen = b.mock.requests();
    assert_eq!(seen[0].body["stream_options"]["include_usage"], true);
    let ev = events(&b.app, &b.org, 1).await;
    assert_eq!((ev[0].status, ev[0].input, ev[0].output), (200, 11, 5));
}

#[tokio::test]
async fn a_stream_the_client_abandons_is_metered_for_what_was_delivered() {
    let b = bed().await;
    let res = stream_call(&b, "stream-slow").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let mut got = String::new();
    while !got.contains("tok3 ") {
        let chunk = stream.next().await.unwrap().unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    let ev = events(&b.app, &b.org, 1).await;
    assert_eq!(ev[0].status, 499, "{:?}", ev[0]);
    // "tokN " is 5 characters: about 2 tokens each; 40 chunks would be about 80.
    assert!(ev[0].output >= 2 && ev[0].output < 40, "{:?}", ev[0]);
    assert!(ev[0].input > 0);
}

#[tokio::test]
async fn errors_are_openai_shaped_and_never_show_a_key() {
    let b = bed().await;
    let chat = |model: &str| {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(chat_body(model)))
    };
    // The upstream refuses the key and echoes it: mapped to 502, the key redacted.
    let r = chat("fail-401").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "upstream_auth_failed");
    assert!(!r.text.contains(ORG_KEY), "{}", r.text);
    assert!(r.text.contains("[redacted]"), "{}", r.text);
    let r = chat("fail-500").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["error"]["type"], "upstream_error");
    // A redirect is not followed (the key would go along): the provider's answer is
    // an error, and it was asked once.
    let asked = b.mock.requests().len();
    let r = chat("redirect").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("answered 307"), "{}", r.text);
    assert_eq!(b.mock.requests().len(), asked + 1);
    // Failed calls are metered with their status and no tokens.
    let ev = events(&b.app, &b.org, 3).await;
    let mut statuses: Vec<i64> = ev.iter().map(|e| e.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![307, 401, 500]);
    assert!(
        ev.iter()
            .all(|e| e.input == 0 && e.output == 0 && e.cost == 0)
    );
    // Bad requests.
    let r = b
        .token
        .client
        .post(format!("{}/v1/chat/completions", b.app.base))
        .bearer_auth(&b.token.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": "gpt-test"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    // No token, a wrong token, a browser session: 401.
    let anon = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", b.app.base))
        .json(&chat_body("gpt-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let wrong = TokenClient::new(&b.app.base, "xa_wrong");
    let r = wrong
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["type"], "authentication_error");
    let r = b
        .owner
        .post("/v1/chat/completions", chat_body("gpt-test"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The provider cannot be reached.
    set_provider(&b, "openai", json!({"base_url": "http://127.0.0.1:9/v1"})).await;
    let r = chat("gpt-test").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["error"]["code"], "upstream_unavailable");
    assert!(!r.text.contains(ORG_KEY));
    // No key anywhere: 424.
    let r = b
        .owner
        .delete(&format!("/api/v1/orgs/{}/llm/providers/openai", b.org))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = chat("gpt-test").await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "no_provider_key");
}

#[tokio::test]
async fn the_model_policy_decides_what_may_be_called_and_listed() {
    let b = bed().await;
    set_policy(
        &b,
        json!({"allowed_models": ["gpt-test", "gpt-4o-mini"], "default_model": "gpt-test"}),
    )
    .await;
    let r = b.token.get("/v1/models").await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["gpt-test", "gpt-4o-mini"]);
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-4o")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"]["code"], "model_not_allowed");
    assert!(
        b.mock.requests().is_empty(),
        "a refused call reached the provider"
    );
    // Without a model the default is used.
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(b.mock.requests()[0].body["model"], "gpt-test");
}

#[tokio::test]
async fn a_token_spends_only_its_own_organizations_keys_and_usage() {
    let b = bed().await;
    let (_, other_owner) = new_person(&b.app, "other@gw.example", "Other").await;
    let (other, _) = create_org(&other_owner, "Other Org", "other-gw").await;
    let (_, other_token) = token_for(&b.app, &other_owner, &other, "other").await;
    // Org B has no key: A's key is never used for B's token.
    let r = other_token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert!(b.mock.requests().is_empty());
    // With its own key B's calls are metered to B only.
    let r = other_owner
        .put(
            &format!("/api/v1/orgs/{other}/llm/providers/openai"),
            json!({"api_key": "sk-gateway-other-0000-BBBB2222", "base_url": b.mock.base}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = other_token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        b.mock.requests()[0].authorization,
        "Bearer sk-gateway-other-0000-BBBB2222"
    );
    assert_eq!(events(&b.app, &other, 1).await.len(), 1);
    assert_eq!(totals(&b.app, &b.org), (0, 0, 0, 0));
    // A member removed from A loses the gateway at once.
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = b
        .owner
        .delete(&format!("/api/v1/orgs/{}/members/{}", b.org, b.member_id))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("gpt-test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

/// Changes the organization's LLM policy (owner), which must succeed.
async fn set_policy(b: &Bed, body: Value) {
    let r = b
        .owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/llm/policy", b.org),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Creates or changes one of the organization's providers (owner), which must succeed.
async fn set_provider(b: &Bed, name: &str, body: Value) {
    let r = b
        .owner
        .put(
            &format!("/api/v1/orgs/{}/llm/providers/{name}", b.org),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn set_quota(b: &Bed, body: Value) {
    let r = b
        .owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/quota", b.org),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A small chat call: the reservation is about 7 µ$ (prompt estimate + max_tokens 7),
/// the metered cost 6 µ$ (11 prompt + 7 completion tokens).
fn small_call() -> Value {
    json!({"model": "gpt-test", "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test]
async fn a_hundred_concurrent_calls_at_the_edge_of_the_quota_overspend_by_at_most_one_reservation()
{
    let b = bed().await;
    set_quota(&b, json!({"monthly_credits_micros": 60})).await;
    let calls = (0..100).map(|_| {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    });
    let replies = futures_util::future::join_all(calls).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.body["error"]["type"], "insufficient_quota");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("monthly AI credits"),
            "{}",
            r.text
        );
    }
    let ev = events(&b.app, &b.org, ok).await;
    let (requests, _, _, cost) = totals(&b.app, &b.org);
    assert_eq!(requests as usize, ok);
    assert_eq!(ev.len(), ok);
    assert!(ok >= 9, "only {ok} calls fitted in 60 µ$");
    assert!(cost <= 60 + 7, "overspent: {cost} µ$ for a limit of 60");
    // Only admitted calls reached the provider.
    assert_eq!(b.mock.requests().len(), ok);
}

#[tokio::test]
async fn each_limit_refuses_by_name_and_rate_limits_say_when_to_retry() {
    let b = bed().await;
    let call = || {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    };
    // Monthly requests.
    set_quota(&b, json!({"monthly_requests": 3})).await;
    for _ in 0..3 {
        assert_eq!(call().await.status, StatusCode::OK);
    }
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text.contains("monthly requests"), "{}", r.text);
    // The member's own cap (3 calls × 6 µ$ = 18 µ$ are already used).
    set_quota(
        &b,
        json!({"monthly_requests": null, "member_monthly_credits_micros": 20}),
    )
    .await;
    assert_eq!(call().await.status, StatusCode::OK);
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.text.contains("your monthly AI credits"), "{}", r.text);
    // Requests per minute: 2, then 429 with Retry-After.
    set_quota(
        &b,
        json!({"member_monthly_credits_micros": null, "rate_limit_rpm": 2}),
    )
    .await;
    assert_eq!(call().await.status, StatusCode::OK);
    assert_eq!(call().await.status, StatusCode::OK);
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
    assert!(r.text.contains("2 requests per minute"), "{}", r.text);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Tokens per minute: a call larger than the whole budget is refused outright.
    set_quota(&b, json!({"rate_limit_rpm": null, "rate_limit_tpm": 10})).await;
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text.contains("tokens per minute"), "{}", r.text);
    // The usage report lists every limit that applies, with use where it is counted.
    set_quota(
        &b,
        json!({"rate_limit_tpm": null, "monthly_credits_micros": 1000, "monthly_requests": 100,
               "member_monthly_credits_micros": 500, "rate_limit_rpm": 60}),
    )
    .await;
    // Usage is committed after the answers; wait for the six successful calls' events
    // (refused calls are metered too).
    let _ = events(&b.app, &b.org, 6).await;
    let u = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    let names: Vec<&str> = u.body["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["org_credits", "org_requests", "member_credits", "rate_rpm"]
    );
    assert_eq!(u.body["totals"]["requests"], 6);
    assert_eq!(u.body["quota"]["used"], 36);
    assert_eq!(u.body["quota"]["percent"], 3.6);
    assert_eq!(u.body["by_model"][0]["model"], "gpt-test");
    assert_eq!(u.body["by_model"][0]["totals"]["requests"], 6);
    assert_eq!(u.body["by_user"][0]["email"], "member@gw.example");
    assert_eq!(u.body["by_user"][0]["totals"]["cost_micros"], 36);
    assert_eq!(u.body["by_day"].as_array().unwrap().len(), 1);
    let csv = b
        .owner
        .get(&format!("/api/v1/orgs/{}/usage.csv", b.org))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let period = u.body["period"].as_str().unwrap();
    assert!(
        csv.text.contains(&format!("{period},model,gpt-test,6,")),
        "{}",
        csv.text
    );
    assert!(
        csv.text.contains(&format!(
            "{period},member,member@gw.example,6,66,42,0.000036"
        )),
        "{}",
        csv.text
    );
    let bad = b
        .owner
        .get(&format!("/api/v1/orgs/{}/usage?period=2026-13", b.org))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let past = b
        .owner
        .get(&format!("/api/v1/orgs/{}/usage?period=2001-01", b.org))
        .await;
    assert_eq!(past.body["totals"]["requests"], 0);
}

#[tokio::test]
async fn usage_and_quota_of_another_org_are_not_found() {
    let b = bed().await;
    set_quota(&b, json!({"monthly_requests": 50})).await;
    let (_, other_owner) = new_person(&b.app, "other@gw.example", "Other").await;
    let (other, _) = create_org(&other_owner, "Other Org", "other-gw").await;
    let (_, other_token) = token_for(&b.app, &other_owner, &other, "other").await;
    let missing = "01890000-0000-7000-8000-000000000000";
    let before = b
        .owner
        .get(&format!("/api/v1/orgs/{}/quota", b.org))
        .await
        .text;
    for org in [b.org.as_str(), "gw-org"] {
        for (m, path, body) in [
            (Method::GET, format!("/api/v1/orgs/{org}/usage"), None),
            (Method::GET, format!("/api/v1/orgs/{org}/usage.csv"), None),
            (Method::GET, format!("/api/v1/orgs/{org}/quota"), None),
            (
                Method::PATCH,
                format!("/api/v1/orgs/{org}/quota"),
                Some(json!({"monthly_requests": 1})),
            ),
        ] {
            let got = other_owner.send(m.clone(), &path, body.clone()).await;
            let baseline = other_owner
                .send(m.clone(), &path.replace(org, missing), body.clone())
                .await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{m} {path}");
            assert_eq!(got.body, baseline.body);
            let got = other_token.send(m.clone(), &path, body).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "token {m} {path}");
        }
    }
    assert_eq!(
        b.owner
            .get(&format!("/api/v1/orgs/{}/quota", b.org))
            .await
            .text,
        before
    );
    // Notifications: another org's list and ids are not found, through either path.
    set_quota(
        &b,
        json!({"monthly_credits_micros": 6, "alert_thresholds": [50]}),
    )
    .await;
    let r = b
        .token
        .send(Method::POST, "/v1/chat/completions", Some(small_call()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let _ = events(&b.app, &b.org, 1).await;
    let mut notes = Value::Null;
    for _ in 0..50 {
        notes = b
            .owner
            .get(&format!("/api/v1/orgs/{}/notifications", b.org))
            .await
            .body;
        if notes["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let note_id = notes["items"][0]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/api/v1/orgs/{}/notifications", b.org),
        format!("/api/v1/orgs/{}/notifications/{note_id}/read", b.org),
        format!("/api/v1/orgs/{other}/notifications/{note_id}/read"),
    ] {
        let m = if path.ends_with("/read") {
            Method::POST
        } else {
            Method::GET
        };
        let got = other_owner.send(m.clone(), &path, None).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{m} {path}");
        assert!(!got.text.contains(&note_id));
    }
    let still = b
        .owner
        .get(&format!("/api/v1/orgs/{}/notifications", b.org))
        .await;
    assert!(still.body["items"][0]["read_at"].is_null());
    // A member may read the usage but not change the quota.
    let member = crate::common::TokenClient::new(&b.app.base, &b.token.token);
    let r = member
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/quota", b.org),
            Some(json!({"monthly_requests": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn alerts_fire_once_per_threshold_and_period_even_under_concurrency() {
    let b = bed().await;
    set_quota(
        &b,
        json!({"monthly_credits_micros": 60, "alert_thresholds": [50, 80, 100]}),
    )
    .await;
    let calls = (0..30).map(|_| {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    });
    let ok = futures_util::future::join_all(calls)
        .await
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let _ = events(&b.app, &b.org, ok).await;
    // Up and down again in the same period: what was sent stays sent.
    set_quota(&b, json!({"monthly_credits_micros": 100000})).await;
    assert_eq!(
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
            .await
            .status,
        StatusCode::OK
    );
    set_quota(&b, json!({"monthly_credits_micros": 60})).await;
    let _ = b
        .token
        .send(Method::POST, "/v1/chat/completions", Some(small_call()))
        .await;
    let _ = events(&b.app, &b.org, ok + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = b
        .owner
        .get(&format!(
            "/api/v1/orgs/{}/audit?action=quota.alert&limit=100",
            b.org
        ))
        .await;
    let mut thresholds: Vec<i64> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "quota.alert")
        .map(|r| r["details"]["threshold"].as_i64().unwrap())
        .collect();
    thresholds.sort();
    assert_eq!(thresholds, vec![50, 80, 100], "{}", audit.text);
    let usage = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    assert_eq!(usage.body["quota"]["alerts_sent"], json!([50, 80, 100]));
    // Owners and admins are told; a member is not.
    let mine = b
        .owner
        .get(&format!("/api/v1/orgs/{}/notifications", b.org))
        .await;
    let items = mine.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", mine.text);
    assert!(
        items
            .iter()
            .all(|n| n["kind"] == "quota.alert" && n["read_at"].is_null())
    );
    assert!(items[0]["title"].as_str().unwrap().contains('%'));
    let member = b
        .token
        .get(&format!("/api/v1/orgs/{}/notifications", b.org))
        .await;
    assert_eq!(member.body["items"], json!([]));
    // Marking read: one's own only.
    let id = items[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/orgs/{}/notifications/{id}/read", b.org);
    let r = b.token.send(Method::POST, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b.owner.send(Method::POST, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let again = b
        .owner
        .get(&format!("/api/v1/orgs/{}/notifications", b.org))
        .await;
    assert!(again.body["items"][0]["read_at"].is_string());
}

#[tokio::test]
async fn a_new_period_starts_from_zero_and_its_alerts_fire_again() {
    let b = bed().await;
    set_quota(
        &b,
        json!({"monthly_credits_micros": 12, "alert_thresholds": [100]}),
    )
    .await;
    let call = || {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    };
    assert_eq!(call().await.status, StatusCode::OK);
    let _ = events(&b.app, &b.org, 1).await;
    assert_eq!(call().await.status, StatusCode::OK);
    let _ = events(&b.app, &b.org, 2).await;
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let old = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    let old_period = old.body["period"].as_str().unwrap().to_string();
    // Across the boundary (the anchor day is the 1st): a fresh quota.
    b.clock.advance(Duration::from_secs(40 * 24 * 3600));
    // Sessions end with the month; the owner signs in again.
    let owner = b.app.login("owner@gw.example").await;
    assert_eq!(call().await.status, StatusCode::OK);
    let _ = events(&b.app, &b.org, 3).await;
    let now = owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    assert_ne!(now.body["period"], old_period.as_str());
    assert_eq!(now.body["totals"]["requests"], 1, "{}", now.text);
    assert_eq!(now.body["quota"]["alerts_sent"], json!([]));
    let before = owner
        .get(&format!("/api/v1/orgs/{}/usage?period={old_period}", b.org))
        .await;
    assert_eq!(before.body["totals"]["requests"], 2);
    assert_eq!(before.body["quota"]["alerts_sent"], json!([100]));
    // The new period reaches its limit and alerts once more, for itself.
    assert_eq!(call().await.status, StatusCode::OK);
    let _ = events(&b.app, &b.org, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = owner
        .get(&format!("/api/v1/orgs/{}/audit?limit=200", b.org))
        .await;
    let mut periods: Vec<String> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "quota.alert")
        .map(|r| r["details"]["period"].as_str().unwrap().to_string())
        .collect();
    periods.sort();
    assert_eq!(periods.len(), 2, "{periods:?}");
    assert_eq!(periods[0], old_period);
    assert_ne!(periods[1], old_period);
}

/// A webhook receiver: answers 500 to the first delivery and 200 after, keeping what came.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(reqwest::header::HeaderMap, String)>>>,
) {
    use axum::http::HeaderMap;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let shared = shared.clone();
            async move {
                let mut all = shared.lock().unwrap();
                let mut h = reqwest::header::HeaderMap::new();
                for (k, v) in &headers {
                    if let (Ok(k), Ok(v)) = (
                        reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
                        reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
                    ) {
                        h.insert(k, v);
                    }
                }
                all.push((h, body));
                if all.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn an_alert_webhook_is_signed_retried_until_delivered_and_its_status_shown() {
    use hmac::Mac;
    let b = bed().await;
    let (url, got) = receiver().await;
    const SECRET: &str = "whsec-test-0000-0000-SSSS";
    set_quota(
        &b,
        json!({"monthly_credits_micros": 12, "alert_thresholds": [50],
               "webhook_url": url, "webhook_secret": SECRET}),
    )
    .await;
    let q = b.owner.get(&format!("/api/v1/orgs/{}/quota", b.org)).await;
    assert_eq!(q.body["webhook_secret_set"], true);
    assert!(!q.text.contains(SECRET));
    assert_eq!(
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
            .await
            .status,
        StatusCode::OK
    );
    let path = format!("/api/v1/orgs/{}/quota/webhook-deliveries", b.org);
    let mut last = Value::Null;
    for _ in 0..100 {
        last = b.owner.get(&path).await.body;
        if last["items"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = &last["items"][0];
    assert_eq!(d["status"], "delivered", "{last}");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status_code"], 200);
    assert_eq!(d["event"], "quota.alert");
    assert!(!last.to_string().contains(SECRET));
    let calls = got.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one failure, one retry");
    for (headers, body) in &calls {
        let ts = headers["x-xagent-timestamp"].to_str().unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-xagent-signature"].to_str().unwrap(), want);
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["threshold"], 50);
        assert_eq!(payload["organization"]["id"], b.org.as_str());
        assert!(!body.contains(SECRET));
    }
    // Another organization sees none of it.
    let (_, other_owner) = new_person(&b.app, "hook-other@gw.example", "Other").await;
    assert_eq!(other_owner.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_closed_period_becomes_one_invoice_and_only_its_org_sees_it() {
    let b = bed().await;
    for _ in 0..3 {
        let r = b
            .token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let _ = events(&b.app, &b.org, 3).await;
    // The period is still open: nothing to invoice.
    let now = b.clock.now();
    assert_eq!(
        xagent::services::invoices::close_periods(&b.app.svc, now)
            .await
            .unwrap(),
        0
    );
    b.clock.advance(Duration::from_secs(40 * 24 * 3600));
    // Sessions end with the month; the owner signs in again.
    let owner = b.app.login("owner@gw.example").await;
    let later = b.clock.now();
    let first = xagent::services::invoices::close_periods(&b.app.svc, later)
        .await
        .unwrap();
    let again = xagent::services::invoices::close_periods(&b.app.svc, later)
        .await
        .unwrap();
    assert_eq!((first, again), (1, 0), "closing must be idempotent");
    let list = owner.get(&format!("/api/v1/orgs/{}/invoices", b.org)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let inv = &list.body["items"][0];
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // 3 calls × 6 µ$ on the free plan (no plan fee).
    assert_eq!(inv["total_micros"], 18);
    assert_eq!(inv["line_items"][0]["model"], "gpt-test");
    assert_eq!(inv["line_items"][0]["requests"], 3);
    let id = inv["id"].as_str().unwrap();
    let one = owner
        .get(&format!("/api/v1/orgs/{}/invoices/{id}", b.org))
        .await;
    assert_eq!(one.body["period"], inv["period"]);
    let csv = owner
        .get(&format!("/api/v1/orgs/{}/invoices/{id}.csv", b.org))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.text.contains("gpt-test,3,33,21,0.000018"),
        "{}",
        csv.text
    );
    assert!(csv.text.contains(",total,,,,,0.000018"), "{}", csv.text);
    // A member without billing.view, and another organization, see nothing.
    let r = b
        .token
        .get(&format!("/api/v1/orgs/{}/invoices", b.org))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, other_owner) = new_person(&b.app, "inv-other@gw.example", "Other").await;
    let (other, _) = create_org(&other_owner, "Other Org", "inv-other-team").await;
    for path in [
        format!("/api/v1/orgs/{}/invoices", b.org),
        format!("/api/v1/orgs/{}/invoices/{id}", b.org),
        format!("/api/v1/orgs/{}/invoices/{id}.csv", b.org),
        format!("/api/v1/orgs/{other}/invoices/{id}"),
    ] {
        let r = other_owner.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text.contains("gpt-test"));
    }
}

#[tokio::test]
async fn a_stream_the_provider_breaks_off_ends_for_the_client_and_is_metered_as_502() {
    let b = bed().await;
    let res = stream_call(&b, "stream-break").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let mut got = String::new();
    let mut broke = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(
        broke,
        "the client's stream must end in an error, not look complete: {got}"
    );
    assert!(got.contains("tok1 ") && !got.contains("[DONE]"), "{got}");
    let ev = events(&b.app, &b.org, 1).await;
    assert_eq!(ev[0].status, 502, "{:?}", ev[0]);
    assert!(ev[0].output > 0, "{:?}", ev[0]);
}

/// The gateway keeps each member's provider, key and limits between calls; every change
/// of them must reach the very next call.
#[tokio::test]
async fn a_changed_key_policy_quota_or_role_applies_to_the_very_next_call() {
    let b = bed().await;
    let call = || {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    };
    let last_auth = || b.mock.requests().last().unwrap().authorization.clone();
    assert_eq!(call().await.status, StatusCode::OK);
    assert_eq!(last_auth(), format!("Bearer {ORG_KEY}"));

    // A new organization key.
    let new_key = "sk-gateway-org-0000-NEW22222";
    set_provider(&b, "openai", json!({"api_key": new_key})).await;
    assert_eq!(call().await.status, StatusCode::OK);
    assert_eq!(last_auth(), format!("Bearer {new_key}"));

    // The policy no longer allows the model.
    set_policy(&b, json!({"allowed_models": ["gpt-other"]})).await;
    let r = call().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "model_not_allowed");
    set_policy(&b, json!({"allowed_models": []})).await;
    assert_eq!(call().await.status, StatusCode::OK);

    // The provider is switched off.
    set_provider(&b, "openai", json!({"enabled": false})).await;
    let r = call().await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    set_provider(&b, "openai", json!({"enabled": true})).await;
    assert_eq!(call().await.status, StatusCode::OK);

    // A request limit already used up.
    set_quota(&b, json!({"monthly_requests": 1})).await;
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    set_quota(&b, json!({"monthly_requests": null})).await;
    assert_eq!(call().await.status, StatusCode::OK);

    // The member becomes a viewer (no llm.use): refused at once.
    let r = b
        .owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/members/{}", b.org, b.member_id),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = b
        .owner
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/members/{}", b.org, b.member_id),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(call().await.status, StatusCode::OK);

    // A token that expires: good until its time, refused from then on (checked on every
    // call, also for a caller the gateway remembers).
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = b
        .member
        .post(
            "/api/v1/me/tokens",
            json!({"name": "short", "organization_id": b.org, "expires_at": expires}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let short = TokenClient::new(&b.app.base, r.body["token"].as_str().unwrap());
    let short_call = || short.send(Method::POST, "/v1/chat/completions", Some(small_call()));
    assert_eq!(short_call().await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(short_call().await.status, StatusCode::UNAUTHORIZED);

    // A revoked token, at once.
    let r = b
        .member
        .delete(&format!("/api/v1/me/tokens/{}", b.token_id))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(call().await.status, StatusCode::UNAUTHORIZED);
}

/// Removing a member ends their token's access with the very next call.
#[tokio::test]
async fn a_removed_members_token_stops_at_once() {
    let b = bed().await;
    let call = || {
        b.token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
    };
    assert_eq!(call().await.status, StatusCode::OK);
    assert_eq!(call().await.status, StatusCode::OK);
    let r = b
        .owner
        .delete(&format!("/api/v1/orgs/{}/members/{}", b.org, b.member_id))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call().await;
    assert!(
        r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::NOT_FOUND,
        "{} {}",
        r.status,
        r.text
    );
    assert_eq!(
        b.mock.requests().len(),
        2,
        "the removed member reached the provider"
    );
    // Their usage stays in the organization's figures, no longer named.
    let _ = events(&b.app, &b.org, 2).await;
    let u = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    assert_eq!(u.body["by_user"][0]["user_id"], b.member_id.as_str());
    assert_eq!(u.body["by_user"][0]["email"], "");
    assert_eq!(u.body["by_user"][0]["name"], "");
    assert_eq!(u.body["by_user"][0]["totals"]["requests"], 2);
}

/// Without an allowed-models list, `/v1/models` lists what the member's providers offer.
#[tokio::test]
async fn models_are_asked_from_the_providers_when_the_policy_lists_none() {
    let b = bed().await;
    let ids = |r: &crate::common::Reply| -> Vec<(String, String)> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["owned_by"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |id: &str, by: &str| (id.to_string(), by.to_string());
    let r = b.token.get("/v1/models").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        ids(&r),
        vec![pair("gpt-4o", "openai"), pair("gpt-4o-mini", "openai")]
    );
    let asked = b.mock.requests();
    let last = asked.last().unwrap();
    assert_eq!(
        (last.path.as_str(), last.authorization.as_str()),
        ("/models", format!("Bearer {ORG_KEY}").as_str())
    );
    // A second provider is listed with its prefix (the name that routes to it), one
    // that cannot be reached is left out, and the default model comes first.
    for (name, url) in [
        ("local", b.mock.base.clone()),
        ("down", "http://127.0.0.1:9/v1".to_string()),
    ] {
        set_provider(
            &b,
            name,
            json!({"api_key": "sk-local-0000-LLLL", "base_url": url}),
        )
        .await;
    }
    set_policy(&b, json!({"default_model": "gpt-test"})).await;
    let r = b.token.get("/v1/models").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        ids(&r),
        vec![
            pair("gpt-test", "gw-org"),
            pair("local/gpt-4o", "local"),
            pair("local/gpt-4o-mini", "local"),
            pair("gpt-4o", "openai"),
            pair("gpt-4o-mini", "openai"),
        ]
    );
    // A listed prefixed name is callable as listed.
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(chat_body("local/gpt-4o")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let last = b.mock.requests().last().unwrap().clone();
    assert_eq!(last.body["model"], "gpt-4o");
    assert_eq!(last.authorization, "Bearer sk-local-0000-LLLL");
    // A disabled provider is not listed.
    set_provider(&b, "local", json!({"enabled": false})).await;
    let r = b.token.get("/v1/models").await;
    assert!(
        ids(&r).iter().all(|(id, _)| !id.starts_with("local/")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn gateway_answers_carry_the_same_security_headers_and_request_id_as_every_other_response() {
    let b = bed().await;
    let t = &b.token;
    let bearer = |method: Method, path: &str| {
        t.client
            .request(method, format!("{}{path}", b.app.base))
            .bearer_auth(&t.token)
    };
    let embed = json!({"model": "text-embedding-3-small", "input": "hello"});
    let mut stream_body = chat_body("gpt-test");
    stream_body["stream"] = json!(true);
    let requests = [
        ("GET /v1/models", bearer(Method::GET, "/v1/models")),
        (
            "POST /v1/chat/completions",
            bearer(Method::POST, "/v1/chat/completions").json(&small_call()),
        ),
        (
            "POST /v1/chat/completions (stream)",
            bearer(Method::POST, "/v1/chat/completions").json(&stream_body),
        ),
        (
            "POST /v1/embeddings",
            bearer(Method::POST, "/v1/embeddings").json(&embed),
        ),
        (
            "/v1 without a token",
            t.client.get(format!("{}/v1/models", b.app.base)),
        ),
        ("GET /api/v1/me", bearer(Method::GET, "/api/v1/me")),
        ("GET /login", t.client.get(format!("{}/login", b.app.base))),
    ];
    let mut ids = std::collections::HashSet::new();
    for (what, req) in requests {
        let res = req.send().await.unwrap();
        let h = res.headers().clone();
        let _ = res.bytes().await.unwrap();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{what}: {name}"
            );
        }
        let id = h
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no x-request-id"));
        assert!(
            ids.insert(id.to_str().unwrap().to_string()),
            "{what}: request id repeated"
        );
    }
    // A request id the client sent comes back unchanged.
    let res = bearer(Method::GET, "/v1/models")
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn gateway_answers_and_the_invoice_csv_end_cleanly_in_every_encoding() {
    let b = bed().await;
    let t = &b.token;
    let base = &b.app.base;
    let post = |body: Value| {
        move || {
            t.client
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(&t.token)
                .json(&body)
        }
    };
    let answer =
        crate::compressed_bodies::same_for_every_encoding(post(small_call()), "chat completion")
            .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the mock"
    );
    crate::compressed_bodies::same_for_every_encoding(
        || {
            t.client
                .get(format!("{}/v1/models", b.app.base))
                .bearer_auth(&t.token)
        },
        "model list",
    )
    .await;
    // An event stream is never compressed (each event must reach the client as it is
    // sent), and it ends with its last event whatever the client accepts.
    let mut stream_body = chat_body("gpt-test");
    stream_body["stream"] = json!(true);
    for body in
        crate::compressed_bodies::uncompressed_for_every_encoding(post(stream_body), "stream").await
    {
        let text = String::from_utf8(body).unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
    b.clock.advance(Duration::from_secs(40 * 24 * 3600));
    // Sessions end with the month; the owner signs in again.
    let owner = b.app.login("owner@gw.example").await;
    let closed = xagent::services::invoices::close_periods(&b.app.svc, b.clock.now())
        .await
        .unwrap();
    assert_eq!(closed, 1);
    let list = owner.get(&format!("/api/v1/orgs/{}/invoices", b.org)).await;
    let id = list.body["items"][0]["id"].as_str().unwrap();
    let csv = crate::compressed_bodies::same_for_every_encoding(
        || {
            owner
                .client
                .get(owner.url(&format!("/api/v1/orgs/{}/invoices/{id}.csv", b.org)))
        },
        "invoice csv",
    )
    .await;
    assert!(String::from_utf8(csv).unwrap().contains(",total,"));
}

#[tokio::test]
async fn the_org_home_and_the_limits_api_show_the_credit_limit_the_gateway_enforces() {
    let b = bed().await;
    // The org's own quota replaces the plan's figure; 2 calls of 6 µ$ are 120 % of it.
    set_quota(&b, json!({"monthly_credits_micros": 10})).await;
    for _ in 0..2 {
        let r = b
            .token
            .send(Method::POST, "/v1/chat/completions", Some(small_call()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let _ = events(&b.app, &b.org, 2).await;
    let usage = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    assert_eq!(usage.body["quota"]["limit"], 10);
    assert_eq!(usage.body["quota"]["used"], 12);
    let limits = b.owner.get(&format!("/api/v1/orgs/{}/limits", b.org)).await;
    assert_eq!(limits.status, StatusCode::OK, "{}", limits.text);
    assert_eq!(
        limits.body["ai_credits"],
        json!({"used": 12, "max": 10}),
        "{}",
        limits.text
    );
    let summary = b
        .owner
        .get(&format!("/api/v1/orgs/{}/summary", b.org))
        .await;
    assert_eq!(summary.body["usage"]["period"], usage.body["period"]);
    assert_eq!(summary.body["usage"]["cost_micros"], 12);
    let home = b.owner.get(&format!("/o/{}", b.org)).await;
    assert_eq!(home.status, StatusCode::OK);
    let meter = home
        .text
        .split("id=\"usage-credits\"")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .unwrap_or_else(|| panic!("no credit meter: {}", home.text));
    assert!(meter.contains("aria-valuenow=\"12\""), "{meter}");
    assert!(meter.contains("aria-valuemax=\"10\""), "{meter}");
    assert!(
        home.text
            .contains("meter meter-full\" id=\"usage-credits\"")
    );
    // The next billing period (the server's clock) starts from nothing, everywhere.
    b.clock.advance(Duration::from_secs(40 * 24 * 3600));
    // Sessions end with the month; the owner signs in again.
    let owner = b.app.login("owner@gw.example").await;
    let usage = owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    let limits = owner.get(&format!("/api/v1/orgs/{}/limits", b.org)).await;
    let summary = owner.get(&format!("/api/v1/orgs/{}/summary", b.org)).await;
    assert_eq!(usage.body["quota"]["used"], 0);
    assert_eq!(limits.body["ai_credits"], json!({"used": 0, "max": 10}));
    assert_eq!(summary.body["usage"]["period"], usage.body["period"]);
    assert_eq!(summary.body["usage"]["cost_micros"], 0);
}

#[tokio::test]
async fn a_call_is_priced_by_the_model_the_provider_served_whatever_prefix_routed_it() {
    let b = bed().await;
    let call = small_call_of;
    // `gpt-test` is priced (6 µ$ for this call); routed by prefix, by alias, streamed.
    for model in [
        "gpt-test",
        "openai/gpt-test",
        "gpt-test-latest",
        "gpt-unpriced",
    ] {
        let r = b
            .token
            .send(Method::POST, "/v1/chat/completions", Some(call(model)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{model}: {}", r.text);
    }
    let mut body = call("openai/gpt-test");
    body["stream"] = json!(true);
    let res = b
        .token
        .client
        .post(format!("{}/v1/chat/completions", b.app.base))
        .bearer_auth(&b.token.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("[DONE]"));
    let ev = events(&b.app, &b.org, 5).await;
    let costs: Vec<(&str, i64)> = ev.iter().map(|e| (e.model.as_str(), e.cost)).collect();
    assert_eq!(
        costs,
        vec![
            ("gpt-test", 6),
            ("openai/gpt-test", 6),
            ("gpt-test-latest", 6),
            ("gpt-unpriced", 0),
            // 11 prompt + 5 completion tokens, from the stream's usage block.
            ("openai/gpt-test", 5),
        ]
    );
    // A price set for one provider's model wins over the model's general price.
    raw_db(&b.app)
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'openai/gpt-test', 1500000, 6000000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    let r = b
        .token
        .send(Method::POST, "/v1/chat/completions", Some(call("gpt-test")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(events(&b.app, &b.org, 6).await[5].cost, 59);
    // The unpriced model is flagged, in the report and on the page.
    let usage = b.owner.get(&format!("/api/v1/orgs/{}/usage", b.org)).await;
    let rows = usage.body["by_model"].as_array().unwrap();
    let flag = |m: &str| {
        rows.iter()
            .find(|r| r["model"] == m)
            .map(|r| r["unpriced_requests"].clone())
    };
    assert_eq!(flag("gpt-unpriced"), Some(json!(1)), "{}", usage.text);
    assert_eq!(flag("gpt-test"), Some(json!(0)));
    assert_eq!(flag("gpt-test-latest"), Some(json!(0)));
    let page = b.owner.get(&format!("/o/{}/usage", b.org)).await;
    assert_eq!(page.status, StatusCode::OK);
    let row = page
        .text
        .split("<tr")
        .find(|r| r.contains("gpt-unpriced"))
        .unwrap_or_else(|| panic!("no row for gpt-unpriced: {}", page.text));
    assert!(row.contains("no price"), "{row}");
    let priced = page
        .text
        .split("<tr")
        .find(|r| r.contains(">gpt-test<"))
        .unwrap();
    assert!(!priced.contains("no price"), "{priced}");
}

#[tokio::test]
async fn a_provider_that_needs_no_key_is_tested_and_called_without_one() {
    let b = bed().await;
    let path = format!("/api/v1/orgs/{}/llm/providers/ollama", b.org);
    // Without saying so, a provider with only a base URL has no key: refused clearly.
    let r = b.owner.put(&path, json!({"base_url": b.mock.base})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["key_required"], true);
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(small_call_of("ollama/llama3")),
        )
        .await;
    assert_eq!(r.status.as_u16(), 424, "{}", r.text);
    // "No key needed" needs a base URL to call.
    let r = b
        .owner
        .put(
            &format!("/api/v1/orgs/{}/llm/providers/vllm", b.org),
            json!({"key_required": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["error"]["fields"]["base_url"].is_string(),
        "{}",
        r.text
    );
    let r = b.owner.put(&path, json!({"key_required": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["key_required"], false);
    assert_eq!(r.body["key_hint"], Value::Null);
    let settings = b.owner.get(&format!("/api/v1/orgs/{}/llm", b.org)).await;
    let entry = settings.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "ollama")
        .cloned()
        .unwrap();
    assert_eq!(entry["key_required"], false);
    // Test connection reaches it, and so does the gateway, with no Authorization header.
    let t = b.owner.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["ok"], true, "{}", t.text);
    let before = b.mock.requests().len();
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(small_call_of("ollama/llama3")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = b.mock.requests();
    let last = &seen[seen.len() - 1];
    assert!(seen.len() > before);
    assert_eq!(last.body["model"], "llama3");
    assert_eq!(
        last.authorization, "",
        "a keyless provider got an Authorization header"
    );
    // (The refused call above went nowhere and is not metered.)
    let ev = events(&b.app, &b.org, 1).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].key_source, "none");
    // Its models are listed too.
    let models = b.token.get("/v1/models").await;
    assert!(
        models.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "ollama/gpt-4o-mini"),
        "{}",
        models.text
    );
    // And a key can still be set later; then it is sent.
    let r = b
        .owner
        .put(&path, json!({"api_key": "sk-ollama-proxy-0000-QQQQ"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = b
        .token
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(small_call_of("ollama/llama3")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = b.mock.requests();
    assert_eq!(
        seen[seen.len() - 1].authorization,
        "Bearer sk-ollama-proxy-0000-QQQQ"
    );
}

fn small_call_of(model: &str) -> Value {
    json!({"model": model, "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]})
}
