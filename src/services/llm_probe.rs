//! "Test connection": asks a provider for its model list with the key a call would use,
//! and says in plain words what happened. Nothing is metered or stored; the key, the
//! provider's answer body and reqwest's error text never reach the result.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::Permission;
use serde_json::Value;

use super::llm::{KeySource, parse_provider, resolve_with};
use super::require;
use crate::config::EnvProvider;
use crate::crypto::Keyring;
use crate::db::repo::llm;
use crate::db::{Db, OrgContext};
use crate::error::AppError;

/// How long a test may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A model list larger than this is not read further (the count says "at least").
const MAX_BODY: usize = 1 << 20;
/// How many model names the result lists.
const SHOWN_MODELS: usize = 50;

/// Which key is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The organization's configuration: its key, else the server's environment key
    /// (members' own keys are left out). Needs `llm.keys.manage`.
    Organization,
    /// The caller's own key for the provider; 404 when they have none.
    Mine,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionTest {
    pub provider: String,
    pub source: KeySource,
    pub key_hint: Option<String>,
    pub base_url: Option<String>,
    pub ok: bool,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub model_count: usize,
    /// The first model ids, sorted.
    pub models: Vec<String>,
    pub message: String,
}

pub async fn test_connection(
    db: &Db,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    client: &reqwest::Client,
    ctx: &OrgContext,
    provider: &str,
    target: Target,
) -> Result<ConnectionTest, AppError> {
    require(
        ctx,
        match target {
            Target::Organization => Permission::LlmKeysManage,
            Target::Mine => Permission::LlmUse,
        },
    )?;
    let provider = parse_provider(provider)?;
    let (c, k, e, p) = (ctx.clone(), keyring.clone(), env.clone(), provider.clone());
    let resolved = db
        .read(move |tx| {
            let mut policy = llm::policy(tx, &c)?;
            match target {
                Target::Organization => policy.allow_user_keys = false,
                Target::Mine => {
                    if llm::user_provider(tx, &c, c.user_id(), &p)?.is_none() {
                        return Err(AppError::not_found());
                    }
                    // Tested even when the organization no longer allows own keys: the
                    // member may want to know whether to keep it.
                    policy.allow_user_keys = true;
                }
            }
            let org = llm::org_provider(tx, &c, &p)?;
            resolve_with(tx, &c, &k, &e, &p, &policy, org)
        })
        .await?;
    let mut out = ConnectionTest {
        provider,
        source: resolved.source,
        key_hint: resolved.key_hint.clone(),
        base_url: resolved.base_url.clone(),
        ok: false,
        status: None,
        latency_ms: 0,
        model_count: 0,
        models: Vec::new(),
        message: String::new(),
    };
    let Some((key, base)) = resolved.usable() else {
        out.message = resolved
            .reason
            .unwrap_or_else(|| "there is no base URL for this provider".into());
        return Ok(out);
    };
    let started = Instant::now();
    let sent = models_request(client, &base, key.as_ref(), TIMEOUT)
        .send()
        .await;
    let res = match sent {
        Ok(r) => r,
        Err(e) => {
            out.latency_ms = started.elapsed().as_millis() as u64;
            out.message = if e.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else if e.is_connect() {
                "the address could not be reached (check the base URL and the network)".into()
            } else {
                "the request failed (check the base URL)".into()
            };
            return Ok(out);
        }
    };
    let status = res.status().as_u16();
    out.status = Some(status);
    let body = read_capped(res).await;
    out.latency_ms = started.elapsed().as_millis() as u64;
    out.message = match status {
        200..=299 if body.is_none() => format!(
            "the provider answered with more than {} MiB; it was not read",
            MAX_BODY >> 20
        ),
        200..=299 => match body.as_deref().map(model_ids) {
            Some(Some(mut ids)) => {
                ids.sort();
                out.ok = true;
                out.model_count = ids.len();
                ids.truncate(SHOWN_MODELS);
                out.models = ids;
                format!(
                    "connected: the provider offers {} model{}",
                    out.model_count,
                    if out.model_count == 1 { "" } else { "s" }
                )
            }
            _ => "the provider answered, but not with an OpenAI-style model list (check the base URL; it usually ends in /v1)".into(),
        },
        401 | 403 => format!("the provider refused the key (HTTP {status})"),
        404 => "the provider has no /models here (HTTP 404): check the base URL; it usually ends in /v1".into(),
        429 => "the provider is rate limiting this key (HTTP 429); the key itself was accepted".into(),
        _ => format!("the provider answered HTTP {status}"),
    };
    Ok(out)
}

fn models_request(
    client: &reqwest::Client,
    base_url: &str,
    key: Option<&crate::config::Secret>,
    timeout: Duration,
) -> reqwest::RequestBuilder {
    let req = client
        .get(format!("{}/models", base_url.trim_end_matches('/')))
        .timeout(timeout);
    match key {
        Some(k) => req.bearer_auth(k.expose()),
        None => req,
    }
}

/// The model ids a provider offers, sorted; `None` when it does not answer with a model
/// list within `timeout`.
pub async fn list_models(
    client: &reqwest::Client,
    base_url: &str,
    key: Option<&crate::config::Secret>,
    timeout: Duration,
) -> Option<Vec<String>> {
    let res = models_request(client, base_url, key, timeout)
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let mut ids = model_ids(&read_capped(res).await?)?;
    ids.sort();
    ids.dedup();
    Some(ids)
}

async fn read_capped(mut res: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        if body.len() + chunk.len() > MAX_BODY {
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
}
