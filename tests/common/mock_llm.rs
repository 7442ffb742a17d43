//! A real local HTTP server speaking the OpenAI format, standing in for an LLM provider.
//! The model name picks the behaviour:
//! - anything else: a normal answer with a `usage` block (11 prompt, 7 completion tokens);
//! - `fail-401`: 401 whose message echoes the key it was sent, as some providers do;
//! - `GET /models`: two models, or 401 echoing the key when the key contains `-bad-`;
//! - `fail-500`: 500; `slow`: answers after 2 s; `redirect`: 307 to the same endpoint;
//! - `no-usage`: a normal answer without `usage`;
//! - a memory extraction (system prompt "You keep notes about the user…"): JSON facts for
//!   each "my <key> is <value>" the user said;
//! - streams (`"stream": true`): 5 content chunks (`stream-slow`: 40 chunks, 50 ms apart),
//!   then the usage chunk when `stream_options.include_usage` is set, then `[DONE]`;
//!   `stream-break` breaks the connection after 3 chunks;
//! - embeddings: [`embed`] of each input (a hashed bag of words, 384 dimensions);
//!   `slow-embed` answers after 300 ms; an input with [`EMBED_FAIL`] gets a 500.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: String,
    pub path: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct MockLlm {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockLlm {
    /// Starts the mock on a free port; it lives as long as the test's runtime.
    pub async fn start() -> MockLlm {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .with_state(seen.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockLlm {
            base: format!("http://{addr}/v1"),
            seen,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type Shared = Arc<Mutex<Vec<Seen>>>;

fn remember(seen: &Shared, headers: &HeaderMap, path: &str, body: &Value) {
    seen.lock().unwrap().push(Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        path: path.to_string(),
        body: body.clone(),
    });
}

async fn chat(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    remember(&seen, &headers, "/chat/completions", &body);
    let requested = body["model"].as_str().unwrap_or("").to_string();
    // An alias, as real providers have them: the answer names the model that served it.
    let model = match requested.as_str() {
        "gpt-test-latest" => "gpt-test".to_string(),
        _ => requested,
    };
    match model.as_str() {
        "fail-401" => {
            let key = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim_start_matches("Bearer ")
                .to_string();
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"message": format!("Incorrect API key provided: {key}"), "type": "invalid_request_error", "code": "invalid_api_key"}})),
            )
                .into_response();
        }
        "fail-500" => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
        }
        "redirect" => {
            // Back to this very endpoint: a client that follows it would call twice.
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", "/v1/chat/completions")],
            )
                .into_response();
        }
        "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        _ => {}
    }
    if body["stream"].as_bool() == Some(true) {
        let (n, pause) = if model == "stream-slow" {
            (40, Duration::from_millis(50))
        } else {
            (5, Duration::from_millis(5))
        };
        let usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        let stream = async_stream(model, n, pause, usage);
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    // A memory extraction (its system prompt asks for notes): the facts the user stated as
    // "my <key> is <value>".
    let content = if body["messages"][0]["content"]
        .as_str()
        .is_some_and(|c| c.starts_with("You keep notes about the user"))
    {
        let said = body["messages"][1]["content"].as_str().unwrap_or("");
        let facts: Vec<Value> = said
            .split(['.', '\n'])
            .filter_map(|s| {
                let s = s.trim();
                let rest = s.strip_prefix("User: ").unwrap_or(s);
                let rest = rest
                    .strip_prefix("My ")
                    .or_else(|| rest.strip_prefix("my "))?;
                let (key, value) = rest.split_once(" is ")?;
                Some(json!({"key": key.trim(), "value": value.trim()}))
            })
            .collect();
        json!({"facts": facts}).to_string()
    } else {
        "Hello from the mock".to_string()
    };
    let mut answer = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    });
    if model == "no-usage" {
        answer.as_object_mut().unwrap().remove("usage");
    }
    axum::Json(answer).into_response()
}

fn async_stream(
    model: String,
    n: usize,
    pause: Duration,
    usage: bool,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(0usize, move |i| {
        let model = model.clone();
        async move {
            if i > n + 1 {
                return None;
            }
            if model == "stream-break" && i == 3 {
                return Some((Err(std::io::Error::other("provider broke off")), n + 2));
            }
            tokio::time::sleep(pause).await;
            let line = if i < n {
                let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]});
                format!("data: {chunk}\n\n")
            } else if i == n {
                if usage {
                    let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                        "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": n, "total_tokens": 11 + n}});
                    format!("data: {chunk}\n\n")
                } else {
                    String::new()
                }
            } else {
                "data: [DONE]\n\n".to_string()
            };
            Some((Ok(line), i + 1))
        }
    })
}

/// Dimensions of the mock's embeddings, as all-MiniLM-L6-v2 has.
pub const DIMS: usize = 384;

/// A deterministic embedding of `text`: a hashed bag of its lower-cased words, normalised,
/// so texts sharing words are close and retrieval results are predictable.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        v[(h % DIMS as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Inputs containing this word get a 500, to fail indexing on purpose.
pub const EMBED_FAIL: &str = "embedfail";

async fn embeddings(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    remember(&seen, &headers, "/embeddings", &body);
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        _ => vec![String::new()],
    };
    if inputs.iter().any(|i| i.contains(EMBED_FAIL)) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "embedding exploded").into_response();
    }
    if body["model"] == "slow-embed" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tokens: usize = inputs
        .iter()
        .map(|i| i.split_whitespace().count().max(1))
        .sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

async fn models(State(seen): State<Shared>, headers: HeaderMap) -> Response {
    remember(&seen, &headers, "/models", &Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.contains("-bad-") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"error": {"message": format!("Incorrect API key provided: {auth}")}}),
            ),
        )
            .into_response();
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model"},
        {"id": "gpt-4o", "object": "model"},
    ]}))
    .into_response()
}
