//! The one path every model call takes, from the gateway's `/v1` endpoints and from the
//! agent services alike: provider, model and key chosen under the organization's policy
//! (`gateway::prepare`), admission against quotas and rate limits with a reservation, the
//! upstream request, and metering of the outcome. There is no other way to reach a model.
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::Services;
use super::gateway::{self, Call, RouteError, Setups};
use super::metering::tokens::{self, Tokens, cost, estimate_tokens};
use super::metering::{Denied, Gate, Meter, Metered, Reservation};
use super::upstream::{self, UpstreamError};
use crate::db::OrgContext;
use crate::domain::Micros;
use crate::error::AppError;

/// Admission, setups and the meter: made once per server and shared.
pub struct Models {
    pub svc: Services,
    /// Quota reservations and rate limiters.
    pub gate: Gate,
    /// Provider, key and limits of recent calls, until the configuration changes.
    pub setups: Setups,
    /// Writes the usage in batches.
    pub meter: Meter,
}

impl Models {
    pub fn start(svc: Services) -> Arc<Models> {
        Arc::new(Models {
            meter: Meter::start(svc.db.clone(), svc.metrics.clone()),
            svc,
            gate: Gate::default(),
            setups: Setups::default(),
        })
    }
}

/// Why a model call did not happen or did not finish. Each caller turns it into its own
/// wire format: the gateway into OpenAI's, the agent services into the API's envelope.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0:?}")]
    Upstream(UpstreamError),
    /// The answer came but was not what the endpoint returns.
    #[error("the provider {provider} sent an answer that could not be read")]
    Unreadable { provider: String },
}

impl From<AppError> for CallError {
    fn from(e: AppError) -> Self {
        CallError::Route(RouteError::App(e))
    }
}

/// The API's envelope for a call that could not be made, with the gateway's codes.
impl From<CallError> for AppError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Route(RouteError::App(app)) => app,
            CallError::Route(r) => {
                let message = r.to_string();
                match r {
                    RouteError::ModelRequired => AppError::bad_request("model_required", message),
                    RouteError::ModelNotAllowed { .. } => AppError::Forbidden {
                        code: "model_not_allowed",
                        message,
                    },
                    RouteError::NoProviderUrl { .. } => AppError::FailedDependency {
                        code: "no_provider_url",
                        message,
                    },
                    RouteError::NoProviderKey { .. } | RouteError::App(_) => {
                        AppError::FailedDependency {
                            code: "no_provider_key",
                            message,
                        }
                    }
                }
            }
            CallError::Denied(d) => AppError::TooManyRequests {
                code: if d.is_exhausted() {
                    "insufficient_quota"
                } else {
                    "rate_limit_exceeded"
                },
                message: d.to_string(),
                retry_after_secs: d.retry_after_secs(),
            },
            CallError::Upstream(u) => AppError::BadGateway {
                code: "upstream_error",
                message: upstream_message(&u),
            },
            e @ CallError::Unreadable { .. } => AppError::BadGateway {
                code: "upstream_error",
                message: e.to_string(),
            },
        }
    }
}

/// A provider failure in people's words (the key never appears: `upstream` removes it).
pub fn upstream_message(e: &UpstreamError) -> String {
    match e {
        UpstreamError::NoAnswer { provider, how } => {
            let what = match how {
                upstream::Transport::TimedOut => "timed out",
                upstream::Transport::Unreachable => "could not be reached",
                upstream::Transport::Failed => "failed",
            };
            format!("the provider {provider} {what}")
        }
        UpstreamError::BrokeOff { provider } => {
            format!("the provider {provider} broke off its answer")
        }
        UpstreamError::NotAllowed { provider, address } => format!(
            "the base URL of the provider {provider} leads to {address}, which is not a public address"
        ),
        UpstreamError::Refused {
            provider,
            status,
            message,
        } => match message {
            Some(m) => format!("the provider {provider} answered {status}: {m}"),
            None => format!("the provider {provider} answered {status}"),
        },
    }
}

/// One admitted call on its way: what metering needs once the outcome is known. The
/// quota reservation is released only after the call's usage is committed.
pub struct Flight {
    models: Arc<Models>,
    call: Call,
    price: Option<(Micros, Micros)>,
    token_id: Option<String>,
    endpoint: &'static str,
    started: Instant,
    held: Reservation,
}

