//! The agent services over HTTP against the mock provider: the exact prompt a chat turn
//! sends (and what is trimmed from it), replies stored with their cost and citations, SSE
//! streaming (also to a reader who leaves), refusals that store nothing, metering under
//! each endpoint name, retrieval and memory kept to their organization and member, and
//! indexing that survives a restart.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::{Reply, Session, TestApp, env_mock, reply};
use crate::org_fixture::{create_org, invite_and_join, new_person, set_plan};

/// The mock's answer to every non-streamed chat call.
const MOCK_ANSWER: &str = "Hello from the mock";
/// A priced model (2.5 $ / 10 $ per million tokens): the mock's 11 + 7 tokens cost 98 µ$.
const CHAT_MODEL: &str = "gpt-4o";
const MOCK_COST: i64 = 98;
/// How long a bounded wait lasts.
const PATIENCE: Duration = Duration::from_secs(15);

/// Chunks of at most 50 characters without overlap: each short paragraph of the test
/// documents is a chunk of its own, so passages and their order are predictable.
static SMALL_CHUNKS: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"chunk_chars": 50, "chunk_overlap": 0}));

struct Bed {
    app: TestApp,
    mock: MockLlm,
    owner: Session,
    org: String,
}

impl Bed {
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org)
    }
}

/// A server whose environment provider is the mock, and one team organization.
async fn bed(slug: &str) -> Bed {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let (owner, org) = owner_with_org(&app, slug).await;
    Bed {
        app,
        mock,
        owner,
        org,
    }
}

/// A new person owning a new organization on the team plan.
async fn owner_with_org(app: &TestApp, slug: &str) -> (Session, String) {
    let (_, owner) = new_person(app, &format!("owner@{slug}.example"), "Owner").await;
    let (org, _) = create_org(&owner, &format!("Org {slug}"), slug).await;
    set_plan(app, &org, "team");
    (owner, org)
}

