//! The OpenAI-compatible gateway (`/v1/...`), authenticated with `xa_` API tokens: the
//! token's organization decides the key, the models and the usage it is metered to.
//! Upstream bodies pass through unchanged; streams are forwarded chunk by chunk as they
//! arrive and metered when they end, also when the client goes away mid-stream.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::db::cache::GenerationCache;
use crate::http::extract::{AuthKind, CurrentUser};
use crate::http::state::AppState;
use crate::services::gateway::{self, Call, Refusal, Tokens};
use crate::services::quota::{self, Reservation};

/// Chat requests carry whole conversations; larger than the API's default body limit.
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Largest upstream error body read to map it (the rest is dropped).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// One HTTP client for every upstream: pooled connections, bounded connect and read
/// times, no overall deadline (streams may run for minutes).
pub fn upstream_client() -> Result<reqwest::Client, String> {
    // The TLS backend is rustls with ring, the same one the mailer uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(300))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        // A provider (or a webhook receiver) that redirects gets its 3xx reported, not
        // followed: the key would be sent on to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))
}

struct GatewayError(Refusal);

impl From<Refusal> for GatewayError {
    fn from(r: Refusal) -> Self {
        GatewayError(r)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let r = self.0;
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let body =
            json!({"error": {"message": r.message, "type": r.kind, "code": r.code, "param": null}});
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = r.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

type GResult<T> = Result<T, GatewayError>;

/// Token holders of recent calls with their membership, by token hash, until the
/// database's generation moves (a revoked token, a removed or changed member, a disabled
/// user: every such change is a write job) and for a minute at most. Expiry is checked
/// on every call.
pub struct Callers(GenerationCache<String, (CurrentUser, crate::db::OrgContext)>);

impl Default for Callers {
    fn default() -> Self {
        Callers(GenerationCache::new(Duration::from_secs(60), 100_000))
    }
}

fn unauthorized() -> GatewayError {
    Refusal::from(crate::error::AppError::Unauthorized)
        .with_message("missing or invalid API key: send `Authorization: Bearer xa_...`")
        .into()
}

/// The caller: an API token only (the gateway is for programs, not browser sessions).
async fn token_caller(
    s: &AppState,
    req: Request,
) -> GResult<(CurrentUser, crate::db::OrgContext, Bytes)> {
    let (mut parts, body) = req.into_parts();
    let hash = crate::http::extract::bearer(&parts.headers)
        .filter(|t| t.starts_with(crate::auth::API_TOKEN_PREFIX))
        .map(crate::auth::token_hash)
        .ok_or_else(|| {
            if parts.headers.contains_key(header::COOKIE) {
                Refusal::from(crate::error::AppError::Unauthorized)
                    .with_message("the gateway takes API tokens (xa_...), not browser sessions")
                    .into()
            } else {
                unauthorized()
            }
        })?;
    let now = crate::domain::now();
    // Read before the lookups below, so that a change committed meanwhile drops them.
    let generation = s.db.generation();
    let (user, ctx) = match s.callers.0.get(&hash, generation) {
        Some((mut user, ctx)) => {
            let AuthKind::Token(t) = &mut user.kind else {
                return Err(unauthorized());
            };
            if t.expired(now) {
                return Err(unauthorized());
            }
            if let Some(stamp) = crate::services::identity::touch_token_if_due(
                &s.db,
                t.token_id,
                t.last_used_at.as_deref(),
                now,
            ) {
                t.last_used_at = Some(stamp);
                s.callers
                    .0
                    .put(hash, generation, (user.clone(), ctx.clone()));
            }
            let Ok(meta) = crate::services::ClientMeta::from_request_parts(&mut parts, s).await;
            user.meta = meta;
            (user, ctx)
        }
        None => {
            let user = CurrentUser::from_request_parts(&mut parts, s)
                .await
                .map_err(|_| unauthorized())?;
            let AuthKind::Token(t) = &user.kind else {
                return Err(unauthorized());
            };
            let ctx = user
                .org_context(s, t.organization_id.to_string())
                .await
                .map_err(Refusal::from)?;
            s.callers
                .0
                .put(hash, generation, (user.clone(), ctx.clone()));
            (user, ctx)
        }
    };
    let bytes = axum::body::to_bytes(Body::new(body), BODY_LIMIT)
        .await
        .map_err(|_| Refusal::invalid("the request body is too large or unreadable"))?;
    Ok((user, ctx, bytes))
}

fn token_id(user: &CurrentUser) -> Option<String> {
    match &user.kind {
        AuthKind::Token(t) => Some(t.token_id.to_string()),
        AuthKind::Session(_) => None,
    }
}

fn parse_body(bytes: &Bytes) -> GResult<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Refusal::invalid("the body must be a JSON object").into()),
    }
}