impl Flight {
    /// Chooses provider, model and key for `ctx`'s member and reserves `estimate` against
    /// every limit. `endpoint` names the kind of call in usage (`chat.completions`,
    /// `embeddings`, `agent.chat`, ...).
    pub fn take_off(
        models: &Arc<Models>,
        ctx: &OrgContext,
        token_id: Option<String>,
        endpoint: &'static str,
        requested: Option<&str>,
        estimate: Tokens,
    ) -> Result<Flight, CallError> {
        let svc = &models.svc;
        let (call, limits) = gateway::prepare(
            &svc.db,
            &models.setups,
            &svc.keyring,
            &svc.env_providers,
            ctx,
            requested,
        )?;
        let held = match models
            .gate
            .admit(&svc.db, &call.ctx, &limits, estimate, svc.now())?
        {
            Ok(held) => held,
            Err(denied) => {
                svc.metrics.refused(
                    &call.ctx.org_id().to_string(),
                    call.metric_model(),
                    denied.limit().as_str(),
                );
                return Err(denied.into());
            }
        };
        Ok(Flight {
            models: models.clone(),
            call,
            price: limits.price,
            token_id,
            endpoint,
            started: Instant::now(),
            held,
        })
    }

    pub fn call(&self) -> &Call {
        &self.call
    }

    /// What `tokens` cost at the model's price (what metering charges when the provider
    /// names no other model).
    pub fn cost_of(&self, tokens: Tokens) -> Micros {
        cost(self.price, tokens)
    }

    /// Hands the outcome to the meter; the reservation goes with it and ends when the
    /// usage is committed. The answer does not wait for that commit.
    pub fn record(self, status: u16, tokens: Tokens, served_model: Option<String>) {
        let Flight {
            models,
            call,
            token_id,
            endpoint,
            started,
            held,
            price: _,
        } = self;
        models.meter.submit(Metered {
            latency_ms: started.elapsed().as_millis() as i64,
            metric_model: call.metric_model().to_string(),
            ctx: call.ctx,
            token_id,
            endpoint,
            provider: call.provider,
            model: call.model,
            upstream_model: call.upstream_model,
            key_source: call.source.as_str(),
            status,
            tokens,
            served_model,
            at: models.svc.now(),
            reservation: Some(held),
        });
    }

    /// Meters a failed call (no tokens).
    pub fn fail(self, status: u16) {
        self.record(status, Tokens::default(), None);
    }

    /// Sends the request upstream with the model the provider knows; a failure is metered.
    pub async fn send(
        self,
        path: &str,
        body: &mut Map<String, Value>,
    ) -> Result<(Self, reqwest::Response), (UpstreamError, u16)> {
        body.insert(
            "model".into(),
            Value::String(self.call.upstream_model.clone()),
        );
        match upstream::post_json(&self.models.svc.upstream, self.call.endpoint(), path, body).await
        {
            Ok(res) => Ok((self, res)),
            Err(e) => {
                let status = e.status();
                self.fail(status);
                Err((e, status))
            }
        }
    }

    /// Reads a whole successful answer; a body that breaks off is metered as failed.
    pub async fn read(
        self,
        res: reqwest::Response,
    ) -> Result<(Self, axum::body::Bytes), UpstreamError> {
        match upstream::read_body(self.call.endpoint(), res).await {
            Ok(b) => Ok((self, b)),
            Err(e) => {
                self.fail(e.status());
                Err(e)
            }
        }
    }
}

/// A chat answer the services read (not passed through).
#[derive(Debug, Clone)]
pub struct Answer {
    pub content: String,
    pub tokens: Tokens,
    pub cost: Micros,
    /// The model as the organization names it.
    pub model: String,
}

/// The output a chat call reserves for when the caller sets no limit.
pub const DEFAULT_MAX_OUTPUT: i64 = 1024;

fn chat_body(messages: &[Value], max_output: Option<i64>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages.to_vec()));
    if let Some(m) = max_output {
        body.insert("max_tokens".into(), json!(m));
    }
    body
}

fn chat_estimate(messages: &[Value], body: &Map<String, Value>) -> (usize, Tokens) {
    let chars: usize = messages.iter().map(tokens::json_len).sum();
    (chars, tokens::estimate_chat(chars, body))
}

