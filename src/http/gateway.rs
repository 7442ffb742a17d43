//! The OpenAI-compatible gateway (`/v1/...`), authenticated with `xa_` API tokens: the
//! token's organization decides the key, the models and the usage it is metered to.
//! Upstream bodies pass through unchanged; streams are forwarded chunk by chunk as they
//! arrive and metered when they end, also when the client goes away mid-stream.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde_json::{Value, json};

use crate::db::cache::GenerationCache;
use crate::error::AppError;
use crate::http::extract::{AuthKind, CurrentUser, client_meta};
use crate::http::state::{AppState, GatewayState};
use crate::services::gateway::{self, RouteError};
use crate::services::identity::TokenUse;
use crate::services::metering::Denied;
use crate::services::metering::tokens::{self, Tokens, estimate_tokens, json_len};
use crate::services::models::{CallError, Flight};
use crate::services::upstream::{Transport, UpstreamError};

/// Chat requests carry whole conversations; larger than the API's default body limit.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// An error in the OpenAI format (`{"error": {"message", "type", "code", "param"}}`, and
/// `Retry-After` for rate limits): what every refusal and failure of the gateway becomes.
struct GatewayError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl GatewayError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        GatewayError {
            status,
            kind,
            code,
            message,
            retry_after_secs: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        GatewayError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message.into(),
        )
    }

    fn unauthorized(message: &str) -> Self {
        GatewayError {
            message: message.to_string(),
            ..AppError::Unauthorized.into()
        }
    }
}

impl From<AppError> for GatewayError {
    fn from(e: AppError) -> Self {
        let status = e.status();
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let message = if status.is_server_error() {
            "internal error".to_string()
        } else {
            e.to_string()
        };
        let retry = match &e {
            AppError::TooManyRequests {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        };
        let mut out = GatewayError::new(status, kind, e.code(), message);
        out.retry_after_secs = retry;
        out
    }
}

impl From<RouteError> for GatewayError {
    fn from(e: RouteError) -> Self {
        let message = e.to_string();
        let (status, kind, code) = match e {
            RouteError::App(app) => return app.into(),
            RouteError::ModelRequired => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            RouteError::ModelNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
            ),
            RouteError::NoProviderUrl { .. } => (
                StatusCode::FAILED_DEPENDENCY,
                "invalid_request_error",
                "no_provider_url",
            ),
            RouteError::NoProviderKey { .. } => (
                StatusCode::FAILED_DEPENDENCY,
                "invalid_request_error",
                "no_provider_key",
            ),
        };
        GatewayError::new(status, kind, code, message)
    }
}

impl From<Denied> for GatewayError {
    fn from(d: Denied) -> Self {
        let (kind, code) = if d.is_exhausted() {
            ("insufficient_quota", "insufficient_quota")
        } else {
            ("rate_limit_error", "rate_limit_exceeded")
        };
        GatewayError {
            retry_after_secs: d.retry_after_secs(),
            ..GatewayError::new(StatusCode::TOO_MANY_REQUESTS, kind, code, d.to_string())
        }
    }
}

impl From<UpstreamError> for GatewayError {
    fn from(e: UpstreamError) -> Self {
        let unavailable = |message| {
            GatewayError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unavailable",
                message,
            )
        };
        match e {
            UpstreamError::NoAnswer { provider, how } => {
                let what = match how {
                    Transport::TimedOut => "timed out",
                    Transport::Unreachable => "could not be reached",
                    Transport::Failed => "failed",
                };
                unavailable(format!("the provider {provider} {what}"))
            }
            UpstreamError::BrokeOff { provider } => {
                unavailable(format!("the provider {provider} broke off its answer"))
            }
            // The organization's setting is what is wrong, as with a missing key.
            UpstreamError::NotAllowed { provider, address } => GatewayError::new(
                StatusCode::FAILED_DEPENDENCY,
                "invalid_request_error",
                "provider_address_not_allowed",
                format!(
                    "the base URL of the provider {provider} leads to {address}, which is not a public address; this server connects only to public addresses for organizations"
                ),
            ),
            UpstreamError::Refused {
                provider,
                status,
                message,
            } => {
                let (out, kind, code) = match status {
                    401 | 403 => (
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        "upstream_auth_failed",
                    ),
                    404 => (
                        StatusCode::NOT_FOUND,
                        "invalid_request_error",
                        "model_not_found",
                    ),
                    400 | 422 => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "upstream_rejected",
                    ),
                    429 => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        "upstream_rate_limited",
                    ),
                    _ => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_error"),
                };
                let mut text = format!("the provider {provider} answered {status}");
                if let Some(m) = message {
                    text.push_str(": ");
                    text.push_str(&m);
                }
                GatewayError::new(out, kind, code, text)
            }
        }
    }
}

