//! The OpenAI-compatible gateway's rules: which provider, model and key a call uses and
//! the limits that admit it. Calls go through `upstream` and are counted by `metering`.
use crate::domain::Permission;
use std::collections::BTreeMap;

use super::llm::{self, KeySource};
use super::metering::Limits;
use super::upstream::{self, Endpoint, Origin, Upstream};
use crate::config::{EnvProvider, Secret};
use crate::crypto::Keyring;
use crate::db::cache::GenerationCache;
use crate::db::repo::{llm as repo, usage};
use crate::db::{Db, DbError, OrgContext};
use crate::error::AppError;

/// Why a call cannot be routed to a provider.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("`model` is required (this organization has no default model)")]
    ModelRequired,
    #[error("the model {model} is not allowed in this organization")]
    ModelNotAllowed { model: String },
    #[error("the provider {provider} has a key but no base URL")]
    NoProviderUrl { provider: String },
    /// No key for the provider; `reason` says why in the resolver's words.
    #[error("{reason}")]
    NoProviderKey { provider: String, reason: String },
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<DbError> for RouteError {
    fn from(e: DbError) -> Self {
        RouteError::App(e.into())
    }
}

/// Everything needed to make one upstream call.
#[derive(Debug, Clone)]
pub struct Call {
    pub ctx: OrgContext,
    pub provider: String,
    /// The model as the client named it (what policy and prices are about).
    pub model: String,
    /// The model as the upstream knows it (without a `provider/` prefix).
    pub upstream_model: String,
    pub base_url: String,
    pub url_origin: Origin,
    /// None for a provider that needs no key.
    pub api_key: Option<Secret>,
    pub source: KeySource,
    /// The model is priced or named by the organization's policy, so metrics may name it.
    pub known_model: bool,
}

impl Call {
    /// The model as metrics name it: itself when it is known (priced or configured),
    /// else `other`, so that names clients make up never become label values.
    pub fn metric_model(&self) -> &str {
        if self.known_model {
            &self.model
        } else {
            crate::metrics::OTHER_MODEL
        }
    }

    /// Where the call goes upstream.
    pub fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            provider: &self.provider,
            base_url: &self.base_url,
            key: self.api_key.as_ref(),
            origin: self.url_origin,
        }
    }
}

/// The providers a model name may select: `provider/model` names one explicitly;
/// otherwise the organization's only provider entry, else `openai`.
fn pick_provider(
    model: &str,
    org_providers: &[repo::Provider],
    env: &BTreeMap<String, EnvProvider>,
) -> (String, String) {
    if let Some((prefix, rest)) = model.split_once('/')
        && !rest.is_empty()
        && (org_providers.iter().any(|p| p.provider == prefix) || env.contains_key(prefix))
    {
        return (prefix.to_string(), rest.to_string());
    }
    let enabled: Vec<&repo::Provider> = org_providers.iter().filter(|p| p.enabled).collect();
    if let [only] = enabled.as_slice() {
        return (only.provider.clone(), model.to_string());
    }
    ("openai".to_string(), model.to_string())
}

/// The database side of one member's calls with one model name: provider, key and
/// limits. Reading it took about ten queries and a decryption per call.
#[derive(Debug, Clone)]
struct Setup {
    provider: String,
    model: String,
    upstream_model: String,
    base_url: String,
    url_origin: Origin,
    api_key: Option<Secret>,
    source: KeySource,
    known_model: bool,
    limits: Limits,
}

/// Setups as of a database generation: any write other than bookkeeping (a key, the
/// policy, the quota, a plan, a membership) moves the generation and so empties this, and
/// an entry is read again after a minute at the latest. Decrypted keys stay in memory
/// that long, as they did for the duration of each call before.
pub struct Setups {
    calls: GenerationCache<SetupKey, Setup>,
    /// `/v1/models` answers per member, on the same terms.
    models: GenerationCache<(crate::domain::OrgId, crate::domain::UserId), Vec<ModelEntry>>,
}

impl Default for Setups {
    fn default() -> Self {
        let minute = std::time::Duration::from_secs(60);
        Setups {
            // Model names come from clients: the bound keeps that from growing the cache.
            calls: GenerationCache::new(minute, 10_000),
            models: GenerationCache::new(minute, 10_000),
        }
    }
}