/// The parts of an answer (or of one stream chunk) that metering reads; serde skips the
/// rest without building it (a completion can be large).
#[derive(serde::Deserialize)]
struct Metered<'a> {
    #[serde(default)]
    usage: Option<UsageBlock>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(serde::Deserialize)]
struct UsageBlock {
    #[serde(default)]
    prompt_tokens: Option<i64>,
    #[serde(default)]
    completion_tokens: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

impl Metered<'_> {
    fn tokens(&self) -> Option<Tokens> {
        self.usage.as_ref().map(|u| Tokens {
            input: u.prompt_tokens.unwrap_or(0),
            output: u.completion_tokens.unwrap_or(0),
        })
    }

    /// Parses `body`; a shape the typed parse does not expect is read the slow way, so
    /// that an odd but valid answer is still metered from its own figures.
    fn read(body: &[u8]) -> Seen {
        if let Ok(m) = serde_json::from_slice::<Metered<'_>>(body) {
            let chars = m
                .choices
                .iter()
                .flatten()
                .filter_map(|c| c.delta.as_ref().and_then(|d| d.content.as_deref()))
                .map(str::len)
                .sum();
            return Seen {
                tokens: m.tokens(),
                chars,
                model: m.model.map(|s| s.into_owned()),
            };
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Seen::default();
        };
        let u = &v["usage"];
        let tokens = u.is_object().then(|| Tokens {
            input: u["prompt_tokens"].as_i64().unwrap_or(0),
            output: u["completion_tokens"].as_i64().unwrap_or(0),
        });
        let chars = v["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["delta"]["content"].as_str())
            .map(str::len)
            .sum();
        Seen {
            tokens,
            chars,
            model: v["model"].as_str().map(str::to_string),
        }
    }
}

/// What metering read from an answer or one stream chunk.
#[derive(Default)]
struct Seen {
    tokens: Option<Tokens>,
    /// Characters of delivered text (stream deltas).
    chars: usize,
    /// The model the provider says served the call.
    model: Option<String>,
}

/// The length of `v` as JSON text, counted without writing the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// About four characters per token: the estimate used when the upstream reports nothing.
fn estimate_tokens(chars: usize) -> i64 {
    chars.div_ceil(4) as i64
}

async fn send_upstream(
    upstream: &reqwest::Client,
    call: &Call,
    path: &str,
    body: &serde_json::Map<String, Value>,
) -> GResult<reqwest::Response> {
    let url = format!("{}{path}", call.base_url.trim_end_matches('/'));
    let req = upstream.post(&url);
    let req = match &call.api_key {
        Some(k) => req.bearer_auth(k.expose()),
        None => req,
    };
    req.json(body).send().await.map_err(|e| {
        // reqwest errors name the URL, never the Authorization header.
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not be reached"
        } else {
            "failed"
        };
        GatewayError(Refusal {
            status: 502,
            kind: "upstream_error",
            code: "upstream_unavailable",
            message: format!("the provider {} {what}", call.provider),
            retry_after_secs: None,
        })
    })
}

/// An upstream error as an OpenAI-style error naming the provider. The upstream's own
/// message is kept when it is a clean OpenAI error, with any echo of the key removed.
async fn upstream_failure(call: &Call, res: reqwest::Response) -> GatewayError {
    let status = res.status().as_u16();
    let mut raw = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        raw.extend_from_slice(&chunk);
        if raw.len() > ERROR_BODY_LIMIT {
            break;
        }
    }
    let upstream_message = serde_json::from_slice::<Value>(&raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .map(|m| match &call.api_key {
            Some(k) => m.replace(k.expose(), "[redacted]"),
            None => m,
        });
    let (out_status, kind, code) = match status {
        401 | 403 => (502, "upstream_error", "upstream_auth_failed"),
        404 => (404, "invalid_request_error", "model_not_found"),
        400 | 422 => (400, "invalid_request_error", "upstream_rejected"),
        429 => (429, "rate_limit_error", "upstream_rate_limited"),
        _ => (502, "upstream_error", "upstream_error"),
    };
    let mut message = format!("the provider {} answered {status}", call.provider);
    if let Some(m) = upstream_message {
        message.push_str(": ");
        message.push_str(&m.chars().take(500).collect::<String>());
    }
    GatewayError(Refusal {
        status: out_status,
        kind,
        code,
        message,
        retry_after_secs: None,
    })
}

/// One admitted call on its way: what metering needs once the outcome is known. The
/// quota reservation is released only after the call's usage is committed.
struct Flight {
    /// What the call needs of the server after admission (not the whole state: a flight
    /// is made per call).
    meter: gateway::Meter,
    upstream: reqwest::Client,
    clock: crate::domain::Clock,
    call: Call,
    token_id: Option<String>,
    endpoint: &'static str,
    started: Instant,
    held: Reservation,
}