impl From<CallError> for GatewayError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Route(r) => r.into(),
            CallError::Denied(d) => d.into(),
            CallError::Upstream(u) => u.into(),
            e @ CallError::Unreadable { .. } => GatewayError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_error",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "code": self.code, "param": null}});
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
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

const NO_TOKEN: &str = "missing or invalid API key: send `Authorization: Bearer xa_...`";

/// The caller: an API token only (the gateway is for programs, not browser sessions). A
/// remembered holder passes the same token check as a fresh one (`TokenAuth::check_use`).
async fn token_caller(
    g: &GatewayState,
    req: Request,
) -> GResult<(CurrentUser, crate::db::OrgContext, Bytes)> {
    let (parts, body) = req.into_parts();
    let token = crate::http::extract::bearer(&parts.headers)
        .filter(|t| t.starts_with(crate::auth::API_TOKEN_PREFIX))
        .ok_or_else(|| {
            GatewayError::unauthorized(if parts.headers.contains_key(header::COOKIE) {
                "the gateway takes API tokens (xa_...), not browser sessions"
            } else {
                NO_TOKEN
            })
        })?;
    let hash = crate::auth::token_hash(token);
    let meta = client_meta(&parts, &g.config.trusted_proxies);
    // Read before the lookups below, so that a change committed meanwhile drops them.
    let generation = g.svc().db.generation();
    let (user, ctx) = match g.callers.0.get(&hash, generation) {
        Some((mut user, ctx)) => {
            let AuthKind::Token(t) = &mut user.kind else {
                return Err(GatewayError::unauthorized(NO_TOKEN));
            };
            match t.check_use(g.svc(), g.svc().now()) {
                TokenUse::Expired => return Err(GatewayError::unauthorized(NO_TOKEN)),
                TokenUse::Valid => {}
                TokenUse::Stamped => {
                    g.callers
                        .0
                        .put(hash, generation, (user.clone(), ctx.clone()));
                }
            }
            user.meta = meta;
            user.admit(g.svc(), &ctx)?;
            (user, ctx)
        }
        None => {
            let user = CurrentUser::from_api_token(g.svc(), token, meta)
                .await
                .map_err(|_| GatewayError::unauthorized(NO_TOKEN))?;
            let AuthKind::Token(t) = &user.kind else {
                return Err(GatewayError::unauthorized(NO_TOKEN));
            };
            let ctx = user
                .org_context_in(g.svc(), t.organization_id.to_string())
                .await?;
            g.callers
                .0
                .put(hash, generation, (user.clone(), ctx.clone()));
            (user, ctx)
        }
    };
    let bytes = axum::body::to_bytes(Body::new(body), BODY_LIMIT)
        .await
        .map_err(|_| GatewayError::invalid("the request body is too large or unreadable"))?;
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
        _ => Err(GatewayError::invalid("the body must be a JSON object")),
    }
}

/// Checks the body, picks provider and key, and reserves against the quota.
async fn take_off(
    g: &GatewayState,
    req: Request,
    endpoint: &'static str,
    input_field: &str,
) -> GResult<(Flight, serde_json::Map<String, Value>, usize)> {
    let (user, ctx, bytes) = token_caller(g, req).await?;
    let body = parse_body(&bytes)?;
    let input_chars = match body.get(input_field) {
        Some(v) if input_field != "messages" || v.is_array() => json_len(v),
        _ if input_field == "messages" => {
            return Err(GatewayError::invalid("`messages` must be an array"));
        }
        _ => {
            return Err(GatewayError::invalid(format!(
                "`{input_field}` is required"
            )));
        }
    };
    let requested = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    let estimate = if endpoint == crate::domain::usage::EMBEDDINGS {
        Tokens {
            input: estimate_tokens(input_chars),
            output: 0,
        }
    } else {
        tokens::estimate_chat(input_chars, &body)
    };
    let flight = Flight::take_off(
        &g.models,
        &ctx,
        token_id(&user),
        endpoint,
        requested.as_deref(),
        estimate,
    )?;
    Ok((flight, body, input_chars))
}

