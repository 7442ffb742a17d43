//! Workflow runs against a real mock provider and a real local tool server: agent steps
//! through the metered model path, tool steps with schema checks and limits, conditions,
//! cancelling, quota running out mid-run, who sees which run, and restarts mid-step.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mock_llm::MockLlm;
use crate::common::{Session, TestApp, env_mock};
use crate::org_fixture::{create_org, invite_and_join, new_person};

/// What the tool server was sent: (path, body or query).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A real HTTP server standing in for the tools a workflow calls.
struct Tools {
    base: String,
    calls: Calls,
}

impl Tools {
    async fn start() -> Tools {
        let calls: Calls = Arc::default();
        let app = Router::new()
            .route("/echo", post(echo))
            .route("/slow", post(slow_post).get(slow_get))
            .route("/redirect", post(redirect))
            .route("/big", post(big))
            .route("/fail", post(fail))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Tools {
            base: format!("http://{addr}"),
            calls,
        }
    }

    fn seen(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

async fn echo(State(c): State<Calls>, axum::Json(body): axum::Json<Value>) -> Response {
    c.lock().unwrap().push(("/echo".into(), body.clone()));
    axum::Json(json!({"received": body})).into_response()
}

async fn slow_post(State(c): State<Calls>, axum::Json(body): axum::Json<Value>) -> Response {
    c.lock().unwrap().push(("/slow".into(), body));
    tokio::time::sleep(Duration::from_secs(3)).await;
    "slow answer".into_response()
}

async fn slow_get(
    State(c): State<Calls>,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    c.lock().unwrap().push(("/slow-get".into(), json!(q)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    format!("looked up {}", q.get("city").cloned().unwrap_or_default()).into_response()
}

async fn redirect() -> Response {
    (
        AxStatus::FOUND,
        [("location", "http://elsewhere.example/steal")],
    )
        .into_response()
}

async fn big() -> Response {
    "x".repeat(2 << 20).into_response()
}

async fn fail() -> Response {
    (AxStatus::SERVICE_UNAVAILABLE, "down for maintenance").into_response()
}

struct Bed {
    app: TestApp,
    mock: MockLlm,
    tools: Tools,
    owner: Session,
    org: String,
}

impl Bed {
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org)
    }
}

async fn bed() -> Bed {
    let mock = MockLlm::start().await;
    let tools = Tools::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let (_, owner) = new_person(&app, "owner@flows.example", "Flow Owner").await;
    let (org, _) = create_org(&owner, "Flows", "flows").await;
    Bed {
        app,
        mock,
        tools,
        owner,
        org,
    }
}

async fn make(s: &Session, b: &Bed, ty: &str, body: Value) -> String {
    let r = s.post(&b.path(&format!("/{ty}")), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn agent(b: &Bed) -> String {
    make(
        &b.owner,
        b,
        "agents",
        json!({"name": "Summariser", "visibility": "organization", "model": "gpt-4o-mini",
               "system_prompt": "You summarise."}),
    )
    .await
}

async fn tool(b: &Bed, name: &str, config: Value, schema: Value) -> String {
    make(
        &b.owner,
        b,
        "tools",
        json!({"name": name, "visibility": "organization", "config": config, "input_schema": schema}),
    )
    .await
}

async fn workflow(s: &Session, b: &Bed, steps: Value) -> String {
    make(
        s,
        b,
        "workflows",
        json!({"name": "Flow", "visibility": "organization", "steps": steps}),
    )
    .await
}

async fn start(s: &Session, b: &Bed, wf: &str, input: Value) -> String {
    let r = s
        .post(
            &b.path(&format!("/workflows/{wf}/runs")),
            json!({"input": input}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["status"], "queued");
    r.body["id"].as_str().unwrap().to_string()
}

/// Polls the run until `done` holds (at most 20 s).
async fn until(s: &Session, b: &Bed, wf: &str, run: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        let r = s.get(&b.path(&format!("/workflows/{wf}/runs/{run}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if done(&r.body) {
            return r.body;
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run did not get there: {last}");
}

fn finished(v: &Value) -> bool {
    !matches!(v["status"].as_str(), Some("queued" | "running"))
}

fn statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_run_asks_the_agent_tests_a_condition_skips_ahead_and_calls_the_tool_with_the_outputs() {
    let b = bed().await;
    let a = agent(&b).await;
    let never = tool(
        &b,
        "Never",
        json!({"url": format!("{}/fail", b.tools.base)}),
        json!({}),
    )
    .await;
    let echo = tool(
        &b,
        "Echo",
        json!({"url": format!("{}/echo", b.tools.base)}),
        json!({"type": "object", "properties": {"summary": {"type": "string"}, "n": {"type": "integer"}},
               "required": ["summary", "n"]}),
    )
    .await;
    let wf = workflow(
        &b.owner,
        &b,
        json!([
            {"kind": "agent", "name": "summarise", "agent_id": a, "prompt": "Summarise {{input.text}} in {{input.n}} words"},
            {"kind": "condition", "name": "mocked?", "if": {"left": "{{steps.1.output}}", "op": "contains", "right": "MOCK"}, "goto": 4},
            {"kind": "tool", "name": "never", "tool_id": never, "input": {}},
            {"kind": "tool", "name": "report", "tool_id": echo, "input": {"summary": "{{steps.1.output}}", "n": "{{input.n}}"}}
        ]),
    )
    .await;
    let run = start(
        &b.owner,
        &b,
        &wf,
        json!({"text": "the engine's cards", "n": 3}),
    )
    .await;
    let done = until(&b.owner, &b, &wf, &run, finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        statuses(&done),
        ["succeeded", "succeeded", "skipped", "succeeded"]
    );
    let steps = done["steps"].as_array().unwrap();
    assert_eq!(steps[0]["index"], 1);
    assert_eq!(steps[0]["name"], "summarise");
    assert_eq!(steps[0]["input"], "Summarise the engine's cards in 3 words");
    assert_eq!(steps[0]["output"], "Hello from the mock");
    assert_eq!(steps[0]["input_tokens"], 11);
    assert_eq!(steps[0]["output_tokens"], 7);
    assert!(steps[0]["cost_micros"].as_i64().unwrap() > 0, "{done}");
    assert!(steps[0]["duration_ms"].is_i64());
    assert_eq!(steps[1]["output"], "true");
    // The agent was asked with its own system prompt and the filled-in template.
    let asked: Vec<Value> = b
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/chat/completions")
        .map(|r| r.body["messages"].clone())
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let msgs = asked[0].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert!(
        msgs[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("You summarise.")
    );
    assert_eq!(
        msgs.last().unwrap()["content"],
        "Summarise the engine's cards in 3 words"
    );
    // The tool got the earlier output as text and the input's number as a number.
    assert_eq!(
        b.tools.seen("/echo"),
        vec![json!({"summary": "Hello from the mock", "n": 3})]
    );
    assert!(
        b.tools.seen("/fail").is_empty(),
        "the skipped step called its tool"
    );
    assert_eq!(
        serde_json::from_str::<Value>(done["output"].as_str().unwrap()).unwrap(),
        json!({"received": {"summary": "Hello from the mock", "n": 3}})
    );
    assert_eq!(done["input_tokens"], 11);

    // The agent step is metered as a workflow step, and the run is audited.
    let mut served = Value::Null;
    for _ in 0..100 {
        let u = b.owner.get(&b.path("/usage")).await;
        served = u.body["by_endpoint"].clone();
        if served.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served[0]["endpoint"], "workflow.step", "{served}");
    assert_eq!(served[0]["totals"]["requests"], 1, "{served}");
    let audit = b.owner.get(&b.path("/audit?limit=50")).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"workflow.run_started"), "{actions:?}");
    let fin = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "workflow.run_finished")
        .unwrap_or_else(|| panic!("no run_finished entry: {actions:?}"));
    assert_eq!(fin["details"]["status"], "succeeded");
    assert_eq!(fin["details"]["run_id"], run.as_str());

    // Listed newest first, with its steps.
    let second = start(&b.owner, &b, &wf, json!({"text": "again", "n": 1})).await;
    until(&b.owner, &b, &wf, &second, finished).await;
    let list = b
        .owner
        .get(&b.path(&format!("/workflows/{wf}/runs?limit=1")))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["items"][0]["id"], second.as_str());
    let cursor = list.body["next_cursor"].as_str().unwrap();
    let page2 = b
        .owner
        .get(&b.path(&format!("/workflows/{wf}/runs?limit=1&cursor={cursor}")))
        .await;
    assert_eq!(page2.body["items"][0]["id"], run.as_str());
    assert_eq!(page2.body["items"][0]["steps"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn tool_steps_check_their_input_and_hold_time_size_redirect_and_self_call_limits() {
    let b = bed().await;
    let strict = tool(
        &b,
        "Strict",
        json!({"url": format!("{}/echo", b.tools.base)}),
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
    )
    .await;
    let slow = tool(
        &b,
        "Slow",
        json!({"url": format!("{}/slow", b.tools.base), "timeout_secs": 1}),
        json!({}),
    )
    .await;
    let redirect = tool(
        &b,
        "Moved",
        json!({"url": format!("{}/redirect", b.tools.base)}),
        json!({}),
    )
    .await;
    let big = tool(
        &b,
        "Big",
        json!({"url": format!("{}/big", b.tools.base)}),
        json!({}),
    )
    .await;
    let down = tool(
        &b,
        "Down",
        json!({"url": format!("{}/fail", b.tools.base)}),
        json!({}),
    )
    .await;
    let me = tool(
        &b,
        "Myself",
        json!({"url": b.app.url("/healthz")}),
        json!({}),
    )
    .await;
    let cases = [
        (
            strict.as_str(),
            json!({"n": "{{input}}"}),
            "does not match the tool's schema",
        ),
        (slow.as_str(), json!({}), "did not answer within 1 s"),
        (
            redirect.as_str(),
            json!({}),
            "redirect to http://elsewhere.example/steal, which is not followed",
        ),
        (big.as_str(), json!({}), "more than 1 MiB"),
        (
            down.as_str(),
            json!({}),
            "the tool answered 503: down for maintenance",
        ),
        (me.as_str(), json!({}), "this server itself"),
    ];
    for (tool_id, input, says) in cases {
        let wf = workflow(
            &b.owner,
            &b,
            json!([{"kind": "tool", "name": "call", "tool_id": tool_id, "input": input}]),
        )
        .await;
        let run = start(&b.owner, &b, &wf, json!("not a number")).await;
        let done = until(&b.owner, &b, &wf, &run, finished).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(statuses(&done), ["failed"]);
        let error = done["steps"][0]["error"].as_str().unwrap();
        assert!(error.contains(says), "{says:?} not in {error:?}");
        let run_error = done["error"].as_str().unwrap();
        assert!(
            run_error.starts_with("step 1 (call) failed: "),
            "{run_error}"
        );
    }
    assert!(
        b.tools.seen("/echo").is_empty(),
        "input refused by the schema was sent"
    );
}

#[tokio::test]
async fn quota_running_out_mid_run_stops_it_at_the_step_with_the_gateways_reason() {
    let b = bed().await;
    let a = agent(&b).await;
    let echo = tool(
        &b,
        "Echo",
        json!({"url": format!("{}/echo", b.tools.base)}),
        json!({}),
    )
    .await;
    let wf = workflow(
        &b.owner,
        &b,
        json!([
            {"kind": "tool", "name": "fetch", "tool_id": echo, "input": {"q": "{{input}}"}},
            {"kind": "agent", "name": "answer", "agent_id": a, "prompt": "Answer {{steps.1.output}}"},
            {"kind": "agent", "name": "check", "agent_id": a, "prompt": "Check {{steps.2.output}}"},
            {"kind": "tool", "name": "after", "tool_id": echo, "input": {"q": "after"}}
        ]),
    )
    .await;
    let q = b
        .owner
        .send(
            Method::PATCH,
            &b.path("/quota"),
            Some(json!({"monthly_credits_micros": 1})),
        )
        .await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text);
    let run = start(&b.owner, &b, &wf, json!("refunds")).await;
    let done = until(&b.owner, &b, &wf, &run, finished).await;
    assert_eq!(done["status"], "failed", "{done}");
    // The first answer spends the organization's 1 µ$ of credit; the second is refused.
    assert_eq!(statuses(&done), ["succeeded", "succeeded", "failed"]);
    let why = done["error"].as_str().unwrap();
    assert!(
        why.starts_with("step 3 (check) failed: insufficient_quota: "),
        "{why}"
    );
    assert_eq!(
        b.tools.seen("/echo").len(),
        1,
        "the step after the refusal ran"
    );
    let asked = b
        .mock
        .requests()
        .iter()
        .filter(|r| r.path == "/chat/completions")
        .count();
    assert_eq!(asked, 1, "a refused call reached the provider");
}

#[tokio::test]
async fn a_running_run_is_cancelled_at_once_and_an_ended_one_cannot_be() {
    let b = bed().await;
    let slow = tool(
        &b,
        "Slow",
        json!({"url": format!("{}/slow", b.tools.base), "timeout_secs": 30}),
        json!({}),
    )
    .await;
    let wf = workflow(
        &b.owner,
        &b,
        json!([{"kind": "tool", "name": "wait", "tool_id": slow, "input": {}},
               {"kind": "tool", "name": "never", "tool_id": slow, "input": {}}]),
    )
    .await;
    let run = start(&b.owner, &b, &wf, json!({})).await;
    until(&b.owner, &b, &wf, &run, |v| {
        v["status"] == "running" && !v["steps"].as_array().unwrap().is_empty()
    })
    .await;
    let asked = std::time::Instant::now();
    let c = b
        .owner
        .post(
            &b.path(&format!("/workflows/{wf}/runs/{run}/cancel")),
            json!({}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    let done = until(&b.owner, &b, &wf, &run, finished).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the step was waited for"
    );
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(statuses(&done), ["cancelled"]);
    let again = b
        .owner
        .post(
            &b.path(&format!("/workflows/{wf}/runs/{run}/cancel")),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "run_finished");
}

#[tokio::test]
async fn runs_are_seen_by_their_starter_and_the_workflows_editors_and_need_llm_use() {
    let b = bed().await;
    let echo = tool(
        &b,
        "Echo",
        json!({"url": format!("{}/echo", b.tools.base)}),
        json!({}),
    )
    .await;
    let wf = workflow(
        &b.owner,
        &b,
        json!([{"kind": "tool", "tool_id": echo, "input": {"x": 1}}]),
    )
    .await;
    let (_, m1) = new_person(&b.app, "one@flows.example", "Member One").await;
    let (_, m2) = new_person(&b.app, "two@flows.example", "Member Two").await;
    let (_, viewer) = new_person(&b.app, "viewer@flows.example", "Viewer").await;
    invite_and_join(&b.owner, &b.org, "one@flows.example", "member", &m1).await;
    invite_and_join(&b.owner, &b.org, "two@flows.example", "member", &m2).await;
    invite_and_join(&b.owner, &b.org, "viewer@flows.example", "viewer", &viewer).await;
    let run = start(&m1, &b, &wf, json!("mine")).await;
    until(&m1, &b, &wf, &run, finished).await;
    let by_owner = b
        .owner
        .get(&b.path(&format!("/workflows/{wf}/runs/{run}")))
        .await;
    assert_eq!(
        by_owner.status,
        StatusCode::OK,
        "the workflow's owner sees every run"
    );
    let by_other = m2
        .get(&b.path(&format!("/workflows/{wf}/runs/{run}")))
        .await;
    assert_eq!(by_other.status, StatusCode::NOT_FOUND, "{}", by_other.text);
    let list = m2.get(&b.path(&format!("/workflows/{wf}/runs"))).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.text);
    let cancel = m2
        .post(
            &b.path(&format!("/workflows/{wf}/runs/{run}/cancel")),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let refused = viewer
        .post(
            &b.path(&format!("/workflows/{wf}/runs")),
            json!({"input": 1}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    // Bad input: a clear error, nothing started.
    let empty = workflow(&b.owner, &b, json!([])).await;
    let r = b
        .owner
        .post(&b.path(&format!("/workflows/{empty}/runs")), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "no_steps");
    let huge = "x".repeat(70 * 1024);
    let r = b
        .owner
        .post(
            &b.path(&format!("/workflows/{wf}/runs")),
            json!({"input": huge}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["fields"]["input"].is_string(), "{}", r.text);
    let r = b
        .owner
        .post(
            &b.path(&format!("/workflows/{wf}/runs")),
            json!({"inputs": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = b
        .owner
        .get(&b.path(&format!("/workflows/{wf}/runs/not-a-run")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b
        .owner
        .post(&b.path(&format!("/agents/{wf}/runs")), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let listed = b.owner.get(&b.path(&format!("/workflows/{wf}/runs"))).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_restart_mid_step_repeats_a_safe_call_once_and_interrupts_an_unsafe_one() {
    let mock = MockLlm::start().await;
    let tools = Tools::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let (_, owner) = new_person(&app, "owner@flows.example", "Flow Owner").await;
    let (org, _) = create_org(&owner, "Flows", "flows").await;
    let b = Bed {
        app,
        mock,
        tools,
        owner,
        org,
    };
    let lookup = tool(
        &b,
        "Lookup",
        json!({"url": format!("{}/slow", b.tools.base), "method": "GET", "timeout_secs": 20}),
        json!({}),
    )
    .await;
    let post_tool = tool(
        &b,
        "Submit",
        json!({"url": format!("{}/slow", b.tools.base), "timeout_secs": 20}),
        json!({}),
    )
    .await;
    let safe = workflow(&b.owner, &b, json!([{"kind": "tool", "name": "lookup", "tool_id": lookup, "input": {"city": "{{input}}"}}])).await;
    let unsafe_wf = workflow(
        &b.owner,
        &b,
        json!([{"kind": "tool", "name": "submit", "tool_id": post_tool, "input": {"v": 1}}]),
    )
    .await;
    let r1 = start(&b.owner, &b, &safe, json!("Lyon")).await;
    let r2 = start(&b.owner, &b, &unsafe_wf, json!(null)).await;
    for (wf, run) in [(&safe, &r1), (&unsafe_wf, &r2)] {
        until(&b.owner, &b, wf, run, |v| {
            v["steps"].as_array().is_some_and(|s| !s.is_empty())
        })
        .await;
    }
    let Bed {
        app,
        mock,
        tools,
        org,
        ..
    } = b;
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |c| env_mock(c, &mock)).await;
    let owner = app.login("owner@flows.example").await;
    let b = Bed {
        app,
        mock,
        tools,
        owner,
        org,
    };
    let done = until(&b.owner, &b, &safe, &r1, finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["attempts"], 2, "{done}");
    assert_eq!(done["output"], "looked up Lyon");
    assert_eq!(b.tools.seen("/slow-get").len(), 2);
    let done = until(&b.owner, &b, &unsafe_wf, &r2, finished).await;
    assert_eq!(done["status"], "interrupted", "{done}");
    assert_eq!(statuses(&done), ["interrupted"]);
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("the server stopped during step 1 (submit)"),
        "{done}"
    );
    assert_eq!(b.tools.seen("/slow").len(), 1, "a POST was sent twice");
}