/// Creates a resource of type `ty`; returns its id.
async fn create(s: &Session, org: &str, ty: &str, body: Value) -> String {
    let r = s.post(&format!("/api/v1/orgs/{org}/{ty}"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "create {ty}: {}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

/// Uploads a text document named `name`; returns its id.
async fn upload(s: &Session, org: &str, name: &str, text: &str) -> String {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec())
        .file_name(format!("{}.txt", name.replace(' ', "_")))
        .mime_str("text/plain")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("name", name.to_string());
    let r = reply(
        s.client
            .post(s.url(&format!("/api/v1/orgs/{org}/documents")))
            .header("x-csrf-token", &s.csrf)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "upload: {}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn add_document(s: &Session, org: &str, kb: &str, doc: &str) {
    let r = s
        .post(
            &format!("/api/v1/orgs/{org}/knowledge-bases/{kb}/documents"),
            json!({"document_id": doc}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "add document: {}", r.text);
}

/// The knowledge base's entry for `doc`, once `done` holds for it (bounded wait).
async fn wait_document(
    s: &Session,
    org: &str,
    kb: &str,
    doc: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let r = s
            .get(&format!(
                "/api/v1/orgs/{org}/knowledge-bases/{kb}/documents"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let entry = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["document_id"] == doc)
            .cloned()
            .unwrap_or(Value::Null);
        if done(&entry) {
            return entry;
        }
        assert_ne!(entry["status"], "failed", "indexing failed: {entry}");
        assert!(
            started.elapsed() < PATIENCE,
            "document {doc} never got there: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(s: &Session, org: &str, kb: &str, doc: &str) -> Value {
    wait_document(s, org, kb, doc, |d| d["status"] == "ready").await
}

/// A knowledge base (with `embedding_model` when given) holding one ready document.
async fn kb_with(
    s: &Session,
    org: &str,
    embedding_model: Option<&str>,
    doc_name: &str,
    text: &str,
) -> (String, String) {
    let mut body = json!({"name": format!("KB for {doc_name}"), "config": SMALL_CHUNKS.clone()});
    if let Some(m) = embedding_model {
        body["embedding_model"] = json!(m);
    }
    let kb = create(s, org, "knowledge-bases", body).await;
    let doc = upload(s, org, doc_name, text).await;
    add_document(s, org, &kb, &doc).await;
    wait_ready(s, org, &kb, &doc).await;
    (kb, doc)
}

async fn search(s: &Session, org: &str, kb: &str, q: &str, k: usize) -> Reply {
    s.get(&format!(
        "/api/v1/orgs/{org}/knowledge-bases/{kb}/search?q={q}&k={k}"
    ))
    .await
}

/// Posts a question to a conversation (JSON, not streamed).
async fn ask(s: &Session, org: &str, conv: &str, content: &str) -> Reply {
    s.post(
        &format!("/api/v1/orgs/{org}/conversations/{conv}/messages"),
        json!({"content": content}),
    )
    .await
}

async fn messages(s: &Session, org: &str, conv: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/api/v1/orgs/{org}/conversations/{conv}/messages"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

/// The bodies of the chat calls the mock received, oldest first.
fn chat_calls(mock: &MockLlm) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/chat/completions")
        .map(|r| r.body)
        .collect()
}

/// The events of an SSE body as (event name, data).
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

/// The org's usage report, once `done` holds for it (metering is written in batches).
async fn usage_when(s: &Session, org: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let r = s.get(&format!("/api/v1/orgs/{org}/usage")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the usage never got there: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn raw_db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// (endpoint, model, status) of each usage event of the org, oldest first.
fn usage_events(app: &TestApp, org: &str) -> Vec<(String, String, i64)> {
    let db = raw_db(app);
    let mut stmt = db
        .prepare(
            "SELECT endpoint, model, status_code FROM usage_events
             WHERE organization_id = ?1 ORDER BY created_at, rowid",
        )
        .unwrap();
    stmt.query_map([org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn chunk_count(app: &TestApp, kb: &str, doc: &str) -> i64 {
    raw_db(app)
        .query_row(
            "SELECT COUNT(*) FROM kb_chunks WHERE knowledge_base_id = ?1 AND document_id = ?2",
            [kb, doc],
            |r| r.get(0),
        )
        .unwrap()
}

/// The support-desk agent of the prompt tests: system prompt, two traits, a skill, two
/// remembered facts and a knowledge base with one ready two-passage document.
struct Desk {
    b: Bed,
    kb: String,
    doc: String,
    conv: String,
}

const DESK_PROMPT: &str = "You are the support desk of Acme.";
const POLICY: &str = "Refunds take five business days.\n\nShipping takes two days.";

async fn support_desk(slug: &str) -> Desk {
    let b = bed(slug).await;
    let (kb, doc) = kb_with(&b.owner, &b.org, None, "Refund policy", POLICY).await;
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({
            "name": "Desk",
            "model": CHAT_MODEL,
            "system_prompt": DESK_PROMPT,
            "personality_traits": [{"trait": "patient", "value": "very"}, {"trait": "terse"}],
            "skills": [{"skill": "refunds", "level": "expert"}],
            "knowledge_base_ids": [kb],
            "memory": "per_user",
        }),
    )
    .await;
    for (key, value) in [("name", "Ada"), ("city", "Lyon")] {
        let r = b
            .owner
            .post(
                &b.path(&format!("/agents/{agent}/memory")),
                json!({"key": key, "value": value}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Refund question", "agent_id": agent}),
    )
    .await;
    Desk { b, kb, doc, conv }
}

#[tokio::test]
async fn the_prompt_holds_system_prompt_traits_skills_memory_passages_and_history_exactly() {
    let d = support_desk("prompt-exact").await;
    let b = &d.b;
    let first = ask(&b.owner, &b.org, &d.conv, "Hi there").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let r = ask(
        &b.owner,
        &b.org,
        &d.conv,
        "  How many days do refunds take?  ",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let calls = chat_calls(&b.mock);
    assert_eq!(calls.len(), 2, "one model call per message");
    let system = "You are the support desk of Acme.\n\n\
        Personality traits:\n- patient: very\n- terse\n\n\
        Skills:\n- refunds: expert\n\n\
        What you remember about this user:\n- city: Lyon\n- name: Ada\n\n\
        Passages from the knowledge base; answer from them where they apply and cite them as [n]:\n\
        [1] Refund policy (passage 1):\nRefunds take five business days.\n\
        [2] Refund policy (passage 2):\nShipping takes two days.";
    assert_eq!(
        calls[1],
        json!({
            "model": CHAT_MODEL,
            "max_tokens": 1024,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Hi there"},
                {"role": "assistant", "content": MOCK_ANSWER},
                {"role": "user", "content": "How many days do refunds take?"},
            ],
        })
    );
}

#[tokio::test]
async fn the_oldest_turns_are_dropped_to_fit_the_context_and_the_system_prompt_stays() {
    let b = bed("prompt-trim").await;
    // Budget: 220 - 100 = 120 tokens. The system prompt takes 3 and the question 2; of
    // the 115 left, the newest turns fit (reply 5+4, question 100+4) and the one before
    // (reply 9) does not: the first question and its reply are dropped.
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({
            "name": "Brief",
            "model": CHAT_MODEL,
            "system_prompt": "Be brief.",
            "config": {"context_tokens": 220, "max_tokens": 100},
        }),
    )
    .await;
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Long", "agent_id": agent}),
    )
    .await;
    let first = format!("first {}", "a".repeat(394));
    let second = format!("second {}", "b".repeat(393));
    assert_eq!((first.len(), second.len()), (400, 400));
    for q in [&first, &second] {
        let r = ask(&b.owner, &b.org, &conv, q).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = ask(&b.owner, &b.org, &conv, "third?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let calls = chat_calls(&b.mock);
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[2],
        json!({
            "model": CHAT_MODEL,
            "max_tokens": 100,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": second},
                {"role": "assistant", "content": MOCK_ANSWER},
                {"role": "user", "content": "third?"},
            ],
        })
    );
    // Everything is still stored: trimming is only what is sent.
    assert_eq!(messages(&b.owner, &b.org, &conv).await.len(), 6);
}

#[tokio::test]
async fn a_reply_is_stored_with_its_tokens_cost_model_and_citations_next_to_the_question() {
    let d = support_desk("reply-stored").await;
    let b = &d.b;
    let hits = search(&b.owner, &b.org, &d.kb, "refunds", 5).await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.text);
    let chunk_of = |text: &str| {
        hits.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["text"] == text)
            .unwrap_or_else(|| panic!("no chunk {text}: {}", hits.text))["chunk_id"]
            .clone()
    };
    let refunds_chunk = chunk_of("Refunds take five business days.");
    let shipping_chunk = chunk_of("Shipping takes two days.");

    let r = ask(&b.owner, &b.org, &d.conv, "How many days do refunds take?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (m, reply) = (&r.body["message"], &r.body["reply"]);
    assert_eq!(m["role"], "user");
    assert_eq!(m["content"], "How many days do refunds take?");
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["content"], MOCK_ANSWER);
    assert_eq!(reply["input_tokens"], 11);
    assert_eq!(reply["output_tokens"], 7);
    assert_eq!(reply["cost_micros"], MOCK_COST);
    assert_eq!(reply["model"], CHAT_MODEL);
    assert_eq!(reply["complete"], true);
    let cited: Vec<(Value, Value, Value, Value)> = reply["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["document_id"].clone(),
                c["knowledge_base_id"].clone(),
                c["chunk_id"].clone(),
                c["position"].clone(),
            )
        })
        .collect();
    assert_eq!(
        cited,
        vec![
            (json!(d.doc), json!(d.kb), refunds_chunk, json!(0)),
            (json!(d.doc), json!(d.kb), shipping_chunk, json!(1)),
        ],
        "the passages the reply was given, best first"
    );
    let scores: Vec<f64> = reply["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] > scores[1], "{scores:?}");

    // The list shows exactly what the answer showed, question first.
    let listed = messages(&b.owner, &b.org, &d.conv).await;
    assert_eq!(listed, vec![m.clone(), reply.clone()]);
}

/// Posts a question with the reply streamed; returns the whole SSE body.
async fn ask_streamed(s: &Session, path: &str, accept: bool, content: &str) -> Reply {
    let mut req = s
        .client
        .post(s.url(path))
        .header("x-csrf-token", &s.csrf)
        .json(&json!({"content": content}));
    if accept {
        req = req.header("accept", "text/event-stream");
    }
    reply(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_streamed_reply_arrives_as_deltas_then_done_and_is_stored_as_their_concatenation() {
    let b = bed("sse").await;
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({"name": "Streamer", "model": CHAT_MODEL, "system_prompt": "Stream."}),
    )
    .await;
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Streams", "agent_id": agent}),
    )
    .await;
    let path = b.path(&format!("/conversations/{conv}/messages"));
    let by_header = ask_streamed(&b.owner, &path, true, "Stream by header").await;
    let by_query = ask_streamed(
        &b.owner,
        &format!("{path}?stream=true"),
        false,
        "Stream by query",
    )
    .await;
    let mut stored_replies = Vec::new();
    for r in [&by_header, &by_query] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.headers["content-type"], "text/event-stream");
        let events = sse_events(&r.text);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["delta", "delta", "delta", "delta", "delta", "done"]);
        let joined: String = events[..5]
            .iter()
            .map(|(_, d)| d["content"].as_str().unwrap())
            .collect();
        assert_eq!(joined, "tok0 tok1 tok2 tok3 tok4 ");
        let done = &events[5].1;
        assert_eq!(done["role"], "assistant");
        assert_eq!(done["content"], joined);
        assert_eq!(done["complete"], true);
        // From the stream's usage block: 11 prompt tokens, one per chunk.
        assert_eq!(
            (done["input_tokens"].clone(), done["output_tokens"].clone()),
            (json!(11), json!(5))
        );
        assert_eq!(done["model"], CHAT_MODEL);
        stored_replies.push(done.clone());
    }
    let listed = messages(&b.owner, &b.org, &conv).await;
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0]["content"], "Stream by header");
    assert_eq!(listed[1], stored_replies[0]);
    assert_eq!(listed[2]["content"], "Stream by query");
    assert_eq!(listed[3], stored_replies[1]);
    // The provider was asked for a stream with its usage block.
    let calls = chat_calls(&b.mock);
    assert!(
        calls
            .iter()
            .all(|c| c["stream"] == true && c["stream_options"]["include_usage"] == true)
    );
}

#[tokio::test]
async fn a_reader_who_leaves_mid_stream_leaves_a_partial_reply_stored_and_metered() {
    let b = bed("sse-leave").await;
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({"name": "Slow", "model": "stream-slow", "system_prompt": "Take your time."}),
    )
    .await;
    // A price, so that the partial reply has a cost to compare with the usage.
    raw_db(&b.app)
        .execute(
            "INSERT OR REPLACE INTO model_price_entries (id, provider, model, input_micros_per_mtok, output_micros_per_mtok, effective_from, created_at, updated_at) VALUES (lower(hex(randomblob(16))), '', 'stream-slow', 1000000000, 2000000000, '2000-01-01T00:00:00.000000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Left", "agent_id": agent}),
    )
    .await;
    let res = b
        .owner
        .client
        .post(
            b.owner
                .url(&b.path(&format!("/conversations/{conv}/messages"))),
        )
        .header("x-csrf-token", &b.owner.csrf)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "Count to forty"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while seen.matches("event: delta").count() < 3 {
        let chunk = body.next().await.expect("more events").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);

    let started = Instant::now();
    let listed = loop {
        let listed = messages(&b.owner, &b.org, &conv).await;
        if !listed.is_empty() {
            break listed;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the partial reply was never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["content"], "Count to forty");
    let partial = &listed[1];
    assert_eq!(partial["complete"], false, "{partial}");
    let text = partial["content"].as_str().unwrap();
    assert!(text.starts_with("tok0 tok1 tok2 "), "{text}");
    let pieces = text.split_whitespace().count();
    assert!(pieces < 40, "the whole answer was stored: {pieces} pieces");
    assert!(partial["output_tokens"].as_i64().unwrap() > 0);
    assert!(partial["cost_micros"].as_i64().unwrap() > 0);

    // Metered for what was delivered: the same tokens and cost as the stored reply.
    let usage = usage_when(&b.owner, &b.org, |u| u["totals"]["requests"] == 1).await;
    assert_eq!(usage["totals"]["input_tokens"], partial["input_tokens"]);
    assert_eq!(usage["totals"]["output_tokens"], partial["output_tokens"]);
    assert_eq!(usage["totals"]["cost_micros"], partial["cost_micros"]);
    assert_eq!(
        usage_events(&b.app, &b.org),
        [("agent.chat".to_string(), "stream-slow".to_string(), 499)]
    );
}

