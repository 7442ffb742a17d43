//! The one client for model providers: every call to a provider (the gateway's calls,
//! model lists, "Test connection") goes through here, with the key sent only as the
//! bearer token and never followed through a redirect. Failures are `UpstreamError`,
//! which names the provider and never carries the key or reqwest's error text.
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::config::Secret;
use crate::services::outbound::{self, PolicyResolver, TargetPolicy, TargetRefused};

/// Largest upstream error body read to find its message (the rest is dropped).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// A model list larger than this is not read.
pub const MODEL_LIST_LIMIT: usize = 1 << 20;
/// How much of a provider's own error message is kept.
const MESSAGE_CHARS: usize = 500;

/// Who chose an address: the server's operator (a provider's `XAGENT_<P>_BASE_URL`, the
/// built-in OpenAI URL) or an organization or member (a saved base URL, a webhook). Only
/// the latter is held to the outbound policy: the operator may point the server anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Operator,
    Tenant,
}

/// The HTTP clients for every upstream (providers and webhook receivers): pooled
/// connections, bounded connect and read times, no overall deadline (streams may run for
/// minutes). Addresses a tenant chose go through a client whose resolver drops what the
/// policy refuses, and a literal address in such a URL is checked before sending, so the
/// address connected to is the one checked — a name that resolved to a public address
/// when saved and to a private one later is refused too.
#[derive(Clone)]
pub struct Upstream {
    operator: reqwest::Client,
    tenant: reqwest::Client,
    policy: TargetPolicy,
}

impl Upstream {
    pub fn new(policy: TargetPolicy) -> Result<Self, String> {
        // The TLS backend is rustls with ring, the same one the mailer uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |b: reqwest::ClientBuilder| {
            b.connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(300))
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                // A provider (or a webhook receiver) that redirects gets its 3xx reported,
                // not followed: the key would be sent on to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))
        };
        let operator = build(reqwest::Client::builder())?;
        let tenant = match policy {
            TargetPolicy::AllowPrivate => operator.clone(),
            TargetPolicy::PublicOnly => {
                build(reqwest::Client::builder().dns_resolver(Arc::new(PolicyResolver(policy))))?
            }
        };
        Ok(Upstream {
            operator,
            tenant,
            policy,
        })
    }

    /// The client that may connect to `url`, chosen by who chose the address; a literal
    /// address the policy refuses is refused here.
    pub fn client_for(&self, url: &str, origin: Origin) -> Result<&reqwest::Client, TargetRefused> {
        match origin {
            Origin::Operator => Ok(&self.operator),
            Origin::Tenant => {
                if let Ok(parsed) = reqwest::Url::parse(url) {
                    outbound::check_request(&parsed, self.policy)?;
                }
                Ok(&self.tenant)
            }
        }
    }
}

/// The policy's refusal, when it is what stopped a request (the resolver's error is
/// wrapped in reqwest's and hyper's).
pub fn refusal_in(e: &reqwest::Error) -> Option<TargetRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<TargetRefused>() {
            return Some(r.clone());
        }
        cause = c.source();
    }
    None
}

/// Where a call goes: the provider's name (for messages), its base URL and the key.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub provider: &'a str,
    pub base_url: &'a str,
    /// None for a provider that needs no key.
    pub key: Option<&'a Secret>,
    /// Who chose the base URL.
    pub origin: Origin,
}

impl Endpoint<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// A request to `path` with the key, from the client the base URL's origin allows.
    fn request(
        &self,
        up: &Upstream,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let url = self.url(path);
        let client = up
            .client_for(&url, self.origin)
            .map_err(|r| UpstreamError::NotAllowed {
                provider: self.provider.to_string(),
                address: r.0,
            })?;
        let req = client.request(method, url);
        Ok(match self.key {
            Some(k) => req.bearer_auth(k.expose()),
            None => req,
        })
    }

    /// A provider's message with any echo of the key removed, shortened.
    fn clean(&self, message: &str) -> String {
        let m = match self.key {
            Some(k) => message.replace(k.expose(), "[redacted]"),
            None => message.to_string(),
        };
        m.chars().take(MESSAGE_CHARS).collect()
    }
}

/// How a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    TimedOut,
    /// The address could not be reached (connection refused, DNS, TLS).
    Unreachable,
    Failed,
}

impl Transport {
    fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Transport::TimedOut
        } else if e.is_connect() {
            Transport::Unreachable
        } else {
            Transport::Failed
        }
    }
}

/// Why a provider call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No answer came.
    NoAnswer { provider: String, how: Transport },
    /// The provider answered with a status other than 2xx; `message` is its own
    /// OpenAI-style error message, when it sent one (key removed, shortened).
    Refused {
        provider: String,
        status: u16,
        message: Option<String>,
    },
    /// The answer broke off while it was read.
    BrokeOff { provider: String },
    /// The base URL names an address the outbound policy refuses (private, loopback...).
    NotAllowed { provider: String, address: String },
}

impl UpstreamError {
    /// The status the call is metered with: the provider's, or 502 when it gave none.
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::Refused { status, .. } => *status,
            UpstreamError::NoAnswer { .. }
            | UpstreamError::BrokeOff { .. }
            | UpstreamError::NotAllowed { .. } => 502,
        }
    }

    fn no_answer(ep: &Endpoint<'_>, e: &reqwest::Error) -> Self {
        if let Some(r) = refusal_in(e) {
            return UpstreamError::NotAllowed {
                provider: ep.provider.to_string(),
                address: r.0,
            };
        }
        UpstreamError::NoAnswer {
            provider: ep.provider.to_string(),
            how: Transport::of(e),
        }
    }
}

