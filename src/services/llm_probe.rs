//! "Test connection": asks a provider for its model list with the key a call would use
//! (through `upstream`), and says in plain words what happened. Nothing is metered or
//! stored; the key, the provider's answer body and reqwest's error text never reach the
//! result.
use super::Services;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::Permission;

use super::llm::{KeySource, parse_provider, resolve_with};
use super::require;
use super::upstream::{self, Endpoint, ModelList, Transport, UpstreamError};
use crate::db::OrgContext;
use crate::db::repo::llm;
use crate::error::AppError;

/// How long a test may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    #[schema(max_items = 50)]
    pub models: Vec<String>,
    pub message: String,
}

pub async fn test_connection(
    svc: &Services,
    ctx: &OrgContext,
    provider: &str,
    target: Target,
) -> Result<ConnectionTest, AppError> {
    let up = &svc.upstream;
    require(
        ctx,
        match target {
            Target::Organization => Permission::LlmKeysManage,
            Target::Mine => Permission::LlmUse,
        },
    )?;
    let provider = parse_provider(provider)?;
    // The operator's providers are shared, not copied, into the read.
    let (c, k, e, p) = (
        ctx.clone(),
        svc.keyring.clone(),
        svc.env_providers.clone(),
        provider.clone(),
    );
    let resolved = svc
        .db
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
    let Some((key, base, origin)) = resolved.usable() else {
        out.message = resolved
            .reason
            .unwrap_or_else(|| "there is no base URL for this provider".into());
        return Ok(out);
    };
    let started = Instant::now();
    let endpoint = Endpoint {
        provider: &out.provider,
        base_url: &base,
        key: key.as_ref(),
        origin,
    };
    let answer = upstream::fetch_models(up, endpoint, TIMEOUT).await;
    out.latency_ms = started.elapsed().as_millis() as u64;
    describe(&mut out, answer);
    Ok(out)
}

/// What the provider's answer to the model list means, in words, with its status and the
/// models it offers.
fn describe(out: &mut ConnectionTest, answer: Result<(u16, ModelList), UpstreamError>) {
    out.message = match answer {
        Err(UpstreamError::NoAnswer { how, .. }) => match how {
            Transport::TimedOut => format!("no answer within {} s", TIMEOUT.as_secs()),
            Transport::Unreachable => {
                "the address could not be reached (check the base URL and the network)".into()
            }
            Transport::Failed => "the request failed (check the base URL)".into(),
        },
        Err(UpstreamError::NotAllowed { address, .. }) => format!(
            "the base URL leads to {address}, which is not a public address; this server connects only to public addresses for organizations (its operator can allow private ones with --allow-private-targets)"
        ),
        // Not returned for a model list (one that breaks off is read as far as it came).
        Err(UpstreamError::BrokeOff { .. }) => "the request failed (check the base URL)".into(),
        Err(UpstreamError::Refused { status, .. }) => {
            out.status = Some(status);
            match status {
                401 | 403 => format!("the provider refused the key (HTTP {status})"),
                404 => "the provider has no /models here (HTTP 404): check the base URL; it usually ends in /v1".into(),
                429 => "the provider is rate limiting this key (HTTP 429); the key itself was accepted".into(),
                _ => format!("the provider answered HTTP {status}"),
            }
        }
        Ok((status, list)) => {
            out.status = Some(status);
            match list {
                ModelList::TooLarge => format!(
                    "the provider answered with more than {} MiB; it was not read",
                    upstream::MODEL_LIST_LIMIT >> 20
                ),
                ModelList::NotAList => "the provider answered, but not with an OpenAI-style model list (check the base URL; it usually ends in /v1)".into(),
                ModelList::Ids(mut ids) => {
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
            }
        }
    };
}