#[tokio::test]
async fn an_exhausted_quota_refuses_the_turn_with_insufficient_quota_and_stores_nothing() {
    let b = bed("chat-quota").await;
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({"name": "Spender", "model": CHAT_MODEL}),
    )
    .await;
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Costs", "agent_id": agent}),
    )
    .await;
    let r = ask(&b.owner, &b.org, &conv, "First, while there is credit").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    usage_when(&b.owner, &b.org, |u| {
        u["totals"]["cost_micros"] == MOCK_COST
    })
    .await;
    let q = b
        .owner
        .send(
            reqwest::Method::PATCH,
            &b.path("/quota"),
            Some(json!({"monthly_credits_micros": 50})),
        )
        .await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text);
    let before = messages(&b.owner, &b.org, &conv).await;
    assert_eq!(before.len(), 2);

    let refused = ask(&b.owner, &b.org, &conv, "Second, over the quota").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    assert_eq!(refused.code(), "insufficient_quota");
    assert!(refused.body["error"]["message"].as_str().unwrap().len() > 3);
    let streamed = ask_streamed(
        &b.owner,
        &b.path(&format!("/conversations/{conv}/messages")),
        true,
        "Third, streamed over the quota",
    )
    .await;
    assert_eq!(
        streamed.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        streamed.text
    );
    assert_eq!(streamed.code(), "insufficient_quota");

    assert_eq!(messages(&b.owner, &b.org, &conv).await, before);
    assert_eq!(chat_calls(&b.mock).len(), 1, "no call reached the provider");
}