/// Sends the request upstream; a failure (already metered) becomes the OpenAI error.
async fn send(
    flight: Flight,
    path: &str,
    body: &mut serde_json::Map<String, Value>,
) -> GResult<(Flight, reqwest::Response)> {
    flight.send(path, body).await.map_err(|(e, _)| e.into())
}

async fn chat(State(g): State<GatewayState>, req: Request) -> Response {
    chat_inner(g, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_inner(g: GatewayState, req: Request) -> GResult<Response> {
    let (flight, mut body, prompt_chars) =
        take_off(&g, req, crate::domain::usage::CHAT_COMPLETIONS, "messages").await?;
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if streaming {
        // Ask for the usage block at the end of the stream, keeping the client's options.
        let opts = body.entry("stream_options").or_insert_with(|| json!({}));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let (flight, res) = send(flight, "/chat/completions", &mut body).await?;
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

async fn embeddings(State(g): State<GatewayState>, req: Request) -> Response {
    let out = async {
        let (flight, mut body, input_chars) =
            take_off(&g, req, crate::domain::usage::EMBEDDINGS, "input").await?;
        let (flight, res) = send(flight, "/embeddings", &mut body).await?;
        passthrough_metered(flight, res, input_chars).await
    }
    .await;
    out.unwrap_or_else(IntoResponse::into_response)
}

async fn models(State(g): State<GatewayState>, req: Request) -> Response {
    let out = async {
        let (_, ctx, _) = token_caller(&g, req).await?;
        let svc = g.svc();
        let list = gateway::models(
            &svc.db,
            &g.models.setups,
            &svc.keyring,
            &svc.env_providers,
            &svc.upstream,
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
    let (flight, bytes) = flight.read(res).await?;
    let seen = tokens::read_answer(&bytes);
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
        let seen = tokens::read_answer(data);
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

    fn wire(e: impl Into<GatewayError>) -> (u16, Value, Option<String>) {
        let res = e.into().into_response();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 16))
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        (status, body["error"].clone(), retry)
    }

    #[test]
    fn denials_become_openai_errors_with_retry_after_for_rates() {
        let (status, e, retry) = wire(Denied::OrgRequests {
            used: 3,
            limit: 3,
            period: "2026-11".into(),
        });
        assert_eq!((status, retry), (429, None));
        assert_eq!(e["type"], "insufficient_quota");
        assert_eq!(e["code"], "insufficient_quota");
        assert_eq!(
            e["message"],
            "the organization's monthly requests are used up (3 of 3 in 2026-11)"
        );
        assert!(e["param"].is_null());
        let (status, e, retry) = wire(Denied::TokensPerMinute {
            limit: 10,
            retry_after_secs: 7,
        });
        assert_eq!((status, retry.as_deref()), (429, Some("7")));
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("rate_limit_error"), Some("rate_limit_exceeded"))
        );
    }

    #[test]
    fn upstream_and_routing_failures_keep_their_codes() {
        let (status, e, _) = wire(UpstreamError::Refused {
            provider: "openai".into(),
            status: 401,
            message: Some("bad key [redacted]".into()),
        });
        assert_eq!(status, 502);
        assert_eq!(e["code"], "upstream_auth_failed");
        assert_eq!(
            e["message"],
            "the provider openai answered 401: bad key [redacted]"
        );
        let (status, e, _) = wire(UpstreamError::NoAnswer {
            provider: "ollama".into(),
            how: Transport::Unreachable,
        });
        assert_eq!(status, 502);
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("upstream_error"), Some("upstream_unavailable"))
        );
        assert_eq!(e["message"], "the provider ollama could not be reached");
        let (status, e, _) = wire(UpstreamError::Refused {
            provider: "openai".into(),
            status: 404,
            message: None,
        });
        assert_eq!((status, e["code"].as_str()), (404, Some("model_not_found")));
        let (status, e, _) = wire(RouteError::NoProviderKey {
            provider: "openai".into(),
            reason: "no key for the provider openai".into(),
        });
        assert_eq!((status, e["code"].as_str()), (424, Some("no_provider_key")));
        let (status, e, _) = wire(RouteError::ModelNotAllowed {
            model: "gpt-x".into(),
        });
        assert_eq!(
            (status, e["type"].as_str()),
            (403, Some("permission_error"))
        );
        let (status, e, _) = wire(AppError::Internal("secret cause".into()));
        assert_eq!(
            (status, e["message"].as_str()),
            (500, Some("internal error"))
        );
        assert_eq!(e["type"], "server_error");
    }
}