/// One chat completion for a service (not streamed): the text, tokens and cost, metered
/// under `endpoint`.
pub async fn chat(
    models: &Arc<Models>,
    ctx: &OrgContext,
    endpoint: &'static str,
    model: Option<&str>,
    messages: &[Value],
    max_output: Option<i64>,
) -> Result<Answer, CallError> {
    let mut body = chat_body(messages, max_output);
    let (chars, estimate) = chat_estimate(messages, &body);
    let flight = Flight::take_off(models, ctx, None, endpoint, model, estimate)?;
    let (flight, res) = flight
        .send("/chat/completions", &mut body)
        .await
        .map_err(|(e, _)| CallError::Upstream(e))?;
    let status = res.status().as_u16();
    let (flight, bytes) = flight.read(res).await.map_err(CallError::Upstream)?;
    let seen = tokens::read_answer(&bytes);
    let content = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
    });
    let tokens = seen.tokens.unwrap_or(Tokens {
        input: estimate_tokens(chars),
        output: content.as_deref().map_or(0, |c| estimate_tokens(c.len())),
    });
    let model_name = flight.call.model.clone();
    let provider = flight.call.provider.clone();
    let cost = flight.cost_of(tokens);
    flight.record(status, tokens, seen.model);
    let content = content.ok_or(CallError::Unreadable { provider })?;
    Ok(Answer {
        content,
        tokens,
        cost,
        model: model_name,
    })
}

/// A streamed chat completion: text deltas as they come, metered when the stream ends or
/// is dropped (a reader that goes away mid-answer is charged for what was delivered).
pub struct ChatStream {
    inner: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    meter: StreamMeter,
    line: Vec<u8>,
    pending: std::collections::VecDeque<String>,
}

struct StreamMeter {
    flight: Option<Flight>,
    prompt_chars: usize,
    delivered: String,
    usage: Option<Tokens>,
    served_model: Option<String>,
    finished: bool,
    upstream_failed: bool,
}

impl StreamMeter {
    fn tokens(&self) -> Tokens {
        self.usage.unwrap_or(Tokens {
            input: estimate_tokens(self.prompt_chars),
            output: estimate_tokens(self.delivered.len()),
        })
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let tokens = self.tokens();
        let status = if self.finished {
            200
        } else if self.upstream_failed {
            502
        } else {
            499
        };
        if let Some(f) = self.flight.take() {
            f.record(status, tokens, self.served_model.take());
        }
    }
}

/// How a streamed answer ended.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    pub content: String,
    pub tokens: Tokens,
    pub cost: Micros,
    pub model: String,
    /// The provider broke off before the end.
    pub broke_off: bool,
}

impl ChatStream {
    /// The next piece of text; `None` at the end of the answer (or when it broke off).
    pub async fn next_delta(&mut self) -> Option<String> {
        loop {
            if let Some(d) = self.pending.pop_front() {
                return Some(d);
            }
            if self.meter.finished || self.meter.upstream_failed {
                return None;
            }
            match self.inner.next().await {
                Some(Ok(chunk)) => self.observe(&chunk),
                Some(Err(_)) => self.meter.upstream_failed = true,
                None => {
                    let rest = std::mem::take(&mut self.line);
                    self.observe_line(&rest);
                    self.meter.finished = true;
                }
            }
        }
    }

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
        if data == b"[DONE]" || data.is_empty() {
            return;
        }
        let seen = tokens::read_answer(data);
        if seen.tokens.is_some() {
            self.meter.usage = seen.tokens;
        }
        if seen.model.is_some() {
            self.meter.served_model = seen.model;
        }
        let text = serde_json::from_slice::<Value>(data).ok().and_then(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        });
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            self.meter.delivered.push_str(&t);
            self.pending.push_back(t);
        }
    }

    /// What was delivered so far and what it costs (the tokens the provider reported, or
    /// an estimate of what was delivered).
    pub fn so_far(&self) -> StreamEnd {
        let tokens = self.meter.tokens();
        StreamEnd {
            content: self.meter.delivered.clone(),
            tokens,
            cost: self
                .meter
                .flight
                .as_ref()
                .map_or(Micros::ZERO, |f| f.cost_of(tokens)),
            model: self
                .meter
                .flight
                .as_ref()
                .map(|f| f.call.model.clone())
                .unwrap_or_default(),
            broke_off: self.meter.upstream_failed,
        }
    }
}