#[tokio::test]
async fn without_a_provider_key_the_turn_is_refused_with_no_provider_key_and_stores_nothing() {
    // No environment provider and no key in the organization.
    let app = TestApp::spawn().await;
    let (owner, org) = owner_with_org(&app, "no-key").await;
    let agent = create(
        &owner,
        &org,
        "agents",
        json!({"name": "Keyless", "model": CHAT_MODEL}),
    )
    .await;
    let conv = create(
        &owner,
        &org,
        "conversations",
        json!({"name": "Nothing", "agent_id": agent}),
    )
    .await;
    let r = ask(&owner, &org, &conv, "Anyone there?").await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.code(), "no_provider_key");
    let streamed = ask_streamed(
        &owner,
        &format!("/api/v1/orgs/{org}/conversations/{conv}/messages"),
        true,
        "Anyone streaming?",
    )
    .await;
    assert_eq!(
        streamed.status,
        StatusCode::FAILED_DEPENDENCY,
        "{}",
        streamed.text
    );
    assert_eq!(streamed.code(), "no_provider_key");
    assert_eq!(messages(&owner, &org, &conv).await, Vec::<Value>::new());
}

#[tokio::test]
async fn chat_indexing_search_and_retrieval_are_each_metered_under_their_endpoint() {
    let b = bed("metering").await;
    let (kb, _) = kb_with(&b.owner, &b.org, None, "Manual", "Press the red button.").await;
    let after_indexing = usage_when(&b.owner, &b.org, |u| u["totals"]["requests"] == 1).await;
    assert!(after_indexing["totals"]["input_tokens"].as_i64().unwrap() > 0);
    let s = search(&b.owner, &b.org, &kb, "button", 3).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({"name": "Helper", "model": CHAT_MODEL, "knowledge_base_ids": [kb]}),
    )
    .await;
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Metered", "agent_id": agent}),
    )
    .await;
    let r = ask(&b.owner, &b.org, &conv, "Which button?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let usage = usage_when(&b.owner, &b.org, |u| u["totals"]["requests"] == 4).await;
    let by_model: Vec<(String, i64)> = usage["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap().to_string(),
                m["totals"]["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        by_model.contains(&(CHAT_MODEL.to_string(), 1)),
        "{by_model:?}"
    );
    assert!(
        by_model.contains(&("text-embedding-3-small".to_string(), 3)),
        "{by_model:?}"
    );
    assert!(usage["totals"]["cost_micros"].as_i64().unwrap() >= MOCK_COST);
    let events = usage_events(&b.app, &b.org);
    let ok = |endpoint: &str, model: &str| (endpoint.to_string(), model.to_string(), 200);
    assert_eq!(
        events,
        [
            ok("knowledge.embeddings", "text-embedding-3-small"),
            ok("knowledge.search", "text-embedding-3-small"),
            ok("agent.retrieval", "text-embedding-3-small"),
            ok("agent.chat", CHAT_MODEL),
        ]
    );
}

#[tokio::test]
async fn identical_documents_in_two_orgs_are_retrieved_only_by_their_own_org() {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let (a_owner, a_org) = owner_with_org(&app, "iso-a").await;
    let (b_owner, b_org) = owner_with_org(&app, "iso-b").await;
    let text = "The vault code is kept by the night guard.\n\nThe night guard starts at ten.";
    let (a_kb, a_doc) = kb_with(&a_owner, &a_org, None, "Vault", text).await;
    let (b_kb, b_doc) = kb_with(&b_owner, &b_org, None, "Vault", text).await;

    let mut chunks = Vec::new();
    for (s, org, kb, doc) in [
        (&a_owner, &a_org, &a_kb, &a_doc),
        (&b_owner, &b_org, &b_kb, &b_doc),
    ] {
        let r = search(s, org, kb, "night guard vault", 50).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            2,
            "both passages of the own document: {}",
            r.text
        );
        assert!(
            items.iter().all(|i| i["document_id"] == **doc),
            "only the org's own document: {}",
            r.text
        );
        chunks.push(
            items
                .iter()
                .map(|i| i["chunk_id"].as_i64().unwrap())
                .collect::<BTreeSet<i64>>(),
        );
    }
    assert!(chunks[0].is_disjoint(&chunks[1]), "{chunks:?}");

    // B cannot point an agent at A's knowledge base, on creation or later.
    let borrower = json!({"name": "Borrower", "model": CHAT_MODEL, "knowledge_base_ids": [a_kb]});
    let made = b_owner
        .post(&format!("/api/v1/orgs/{b_org}/agents"), borrower)
        .await;
    assert_eq!(made.status, StatusCode::BAD_REQUEST, "{}", made.text);
    assert!(
        made.body["error"]["fields"]["knowledge_base_ids"].is_string(),
        "{}",
        made.text
    );
    let own = create(
        &b_owner,
        &b_org,
        "agents",
        json!({"name": "Own", "knowledge_base_ids": [b_kb]}),
    )
    .await;
    let changed = b_owner
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{b_org}/agents/{own}"),
            Some(json!({"knowledge_base_ids": [b_kb, a_kb]})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::BAD_REQUEST, "{}", changed.text);

    // B's owner asks for A's knowledge base: by A's path and by B's.
    for path in [
        format!("/api/v1/orgs/{a_org}/knowledge-bases/{a_kb}/search?q=vault&k=5"),
        format!("/api/v1/orgs/{b_org}/knowledge-bases/{a_kb}/search?q=vault&k=5"),
        format!("/api/v1/orgs/{a_org}/knowledge-bases/{a_kb}/documents"),
    ] {
        let r = b_owner.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert!(
            !r.text.contains("vault code") && !r.text.contains(&a_doc),
            "{}",
            r.text
        );
    }
}