impl Flight {
    /// Hands the outcome to the meter; the reservation goes with it and ends when the
    /// usage is committed. The answer does not wait for that commit.
    fn record(self, status: u16, tokens: Tokens, served_model: Option<String>) {
        let meter = self.meter.clone();
        meter.submit(gateway::Metered {
            latency_ms: self.started.elapsed().as_millis() as i64,
            call: self.call,
            token_id: self.token_id,
            endpoint: self.endpoint,
            status,
            tokens,
            served_model,
            at: self.clock.now(),
            reservation: Some(self.held),
        });
    }

    /// Meters a failed call (no tokens).
    fn fail(self, status: u16) {
        self.record(status, Tokens::default(), None);
    }

    /// Sends the request upstream; a failure is metered and mapped.
    async fn send(
        self,
        path: &str,
        body: &serde_json::Map<String, Value>,
    ) -> GResult<(Self, reqwest::Response)> {
        match send_upstream(&self.upstream, &self.call, path, body).await {
            Ok(res) if res.status().is_success() => Ok((self, res)),
            Ok(res) => {
                let status = res.status().as_u16();
                let err = upstream_failure(&self.call, res).await;
                self.fail(status);
                Err(err)
            }
            Err(e) => {
                self.fail(502);
                Err(e)
            }
        }
    }
}

/// Checks the body, picks provider and key, and reserves against the quota.
async fn take_off(
    s: &AppState,
    req: Request,
    endpoint: &'static str,
    input_field: &str,
) -> GResult<(Flight, serde_json::Map<String, Value>, usize)> {
    let (user, ctx, bytes) = token_caller(s, req).await?;
    let mut body = parse_body(&bytes)?;
    let input_chars = match body.get(input_field) {
        Some(v) if input_field != "messages" || v.is_array() => json_len(v),
        _ if input_field == "messages" => {
            return Err(Refusal::invalid("`messages` must be an array").into());
        }
        _ => return Err(Refusal::invalid(format!("`{input_field}` is required")).into()),
    };
    let requested = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (call, limits) = gateway::prepare(
        &s.db,
        &s.setups,
        &s.keyring,
        &s.config.env_providers,
        &ctx,
        requested.as_deref(),
    )?;
    body.insert("model".into(), Value::String(call.upstream_model.clone()));
    let estimate = if endpoint == "embeddings" {
        Tokens {
            input: estimate_tokens(input_chars),
            output: 0,
        }
    } else {
        quota::estimate(input_chars, &body)
    };
    let held = s
        .gate
        .admit(&s.db, &call.ctx, &limits, estimate, s.config.clock.now())?;
    let flight = Flight {
        meter: s.meter.clone(),
        upstream: s.upstream.clone(),
        clock: s.config.clock.clone(),
        call,
        token_id: token_id(&user),
        endpoint,
        started: Instant::now(),
        held,
    };
    Ok((flight, body, input_chars))
}

async fn chat(State(s): State<AppState>, req: Request) -> Response {
    chat_inner(s, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_inner(s: AppState, req: Request) -> GResult<Response> {
    let (flight, mut body, prompt_chars) =
        take_off(&s, req, "chat.completions", "messages").await?;
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if streaming {
        // Ask for the usage block at the end of the stream, keeping the client's options.
        let opts = body.entry("stream_options").or_insert_with(|| json!({}));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let (flight, res) = flight.send("/chat/completions", &body).await?;
    if !streaming {
        return passthrough_metered(flight, res, prompt_chars).await;
    }
    let stream = MeteredStream {
        inner: Box::pin(res.bytes_stream()),
        meter: StreamMeter {
            flight: Some(flight),
            prompt_chars,
            line: Vec::new(),
            delivered_chars: 0,
            usage: None,
            served_model: None,
            finished: false,
            upstream_failed: false,
        },
    };
    let mut out = Response::new(Body::from_stream(stream));
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(out)
}

async fn embeddings(State(s): State<AppState>, req: Request) -> Response {
    let out = async {
        let (flight, body, input_chars) = take_off(&s, req, "embeddings", "input").await?;
        let (flight, res) = flight.send("/embeddings", &body).await?;
        passthrough_metered(flight, res, input_chars).await
    }
    .await;
    out.unwrap_or_else(IntoResponse::into_response)
}

async fn models(State(s): State<AppState>, req: Request) -> Response {
    let out = async {
        let (_, ctx, _) = token_caller(&s, req).await?;
        let list = gateway::models(
            &s.db,
            &s.setups,
            &s.keyring,
            &s.config.env_providers,
            &s.upstream,
            &ctx,
        )
        .await?;
        let data: Vec<Value> = list
            .iter()
            .map(|m| json!({"id": m.id, "object": "model", "owned_by": m.owned_by}))
            .collect();
        Ok::<_, GatewayError>(axum::Json(json!({"object": "list", "data": data})).into_response())
    }
    .await;
    out.unwrap_or_else(IntoResponse::into_response)
}

/// Reads the whole upstream answer, meters it from its `usage`, returns it unchanged.
async fn passthrough_metered(
    flight: Flight,
    res: reqwest::Response,
    input_chars: usize,
) -> GResult<Response> {
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
    let provider = flight.call.provider.clone();
    let Ok(bytes) = res.bytes().await else {
        flight.fail(502);
        return Err(GatewayError(Refusal {
            status: 502,
            kind: "upstream_error",
            code: "upstream_unavailable",
            message: format!("the provider {provider} broke off its answer"),
            retry_after_secs: None,
        }));
    };
    let seen = Metered::read(&bytes);
    let tokens = seen.tokens.unwrap_or(Tokens {
        input: estimate_tokens(input_chars),
        output: 0,
    });
    // The reservation stays until the usage is committed, so the quota never misses the call.
    flight.record(status.as_u16(), tokens, seen.model);
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    Ok(out)
}

/// Watches the SSE lines going by for the usage block and the delivered text.
struct StreamMeter {
    flight: Option<Flight>,
    prompt_chars: usize,
    line: Vec<u8>,
    delivered_chars: usize,
    usage: Option<Tokens>,
    served_model: Option<String>,
    finished: bool,
    /// The provider broke off the stream (as opposed to the client going away).
    upstream_failed: bool,
}

impl StreamMeter {
    fn observe(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.observe_line(&line);
            } else if self.line.len() < 1 << 20 {
                self.line.push(b);
            }
        }
    }

    fn observe_line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            return;
        }
        let seen = Metered::read(data);
        if seen.tokens.is_some() {
            self.usage = seen.tokens;
        }
        if seen.model.is_some() {
            self.served_model = seen.model;
        }
        self.delivered_chars += seen.chars;
    }
}