type SetupKey = (crate::domain::OrgId, crate::domain::UserId, Option<String>);

/// Chooses provider, model and key for a call of the token's member, with the limits
/// that admit it. Lookups by key only, so it runs inline (`Db::lookup`); the result is
/// kept in `setups` until the configuration changes.
pub fn prepare(
    db: &Db,
    setups: &Setups,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    ctx: &OrgContext,
    requested: Option<&str>,
) -> Result<(Call, Limits), RouteError> {
    // Permissions come from the request's own membership check, never from the cache.
    super::require(ctx, Permission::LlmUse)?;
    let key = (
        ctx.org_id(),
        ctx.user_id(),
        requested
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string),
    );
    let generation = db.generation();
    let setup = match setups.calls.get(&key, generation) {
        Some(s) => s,
        None => {
            let s = db.lookup(|tx| read_setup(tx, keyring, env, ctx, key.2.as_deref()))?;
            setups.calls.put(key, generation, s.clone());
            s
        }
    };
    Ok((
        Call {
            ctx: ctx.clone(),
            provider: setup.provider,
            model: setup.model,
            upstream_model: setup.upstream_model,
            base_url: setup.base_url,
            url_origin: setup.url_origin,
            api_key: setup.api_key,
            source: setup.source,
            known_model: setup.known_model,
        },
        setup.limits,
    ))
}

fn read_setup(
    tx: &crate::db::ReadTx<'_>,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    ctx: &OrgContext,
    requested: Option<&str>,
) -> Result<Setup, RouteError> {
    let policy = repo::policy(tx, ctx)?;
    let model = match requested {
        Some(m) => m.to_string(),
        None => policy
            .default_model
            .clone()
            .ok_or(RouteError::ModelRequired)?,
    };
    if !policy.allowed_models.is_empty() && !policy.allowed_models.contains(&model) {
        return Err(RouteError::ModelNotAllowed { model });
    }
    let providers = repo::org_providers(tx, ctx)?;
    let (provider, upstream_model) = pick_provider(&model, &providers, env);
    let entry = providers.into_iter().find(|p| p.provider == provider);
    let r = llm::resolve_with(tx, ctx, keyring, env, &provider, &policy, entry)?;
    let usable = r.usable();
    let (api_key, base_url, url_origin) = match (usable, r.api_key) {
        (Some(u), _) => u,
        (None, Some(_)) => {
            return Err(RouteError::NoProviderUrl { provider });
        }
        (None, None) => {
            let reason = r
                .reason
                .unwrap_or_else(|| format!("no key for the provider {provider}"));
            return Err(RouteError::NoProviderKey { provider, reason });
        }
    };
    let mut quota = crate::db::repo::quotas::get(tx, ctx)?;
    let plan = crate::db::repo::plans::for_org(tx, ctx)?;
    let plan_credits = plan.as_ref().and_then(|p| p.monthly_ai_credits_micros);
    // The plan's rate is a ceiling; the organization's own setting may only be stricter.
    if let Some(plan_rpm) = plan.as_ref().and_then(|p| p.rate_limit_rpm) {
        quota.rate_limit_rpm = Some(
            quota
                .rate_limit_rpm
                .map_or(plan_rpm, |own| own.min(plan_rpm)),
        );
    }
    let limits = Limits {
        credit_limit: super::quota::credit_limit(&quota, plan_credits),
        quota,
        // The admission estimate; the metered cost takes the price at the call's own time.
        price: usage::price(
            tx,
            &provider,
            &[&upstream_model],
            &crate::domain::fmt_time(chrono::Utc::now()),
        )?,
    };
    let known_model = limits.price.is_some()
        || policy.allowed_models.contains(&model)
        || policy.default_model.as_deref() == Some(model.as_str());
    Ok(Setup {
        known_model,
        provider,
        model,
        upstream_model,
        base_url,
        url_origin,
        api_key,
        source: r.source,
        limits,
    })
}

/// One line of `/v1/models`: the id to call it by and who serves it.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub id: String,
    pub owned_by: String,
}