/// Remembers `key` through `path` (an agent's memory) as `s`; returns the fact's id.
async fn fact(s: &Session, path: String, key: &str) -> String {
    let r = s
        .post(&path, json!({"key": key, "value": format!("{key} value")}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn memory_is_kept_per_member_or_per_organization_and_never_crosses_them() {
    let b = bed("memory-iso").await;
    let (_, m1) = new_person(&b.app, "one@memory-iso.example", "One").await;
    let (_, m2) = new_person(&b.app, "two@memory-iso.example", "Two").await;
    invite_and_join(&b.owner, &b.org, "one@memory-iso.example", "member", &m1).await;
    invite_and_join(&b.owner, &b.org, "two@memory-iso.example", "member", &m2).await;
    let (outsider, outsider_org) = owner_with_org(&b.app, "memory-out").await;
    let agent = |name: &'static str, memory: &'static str, visibility: &'static str| json!({"name": name, "model": CHAT_MODEL, "memory": memory, "visibility": visibility});
    let personal = create(
        &b.owner,
        &b.org,
        "agents",
        agent("Personal", "per_user", "organization"),
    )
    .await;
    let shared = create(
        &b.owner,
        &b.org,
        "agents",
        agent("Shared", "organization", "organization"),
    )
    .await;
    let secret = create(
        &b.owner,
        &b.org,
        "agents",
        agent("Secret", "organization", "private"),
    )
    .await;
    let memory = |a: &str| b.path(&format!("/agents/{a}/memory"));
    let keys = |r: &Reply| -> Vec<(String, String)> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["key"].as_str().unwrap().to_string(),
                    f["scope"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    // Per member: each sees only their own facts.
    let one_fact = fact(&m1, memory(&personal), "one-likes").await;
    fact(&m2, memory(&personal), "two-likes").await;
    // The same key is a fact of each member's own.
    fact(&m2, memory(&personal), "one-likes").await;
    let r = m2.get(&memory(&personal)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = m2
        .delete(&format!(
            "{}/{}",
            memory(&personal),
            r.body["items"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let pair = |k: &str, scope: &str| vec![(k.to_string(), scope.to_string())];
    assert_eq!(
        keys(&m1.get(&memory(&personal)).await),
        pair("one-likes", "member")
    );
    assert_eq!(
        keys(&m2.get(&memory(&personal)).await),
        pair("two-likes", "member")
    );
    assert_eq!(keys(&b.owner.get(&memory(&personal)).await), vec![]);
    // Another member's fact cannot be changed or forgotten, and stays as it was.
    let one_path = format!("{}/{one_fact}", memory(&personal));
    let r = m2
        .send(
            reqwest::Method::PATCH,
            &one_path,
            Some(json!({"value": "changed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = m2.delete(&one_path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let mine = m1.get(&memory(&personal)).await;
    assert_eq!(mine.body["items"][0]["value"], "one-likes value");

    // Organization-wide: one member's fact is every reader's.
    let team_fact = fact(&m1, memory(&shared), "office").await;
    for s in [&m1, &m2, &b.owner] {
        assert_eq!(
            keys(&s.get(&memory(&shared)).await),
            pair("office", "organization")
        );
    }
    let r = m2
        .send(
            reqwest::Method::PATCH,
            &format!("{}/{team_fact}", memory(&shared)),
            Some(json!({"value": "Lyon office"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        m1.get(&memory(&shared)).await.body["items"][0]["value"],
        "Lyon office"
    );
    // ... but not for a member who cannot read the agent.
    let hidden = fact(&b.owner, memory(&secret), "hidden").await;
    for r in [
        m1.get(&memory(&secret)).await,
        m1.post(&memory(&secret), json!({"key": "k", "value": "v"}))
            .await,
        m1.delete(&format!("{}/{hidden}", memory(&secret))).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    assert_eq!(
        keys(&b.owner.get(&memory(&secret)).await),
        pair("hidden", "organization")
    );

    // Another organization's member: not found by A's path nor by their own.
    let fact_paths = [
        format!("{}/{one_fact}", memory(&personal)),
        format!("{}/{team_fact}", memory(&shared)),
    ];
    let theirs = |p: &str| p.replace(&b.org, &outsider_org);
    for base in [memory(&personal), memory(&shared)] {
        for p in [base.clone(), theirs(&base)] {
            let r = outsider.get(&p).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.text);
            let r = outsider.post(&p, json!({"key": "k", "value": "v"})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.text);
        }
    }
    for f in &fact_paths {
        for p in [f.clone(), theirs(f)] {
            let r = outsider
                .send(reqwest::Method::PATCH, &p, Some(json!({"value": "x"})))
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.text);
            let r = outsider.delete(&p).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.text);
        }
    }
    assert_eq!(
        keys(&m1.get(&memory(&personal)).await),
        pair("one-likes", "member")
    );
    assert_eq!(
        keys(&m1.get(&memory(&shared)).await),
        pair("office", "organization")
    );
}

#[tokio::test]
async fn a_restart_during_indexing_finishes_the_document_and_search_works_from_the_stored_index() {
    let mock = MockLlm::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let (owner, org) = owner_with_org(&app, "restart-index").await;
    // Indexed before the restart: found afterwards only if the index is read back.
    let (kb, small) = kb_with(
        &owner,
        &org,
        Some("slow-embed"),
        "Small",
        "The lighthouse keeper feeds the gulls.",
    )
    .await;
    // 200 passages: 7 embedding calls of 300 ms each.
    let paragraphs: Vec<String> = (0..200)
        .map(|i| format!("Paragraph {i} is about subject{i}."))
        .collect();
    let big = upload(&owner, &org, "Big", &paragraphs.join("\n\n")).await;
    add_document(&owner, &org, &kb, &big).await;
    let entry = wait_document(&owner, &org, &kb, &big, |d| {
        d["status"] == "indexing" || d["status"] == "queued"
    })
    .await;
    assert_ne!(entry["status"], "ready");
    drop(owner);
    let dir = app.stop().await;
    // Still unfinished in the stored state.
    {
        let c = rusqlite::Connection::open(dir.path().join("data").join("xagent.db")).unwrap();
        let status: String = c
            .query_row(
                "SELECT status FROM knowledge_base_documents WHERE document_id = ?1",
                [&big],
                |r| r.get(0),
            )
            .unwrap();
        assert!(status == "indexing" || status == "queued", "{status}");
    }

    let app = TestApp::spawn_in(dir, |c| env_mock(c, &mock)).await;
    let owner = app.login("owner@restart-index.example").await;
    let hits = search(&owner, &org, &kb, "lighthouse gulls", 1).await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.text);
    assert_eq!(hits.body["items"][0]["document_id"], small, "{}", hits.text);

    let done = wait_ready(&owner, &org, &kb, &big).await;
    assert_eq!(
        (done["chunks"].clone(), done["embedded"].clone()),
        (json!(200), json!(200))
    );
    assert_eq!(chunk_count(&app, &kb, &big), 200, "every chunk once");
    let hits = search(&owner, &org, &kb, "subject137", 1).await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.text);
    let top = &hits.body["items"][0];
    assert_eq!(top["document_id"], big, "{}", hits.text);
    assert_eq!(top["position"], 137);
    assert_eq!(top["text"], "Paragraph 137 is about subject137.");
}

#[tokio::test]
async fn a_document_taken_out_of_a_knowledge_base_takes_its_chunks_with_it() {
    let b = bed("kb-remove").await;
    let kb = create(
        &b.owner,
        &b.org,
        "knowledge-bases",
        json!({"name": "Fruit", "config": SMALL_CHUNKS.clone()}),
    )
    .await;
    let apples = upload(
        &b.owner,
        &b.org,
        "Apples",
        "Apples are red and round and sweet.\n\nApples grow on trees in orchards.",
    )
    .await;
    let pears = upload(&b.owner, &b.org, "Pears", "Pears are green.").await;
    for d in [&apples, &pears] {
        add_document(&b.owner, &b.org, &kb, d).await;
        wait_ready(&b.owner, &b.org, &kb, d).await;
    }
    let docs_found = |r: &Reply| -> BTreeSet<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["document_id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = search(&b.owner, &b.org, &kb, "apples", 50).await;
    assert_eq!(
        docs_found(&before),
        BTreeSet::from([apples.clone(), pears.clone()])
    );
    assert_eq!(chunk_count(&b.app, &kb, &apples), 2);

    let r = b
        .owner
        .delete(&b.path(&format!("/knowledge-bases/{kb}/documents/{apples}")))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let after = search(&b.owner, &b.org, &kb, "apples", 50).await;
    assert_eq!(docs_found(&after), BTreeSet::from([pears.clone()]));
    assert_eq!(after.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(chunk_count(&b.app, &kb, &apples), 0);
    let listed = b
        .owner
        .get(&b.path(&format!("/knowledge-bases/{kb}/documents")))
        .await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [pears.as_str()]);
    // Taking it out again finds nothing to take.
    let r = b
        .owner
        .delete(&b.path(&format!("/knowledge-bases/{kb}/documents/{apples}")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn a_deleted_document_leaves_no_vectors_behind_to_crowd_out_the_live_passages() {
    let b = bed("doc-delete").await;
    let kb = create(
        &b.owner,
        &b.org,
        "knowledge-bases",
        json!({"name": "Orchard", "config": SMALL_CHUNKS.clone()}),
    )
    .await;
    let apples = upload(
        &b.owner,
        &b.org,
        "Apples",
        "Apples are red apples.\n\nApples grow on apple trees.",
    )
    .await;
    let pears = upload(&b.owner, &b.org, "Pears", "Pears are green.").await;
    for d in [&apples, &pears] {
        add_document(&b.owner, &b.org, &kb, d).await;
        wait_ready(&b.owner, &b.org, &kb, d).await;
    }
    let top = search(&b.owner, &b.org, &kb, "apples", 1).await;
    assert_eq!(top.body["items"][0]["document_id"], apples, "{}", top.text);

    // The document itself is deleted (not only taken out of the knowledge base).
    let r = b
        .owner
        .delete(&b.path(&format!("/documents/{apples}")))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(chunk_count(&b.app, &kb, &apples), 0);

    // The best passage left is the pear's, even when only one is asked for.
    for k in [1, 2, 50] {
        let r = search(&b.owner, &b.org, &kb, "apples", k).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let docs: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["document_id"].as_str().unwrap())
            .collect();
        assert_eq!(docs, [pears.as_str()], "k={k}: {}", r.text);
    }
}

#[tokio::test]
async fn a_members_chat_retrieves_only_from_knowledge_bases_that_member_may_read() {
    let b = bed("kb-readers").await;
    let (_, member) = new_person(&b.app, "member@kb-readers.example", "Member").await;
    invite_and_join(
        &b.owner,
        &b.org,
        "member@kb-readers.example",
        "member",
        &member,
    )
    .await;
    // The knowledge base is the owner's own (private); the agent is the organization's.
    let (kb, _) = kb_with(
        &b.owner,
        &b.org,
        None,
        "Salaries",
        "The salary review is in March.",
    )
    .await;
    let agent = create(
        &b.owner,
        &b.org,
        "agents",
        json!({"name": "HR", "model": CHAT_MODEL, "system_prompt": "Answer.",
               "knowledge_base_ids": [kb], "visibility": "organization"}),
    )
    .await;
    let r = search(&member, &b.org, &kb, "salary", 5).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let conv = create(
        &member,
        &b.org,
        "conversations",
        json!({"name": "Mine", "agent_id": agent}),
    )
    .await;
    let r = ask(&member, &b.org, &conv, "When is the salary review?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["reply"]["citations"], json!([]));
    assert_eq!(
        chat_calls(&b.mock).last().unwrap()["messages"],
        json!([
            {"role": "system", "content": "Answer."},
            {"role": "user", "content": "When is the salary review?"},
        ])
    );

    // The owner, who may read it, gets the passage.
    let conv = create(
        &b.owner,
        &b.org,
        "conversations",
        json!({"name": "Owner's", "agent_id": agent}),
    )
    .await;
    let r = ask(&b.owner, &b.org, &conv, "When is the salary review?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["reply"]["citations"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    let system = chat_calls(&b.mock).last().unwrap()["messages"][0]["content"].clone();
    assert!(
        system
            .as_str()
            .unwrap()
            .ends_with("The salary review is in March."),
        "{system}"
    );
}

#[tokio::test]
async fn a_document_taken_out_while_it_is_indexed_leaves_no_chunks_and_stops_being_embedded() {
    let b = bed("remove-indexing").await;
    let kb = create(
        &b.owner,
        &b.org,
        "knowledge-bases",
        json!({"name": "Slow", "embedding_model": "slow-embed", "config": SMALL_CHUNKS.clone()}),
    )
    .await;
    let paragraphs: Vec<String> = (0..200)
        .map(|i| format!("Removed paragraph {i} mentions topic{i}."))
        .collect();
    let big = upload(&b.owner, &b.org, "Big", &paragraphs.join("\n\n")).await;
    add_document(&b.owner, &b.org, &kb, &big).await;
    wait_document(&b.owner, &b.org, &kb, &big, |d| {
        d["status"] == "indexing" && d["embedded"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let r = b
        .owner
        .delete(&b.path(&format!("/knowledge-bases/{kb}/documents/{big}")))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // The indexer works in order: once the next document is ready, it is done with the first.
    let next = upload(&b.owner, &b.org, "Next", "The next document is short.").await;
    add_document(&b.owner, &b.org, &kb, &next).await;
    wait_ready(&b.owner, &b.org, &kb, &next).await;
    assert_eq!(chunk_count(&b.app, &kb, &big), 0);
    let r = search(&b.owner, &b.org, &kb, "topic137 removed paragraph", 50).await;
    let docs: BTreeSet<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["document_id"].as_str().unwrap())
        .collect();
    assert_eq!(docs, BTreeSet::from([next.as_str()]), "{}", r.text);
    // The batches after the removal were not sent (nor paid for).
    let big_batches = b
        .mock
        .requests()
        .iter()
        .filter(|r| {
            r.path == "/embeddings" && r.body["input"].to_string().contains("Removed paragraph")
        })
        .count();
    assert!(big_batches < 7, "all {big_batches} batches were embedded");
}

/// Replaces a document's file with `text`.
async fn replace_file(s: &Session, org: &str, doc: &str, text: &str) -> Reply {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec())
        .file_name("notes.txt")
        .mime_str("text/plain")
        .unwrap();
    reply(
        s.client
            .put(s.url(&format!("/api/v1/orgs/{org}/documents/{doc}/content")))
            .header("x-csrf-token", &s.csrf)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Chunk ids of a document in a knowledge base.
fn chunk_ids(app: &TestApp, kb: &str, doc: &str) -> BTreeSet<i64> {
    let db = raw_db(app);
    let mut stmt = db
        .prepare("SELECT id FROM kb_chunks WHERE knowledge_base_id = ?1 AND document_id = ?2")
        .unwrap();
    stmt.query_map([kb, doc], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_changed_file_re_indexes_that_document_only_and_the_same_file_nothing() {
    let b = bed("reupload").await;
    let kb = create(
        &b.owner,
        &b.org,
        "knowledge-bases",
        json!({"name": "Fruit", "config": SMALL_CHUNKS.clone()}),
    )
    .await;
    let apples = upload(&b.owner, &b.org, "Apples", "Apples are red.").await;
    let pears = upload(&b.owner, &b.org, "Pears", "Pears are green.").await;
    for d in [&apples, &pears] {
        add_document(&b.owner, &b.org, &kb, d).await;
        wait_ready(&b.owner, &b.org, &kb, d).await;
    }
    let pear_chunks = chunk_ids(&b.app, &kb, &pears);
    let apple_chunks = chunk_ids(&b.app, &kb, &apples);
    let embeds = || {
        b.mock
            .requests()
            .iter()
            .filter(|r| r.path == "/embeddings")
            .count()
    };
    let before = embeds();

    let r = replace_file(&b.owner, &b.org, &apples, "Apples are crunchy and sweet.").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 2, "{}", r.text);
    wait_document(&b.owner, &b.org, &kb, &apples, |d| {
        d["status"] == "ready" && d["chunks"] == 1
    })
    .await;
    let found = search(&b.owner, &b.org, &kb, "crunchy", 1).await;
    assert_eq!(
        found.body["items"][0]["document_id"],
        apples.as_str(),
        "{}",
        found.text
    );
    assert!(
        found.body["items"][0]["text"]
            .as_str()
            .unwrap()
            .contains("crunchy")
    );
    assert_ne!(
        chunk_ids(&b.app, &kb, &apples),
        apple_chunks,
        "not indexed again"
    );
    assert_eq!(
        chunk_ids(&b.app, &kb, &pears),
        pear_chunks,
        "the other document was indexed again"
    );
    let content = b
        .owner
        .get(&b.path(&format!("/documents/{apples}/content")))
        .await;
    assert_eq!(content.text, "Apples are crunchy and sweet.");
    // One embeddings call for the new text (none for the pears); the search made one more.
    assert_eq!(embeds(), before + 2);

    // The same bytes again: a new version, nothing indexed again.
    let now = embeds();
    let same = replace_file(&b.owner, &b.org, &apples, "Apples are crunchy and sweet.").await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    let listed = b
        .owner
        .get(&b.path(&format!("/knowledge-bases/{kb}/documents")))
        .await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "ready"),
        "{}",
        listed.text
    );
    assert_eq!(embeds(), now);

    // Refused: no file, other fields, another org's document, a reader who cannot change it.
    let empty = reply(
        b.owner
            .client
            .put(
                b.owner
                    .url(&b.path(&format!("/documents/{apples}/content"))),
            )
            .header("x-csrf-token", &b.owner.csrf)
            .multipart(reqwest::multipart::Form::new().text("name", "x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.text);
    let (other, other_org) = owner_with_org(&b.app, "reupload-other").await;
    let r = replace_file(&other, &other_org, &apples, "planted").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = replace_file(&other, &b.org, &apples, "planted").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let content = b
        .owner
        .get(&b.path(&format!("/documents/{apples}/content")))
        .await;
    assert_eq!(content.text, "Apples are crunchy and sweet.");
}

#[tokio::test]
async fn with_extraction_on_a_reply_is_followed_by_a_metered_call_that_remembers_stated_facts() {
    let b = bed("extract-memory").await;
    let agent = |extract: bool| {
        json!({"name": format!("Noter {extract}"), "model": CHAT_MODEL, "memory": "per_user",
               "memory_extraction": extract})
    };
    let noter = create(&b.owner, &b.org, "agents", agent(true)).await;
    let plain = create(&b.owner, &b.org, "agents", agent(false)).await;
    for a in [&noter, &plain] {
        let conv = create(
            &b.owner,
            &b.org,
            "conversations",
            json!({"name": "Intro", "agent_id": a}),
        )
        .await;
        let r = ask(
            &b.owner,
            &b.org,
            &conv,
            "Hello. My city is Lyon. My team is Blue",
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let started = Instant::now();
    let facts = loop {
        let r = b
            .owner
            .get(&b.path(&format!("/agents/{noter}/memory")))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["items"].as_array().is_some_and(|i| i.len() == 2) {
            break r.body["items"].clone();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "nothing remembered: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pairs: BTreeSet<(String, String)> = facts
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["source_conversation_id"].is_string(), "{f}");
            (
                f["key"].as_str().unwrap().into(),
                f["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        BTreeSet::from([
            ("city".into(), "Lyon".into()),
            ("team".into(), "Blue".into())
        ])
    );
    let plain_facts = b
        .owner
        .get(&b.path(&format!("/agents/{plain}/memory")))
        .await;
    assert_eq!(
        plain_facts.body["items"],
        json!([]),
        "extraction ran while off"
    );
    // Two replies and one extraction, each metered under its service.
    let started = Instant::now();
    loop {
        let events = usage_events(&b.app, &b.org);
        let memory = events.iter().filter(|e| e.0 == "agent.memory").count();
        let chats = events.iter().filter(|e| e.0 == "agent.chat").count();
        if memory == 1 && chats == 2 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