impl Drop for StreamMeter {
    /// Runs when the stream ends or when the client disconnects (hyper drops the body):
    /// either way what was delivered is metered.
    fn drop(&mut self) {
        let tokens = self.usage.unwrap_or(Tokens {
            input: estimate_tokens(self.prompt_chars),
            output: estimate_tokens(self.delivered_chars),
        });
        // 499: the client closed the connection before the end (nginx's convention);
        // 502: the provider broke off.
        let status = if self.finished {
            200
        } else if self.upstream_failed {
            502
        } else {
            499
        };
        if let Some(flight) = self.flight.take() {
            flight.record(status, tokens, self.served_model.take());
        }
    }
}

struct MeteredStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    meter: StreamMeter,
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Once ended, stay ended: a layer may poll again after the end.
        if self.meter.finished || self.meter.upstream_failed {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.meter.observe(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(_))) => {
                // The upstream broke off: end the client's stream; what came is metered.
                self.meter.upstream_failed = true;
                Poll::Ready(Some(Err(std::io::Error::other("upstream stream failed"))))
            }
            Poll::Ready(None) => {
                self.meter.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> (Option<Tokens>, usize) {
        let seen = Metered::read(body.as_bytes());
        (seen.tokens, seen.chars)
    }

    #[test]
    fn usage_and_delivered_text_are_read_from_answers_and_chunks() {
        let (t, c) = read(
            r#"{"id":"x","choices":[{"message":{"content":"Hello"}}],"usage":{"prompt_tokens":11,"completion_tokens":7}}"#,
        );
        assert_eq!((t.map(|t| (t.input, t.output)), c), (Some((11, 7)), 0));
        let (t, c) =
            read(r#"{"choices":[{"delta":{"content":"Hé\n"}},{"delta":{}}],"usage":null}"#);
        assert!(t.is_none());
        assert_eq!(c, "Hé\n".len());
        // Shapes the typed reading does not expect are still read.
        let (t, c) = read(r#"{"choices":"odd","usage":{"prompt_tokens":3}}"#);
        assert_eq!((t.map(|t| (t.input, t.output)), c), (Some((3, 0)), 0));
        let (t, c) = read(
            r#"{"choices":[{"delta":{"content":5}}],"usage":{"prompt_tokens":"x","completion_tokens":2}}"#,
        );
        assert_eq!((t.map(|t| (t.input, t.output)), c), (Some((0, 2)), 0));
        let (t, c) = read("not json");
        assert!(t.is_none() && c == 0);
        let v = serde_json::json!([{"role": "user", "content": "Hé \"x\""}]);
        assert_eq!(json_len(&v), v.to_string().len());
        let seen =
            Metered::read(br#"{"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":1}}"#);
        assert_eq!(seen.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(seen.tokens.map(|t| t.input), Some(1));
        let seen = Metered::read(br#"{"model":"m-odd","choices":"odd"}"#);
        assert_eq!(seen.model.as_deref(), Some("m-odd"));
    }
}