/// How long `/v1/models` waits for each provider's list.
const MODEL_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `/v1/models` for a token's member: the policy's allowed models when it lists any;
/// otherwise what the providers the member can use offer, asked with the key a call
/// would use (the provider that takes unprefixed names without prefix, the others as
/// `provider/model`), plus the default model. A provider that does not answer is left out.
pub async fn models(
    db: &Db,
    setups: &Setups,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    up: &Upstream,
    ctx: &OrgContext,
) -> Result<Vec<ModelEntry>, AppError> {
    super::require(ctx, Permission::LlmUse)?;
    let key = (ctx.org_id(), ctx.user_id());
    let generation = db.generation();
    if let Some(list) = setups.models.get(&key, generation) {
        return Ok(list);
    }
    let (policy, unprefixed, sources) = db.lookup(|tx| {
        let policy = repo::policy(tx, ctx)?;
        let providers = repo::org_providers(tx, ctx)?;
        let unprefixed = pick_provider("", &providers, env).0;
        let mut names: Vec<String> = providers
            .iter()
            .filter(|p| p.enabled)
            .map(|p| p.provider.clone())
            .chain(env.keys().cloned())
            .collect();
        if policy.allow_user_keys {
            names.extend(
                repo::user_providers(tx, ctx, ctx.user_id())?
                    .into_iter()
                    .map(|p| p.provider),
            );
        }
        names.sort();
        names.dedup();
        // A disabled organization entry switches the provider off, also for the others.
        names.retain(|n| !providers.iter().any(|p| &p.provider == n && !p.enabled));
        let mut sources = Vec::new();
        if policy.allowed_models.is_empty() {
            for name in names {
                let entry = providers.iter().find(|p| p.provider == name).cloned();
                let r = llm::resolve_with(tx, ctx, keyring, env, &name, &policy, entry)?;
                if let Some((k, u, origin)) = r.usable() {
                    sources.push((name, u, k, origin));
                }
            }
        }
        Ok::<_, AppError>((policy, unprefixed, sources))
    })?;
    let org = ctx.org().slug.clone();
    let list = if !policy.allowed_models.is_empty() {
        policy
            .allowed_models
            .into_iter()
            .map(|id| ModelEntry {
                id,
                owned_by: org.clone(),
            })
            .collect()
    } else {
        let asked = sources.iter().map(|(name, url, key, origin)| async move {
            let endpoint = Endpoint {
                provider: name,
                base_url: url,
                key: key.as_ref(),
                origin: *origin,
            };
            let ids = upstream::list_models(up, endpoint, MODEL_LIST_TIMEOUT).await;
            if ids.is_none() {
                tracing::debug!(provider = %name, "no model list from the provider");
            }
            (name, ids.unwrap_or_default())
        });
        let mut list: Vec<ModelEntry> = Vec::new();
        for (name, ids) in futures_util::future::join_all(asked).await {
            list.extend(ids.into_iter().map(|id| ModelEntry {
                id: if *name == unprefixed {
                    id
                } else {
                    format!("{name}/{id}")
                },
                owned_by: name.clone(),
            }));
        }
        if let Some(d) = policy.default_model
            && !list.iter().any(|m| m.id == d)
        {
            list.insert(
                0,
                ModelEntry {
                    id: d,
                    owned_by: org,
                },
            );
        }
        list
    };
    setups.models.put(key, generation, list.clone());
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, enabled: bool) -> repo::Provider {
        repo::Provider {
            provider: name.into(),
            base_url: None,
            key_ciphertext: None,
            key_id: None,
            key_hint: None,
            enabled,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            key_required: true,
        }
    }

    #[test]
    fn a_provider_prefix_selects_only_a_known_provider() {
        let env = BTreeMap::new();
        let orgs = vec![entry("ollama", true), entry("openai", true)];
        assert_eq!(
            pick_provider("ollama/llama3:8b", &orgs, &env),
            ("ollama".into(), "llama3:8b".into())
        );
        assert_eq!(
            pick_provider("meta-llama/Llama-3", &orgs, &env),
            ("openai".into(), "meta-llama/Llama-3".into())
        );
        let one = vec![entry("vllm", true)];
        assert_eq!(
            pick_provider("meta-llama/Llama-3", &one, &env),
            ("vllm".into(), "meta-llama/Llama-3".into())
        );
    }
}