/// Starts a streamed chat completion for a service, metered under `endpoint`.
pub async fn chat_stream(
    models: &Arc<Models>,
    ctx: &OrgContext,
    endpoint: &'static str,
    model: Option<&str>,
    messages: &[Value],
    max_output: Option<i64>,
) -> Result<ChatStream, CallError> {
    let mut body = chat_body(messages, max_output);
    body.insert("stream".into(), Value::Bool(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let (chars, estimate) = chat_estimate(messages, &body);
    let flight = Flight::take_off(models, ctx, None, endpoint, model, estimate)?;
    let (flight, res) = flight
        .send("/chat/completions", &mut body)
        .await
        .map_err(|(e, _)| CallError::Upstream(e))?;
    Ok(ChatStream {
        inner: Box::pin(res.bytes_stream()),
        meter: StreamMeter {
            flight: Some(flight),
            prompt_chars: chars,
            delivered: String::new(),
            usage: None,
            served_model: None,
            finished: false,
            upstream_failed: false,
        },
        line: Vec::new(),
        pending: Default::default(),
    })
}

/// Embeddings of `inputs`, in order, metered under `endpoint`.
pub async fn embed(
    models: &Arc<Models>,
    ctx: &OrgContext,
    endpoint: &'static str,
    model: Option<&str>,
    inputs: &[String],
) -> Result<(Vec<Vec<f32>>, Tokens, Micros), CallError> {
    let chars: usize = inputs.iter().map(String::len).sum();
    let estimate = Tokens {
        input: estimate_tokens(chars),
        output: 0,
    };
    let flight = Flight::take_off(models, ctx, None, endpoint, model, estimate)?;
    let mut body = Map::new();
    body.insert("input".into(), json!(inputs));
    let (flight, res) = flight
        .send("/embeddings", &mut body)
        .await
        .map_err(|(e, _)| CallError::Upstream(e))?;
    let status = res.status().as_u16();
    let (flight, bytes) = flight.read(res).await.map_err(CallError::Upstream)?;
    let seen = tokens::read_answer(&bytes);
    let tokens = seen.tokens.unwrap_or(estimate);
    let cost = flight.cost_of(tokens);
    let provider = flight.call.provider.clone();
    flight.record(status, tokens, seen.model);
    let vectors = read_vectors(&bytes, inputs.len()).ok_or(CallError::Unreadable { provider })?;
    Ok((vectors, tokens, cost))
}

#[derive(serde::Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// The vectors of an OpenAI embeddings answer in input order, or `None` when it does not
/// hold exactly one non-empty vector per input, all of one length.
fn read_vectors(bytes: &[u8], expected: usize) -> Option<Vec<Vec<f32>>> {
    let list: EmbeddingList = serde_json::from_slice(bytes).ok()?;
    if list.data.len() != expected {
        return None;
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (i, item) in list.data.into_iter().enumerate() {
        let at = item.index.unwrap_or(i);
        let slot = out.get_mut(at)?;
        if slot.is_some() || item.embedding.is_empty() {
            return None;
        }
        *slot = Some(item.embedding);
    }
    let out: Vec<Vec<f32>> = out.into_iter().collect::<Option<_>>()?;
    let dims = out.first().map(Vec::len)?;
    out.iter()
        .all(|v| v.len() == dims && v.iter().all(|x| x.is_finite()))
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_read_in_input_order_and_malformed_lists_are_refused() {
        let body =
            br#"{"data":[{"index":1,"embedding":[0.0,1.0]},{"index":0,"embedding":[1.0,0.0]}]}"#;
        assert_eq!(
            read_vectors(body, 2),
            Some(vec![vec![1.0, 0.0], vec![0.0, 1.0]])
        );
        assert_eq!(read_vectors(body, 3), None, "one vector per input");
        let mixed = br#"{"data":[{"embedding":[1.0]},{"embedding":[1.0,2.0]}]}"#;
        assert_eq!(read_vectors(mixed, 2), None, "one length");
        let twice = br#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#;
        assert_eq!(read_vectors(twice, 2), None);
        assert_eq!(read_vectors(b"not json", 1), None);
    }

    #[test]
    fn refusals_keep_the_gateways_codes_in_the_api_envelope() {
        let quota: AppError = CallError::Denied(Denied::OrgRequests {
            used: 1,
            limit: 1,
            period: "2026-12".into(),
        })
        .into();
        assert_eq!(
            (quota.status().as_u16(), quota.code()),
            (429, "insufficient_quota")
        );
        let rate: AppError = CallError::Denied(Denied::RequestsPerMinute {
            limit: 1,
            retry_after_secs: 3,
        })
        .into();
        assert_eq!(rate.code(), "rate_limit_exceeded");
        let key: AppError = CallError::Route(RouteError::NoProviderKey {
            provider: "openai".into(),
            reason: "no key for the provider openai".into(),
        })
        .into();
        assert_eq!(
            (key.status().as_u16(), key.code()),
            (424, "no_provider_key")
        );
        let up: AppError = CallError::Upstream(UpstreamError::BrokeOff {
            provider: "openai".into(),
        })
        .into();
        assert_eq!(up.status().as_u16(), 502);
        assert_eq!(up.to_string(), "the provider openai broke off its answer");
    }
}