/// POSTs `body` as JSON to `path` under the endpoint's base URL; an answer that is not a
/// success is read (bounded) for its message and returned as `Refused`.
pub async fn post_json(
    up: &Upstream,
    ep: Endpoint<'_>,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<reqwest::Response, UpstreamError> {
    let res = ep
        .request(up, reqwest::Method::POST, path)?
        .json(body)
        .send()
        .await
        .map_err(|e| UpstreamError::no_answer(&ep, &e))?;
    if res.status().is_success() {
        return Ok(res);
    }
    Err(refused(ep, res).await)
}

async fn refused(ep: Endpoint<'_>, res: reqwest::Response) -> UpstreamError {
    let status = res.status().as_u16();
    let mut raw = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        raw.extend_from_slice(&chunk);
        if raw.len() > ERROR_BODY_LIMIT {
            break;
        }
    }
    let message = serde_json::from_slice::<Value>(&raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(|m| ep.clean(m)));
    UpstreamError::Refused {
        provider: ep.provider.to_string(),
        status,
        message,
    }
}

/// The whole body of a successful answer.
pub async fn read_body(
    ep: Endpoint<'_>,
    res: reqwest::Response,
) -> Result<axum::body::Bytes, UpstreamError> {
    res.bytes().await.map_err(|_| UpstreamError::BrokeOff {
        provider: ep.provider.to_string(),
    })
}

/// What a provider's `GET /models` answered with a success status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelList {
    /// The model ids, as listed.
    Ids(Vec<String>),
    /// Larger than this client reads.
    TooLarge,
    /// Not an OpenAI-style model list.
    NotAList,
}

/// Asks the provider for its models within `timeout`; returns the success status with
/// what it sent.
pub async fn fetch_models(
    up: &Upstream,
    ep: Endpoint<'_>,
    timeout: Duration,
) -> Result<(u16, ModelList), UpstreamError> {
    let res = ep
        .request(up, reqwest::Method::GET, "/models")?
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| UpstreamError::no_answer(&ep, &e))?;
    if !res.status().is_success() {
        return Err(refused(ep, res).await);
    }
    let status = res.status().as_u16();
    let list = match read_capped(res).await {
        None => ModelList::TooLarge,
        Some(body) => model_ids(&body).map_or(ModelList::NotAList, ModelList::Ids),
    };
    Ok((status, list))
}

/// The model ids a provider offers, sorted and without repeats; `None` when it does not
/// answer with a model list within `timeout`.
pub async fn list_models(
    up: &Upstream,
    ep: Endpoint<'_>,
    timeout: Duration,
) -> Option<Vec<String>> {
    let Ok((_, ModelList::Ids(mut ids))) = fetch_models(up, ep, timeout).await else {
        return None;
    };
    ids.sort();
    ids.dedup();
    Some(ids)
}

async fn read_capped(mut res: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        if body.len() + chunk.len() > MODEL_LIST_LIMIT {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// The ids of an OpenAI model list (`{"data": [{"id": ...}, ...]}`).
fn model_ids(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|s| s.chars().take(200).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_to_a_private_address_is_refused_when_connecting() {
        // `localhost` goes past the literal check here (it is asked of the tenant client
        // directly), so it is the resolver that refuses it, and the refusal is found
        // inside reqwest's error.
        let up = Upstream::new(TargetPolicy::PublicOnly).unwrap();
        let e = up
            .tenant
            .get("http://localhost:9/v1/models")
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal_in(&e), Some(TargetRefused("localhost".into())));
        // The operator's client and a private-targets instance connect (and find nothing
        // listening on port 9).
        let e = up
            .operator
            .get("http://localhost:9/v1/models")
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal_in(&e), None);
        let open = Upstream::new(TargetPolicy::AllowPrivate).unwrap();
        assert!(
            open.client_for("http://127.0.0.1:9/", Origin::Tenant)
                .is_ok()
        );
        assert!(
            up.client_for("http://127.0.0.1:9/", Origin::Tenant)
                .is_err()
        );
        assert!(
            up.client_for("http://127.0.0.1:9/", Origin::Operator)
                .is_ok()
        );
    }

    #[test]
    fn a_model_list_is_read_and_anything_else_is_not() {
        assert_eq!(
            model_ids(br#"{"object":"list","data":[{"id":"b"},{"id":"a"},{"x":1}]}"#),
            Some(vec!["b".to_string(), "a".to_string()])
        );
        assert_eq!(model_ids(br#"{"data":[]}"#), Some(vec![]));
        assert_eq!(model_ids(b"<html>hello</html>"), None);
        assert_eq!(model_ids(br#"{"models":[]}"#), None);
    }

    #[test]
    fn a_providers_message_loses_the_key_and_its_length() {
        let key = Secret::new("sk-very-secret");
        let ep = Endpoint {
            provider: "openai",
            base_url: "http://127.0.0.1:1/v1/",
            key: Some(&key),
            origin: Origin::Tenant,
        };
        assert_eq!(
            ep.clean("Incorrect API key provided: sk-very-secret."),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(ep.clean(&"x".repeat(2000)).len(), MESSAGE_CHARS);
        assert_eq!(
            ep.url("/chat/completions"),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        let refused = UpstreamError::Refused {
            provider: "openai".into(),
            status: 401,
            message: None,
        };
        assert_eq!(refused.status(), 401);
        let gone = UpstreamError::BrokeOff {
            provider: "openai".into(),
        };
        assert_eq!(gone.status(), 502);
    }
}
