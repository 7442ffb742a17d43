//! The OpenAI-compatible gateway's rules: which provider, model and key a call uses, and
//! metering each call into the organization's usage.
use crate::domain::Permission;
use std::collections::BTreeMap;

use super::llm::{self, KeySource};
use crate::config::{EnvProvider, Secret};
use crate::crypto::Keyring;
use crate::db::cache::GenerationCache;
use crate::db::repo::{llm as repo, usage};
use crate::db::{Db, OrgContext};
use crate::domain::new_id;
use crate::error::AppError;

/// Why a call cannot go upstream, in the terms of the OpenAI error format.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        Refusal {
            status,
            kind,
            code,
            message,
            retry_after_secs: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Refusal::new(
            400,
            "invalid_request_error",
            "invalid_request",
            message.into(),
        )
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

impl From<crate::db::DbError> for Refusal {
    fn from(e: crate::db::DbError) -> Self {
        AppError::from(e).into()
    }
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        let status = e.status().as_u16();
        let kind = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let message = if status >= 500 {
            "internal error".to_string()
        } else {
            e.to_string()
        };
        Refusal {
            status,
            kind,
            code: e.code(),
            message,
            retry_after_secs: None,
        }
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
    /// None for a provider that needs no key.
    pub api_key: Option<Secret>,
    pub source: KeySource,
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

/// What admission needs besides the ledger: the quota settings, the credit limit and the
/// model's price.
#[derive(Debug, Clone)]
pub struct Limits {
    pub quota: crate::db::repo::quotas::Quota,
    /// The organization's monthly credit limit (`quota::credit_limit`).
    pub credit_limit: Option<i64>,
    pub price: Option<(i64, i64)>,
}

/// The database side of one member's calls with one model name: provider, key and
/// limits. Reading it took about ten queries and a decryption per call.
#[derive(Debug, Clone)]
struct Setup {
    provider: String,
    model: String,
    upstream_model: String,
    base_url: String,
    api_key: Option<Secret>,
    source: KeySource,
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
) -> Result<(Call, Limits), Refusal> {
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
            api_key: setup.api_key,
            source: setup.source,
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
) -> Result<Setup, Refusal> {
    let policy = repo::policy(tx, ctx)?;
    let model = match requested {
        Some(m) => m.to_string(),
        None => policy.default_model.clone().ok_or_else(|| {
            Refusal::invalid("`model` is required (this organization has no default model)")
        })?,
    };
    if !policy.allowed_models.is_empty() && !policy.allowed_models.contains(&model) {
        return Err(Refusal::new(
            403,
            "permission_error",
            "model_not_allowed",
            format!("the model {model} is not allowed in this organization"),
        ));
    }
    let providers = repo::org_providers(tx, ctx)?;
    let (provider, upstream_model) = pick_provider(&model, &providers, env);
    let entry = providers.into_iter().find(|p| p.provider == provider);
    let r = llm::resolve_with(tx, ctx, keyring, env, &provider, &policy, entry)?;
    let usable = r.usable();
    let (api_key, base_url) = match (usable, r.api_key) {
        (Some(u), _) => u,
        (None, Some(_)) => {
            return Err(Refusal::new(
                424,
                "invalid_request_error",
                "no_provider_url",
                format!("the provider {provider} has a key but no base URL"),
            ));
        }
        (None, None) => {
            return Err(Refusal::new(
                424,
                "invalid_request_error",
                "no_provider_key",
                r.reason
                    .unwrap_or_else(|| format!("no key for the provider {provider}")),
            ));
        }
    };
    let quota = crate::db::repo::quotas::get(tx, ctx)?;
    let plan_credits =
        crate::db::repo::plans::for_org(tx, ctx)?.and_then(|p| p.monthly_ai_credits_micros);
    let limits = Limits {
        credit_limit: super::quota::credit_limit(&quota, plan_credits),
        quota,
        price: usage::price(tx, &provider, &[&upstream_model])?,
    };
    Ok(Setup {
        provider,
        model,
        upstream_model,
        base_url,
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
    client: &reqwest::Client,
    ctx: &OrgContext,
) -> Result<Vec<ModelEntry>, Refusal> {
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
                if let Some((k, u)) = r.usable() {
                    sources.push((name, u, k));
                }
            }
        }
        Ok::<_, Refusal>((policy, unprefixed, sources))
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
        let asked = sources.iter().map(|(name, url, key)| async move {
            let ids =
                super::llm_probe::list_models(client, url, key.as_ref(), MODEL_LIST_TIMEOUT).await;
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

/// Token counts of one call, from the upstream's `usage` or estimated when it gave none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
}

/// Cost in micro-units, rounded up so that no metered call is free when the model has a price.
pub fn cost(price: Option<(i64, i64)>, t: Tokens) -> i64 {
    let Some((pin, pout)) = price else {
        return 0;
    };
    let micro = t.input.saturating_mul(pin) + t.output.saturating_mul(pout);
    (micro + 999_999) / 1_000_000
}

/// One finished call waiting to be written.
pub struct Metered {
    pub call: Call,
    pub token_id: Option<String>,
    pub endpoint: &'static str,
    pub status: u16,
    pub tokens: Tokens,
    /// The model the provider's answer named, when it named one.
    pub served_model: Option<String>,
    pub latency_ms: i64,
    /// When the call ended (the gateway's clock): its period and the event's time.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Released once the call's usage is committed.
    pub reservation: Option<super::quota::Reservation>,
}

enum MeterMsg {
    Call(Box<Metered>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes usage in batches: every call's event, and the period totals per organization
/// and member added up in memory first, in one write job for all the calls that arrived
/// while the previous job was committing. One job per call spent most of the writer's
/// time on per-job savepoints and repeated upserts.
#[derive(Clone)]
pub struct Meter {
    tx: tokio::sync::mpsc::UnboundedSender<MeterMsg>,
}

/// Calls written per job at most.
const METER_BATCH: usize = 1024;
/// How long a batch gathers calls after its first one. Each commit costs the writer a WAL
/// sync whatever its size; gathering for a few milliseconds keeps that to a few hundred
/// a second under load (answers never wait for it; a crash can lose this much usage).
const METER_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

impl Meter {
    pub fn start(db: Db) -> Meter {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MeterMsg>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let deadline = tokio::time::Instant::now() + METER_WINDOW;
                let mut calls = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        MeterMsg::Call(c) => calls.push(*c),
                        // Whoever flushes is waiting: write now.
                        MeterMsg::Flush(done) => {
                            flushes.push(done);
                            break;
                        }
                    }
                    if calls.len() >= METER_BATCH {
                        break;
                    }
                    next = tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten();
                }
                if !calls.is_empty() {
                    write_batch(&db, calls).await;
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        Meter { tx }
    }

    pub fn submit(&self, m: Metered) {
        if let Err(e) = self.tx.send(MeterMsg::Call(Box::new(m))) {
            tracing::error!(error = %e, "the usage meter has stopped; a call was not metered");
        }
    }

    /// Waits until everything submitted before this call is written (shutdown).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(MeterMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batch(db: &Db, calls: Vec<Metered>) {
    let rows: Vec<(
        OrgContext,
        chrono::DateTime<chrono::Utc>,
        String,
        usage::Event,
    )> = calls
        .iter()
        .map(|m| {
            (
                m.call.ctx.clone(),
                m.at,
                m.call.upstream_model.clone(),
                usage::Event {
                    id: new_id().to_string(),
                    api_token_id: m.token_id.clone(),
                    endpoint: m.endpoint,
                    provider: m.call.provider.clone(),
                    model: m.call.model.clone(),
                    served_model: m.served_model.clone(),
                    priced: false,
                    key_source: m.call.source.as_str(),
                    status_code: m.status,
                    input_tokens: m.tokens.input,
                    output_tokens: m.tokens.output,
                    cost_micros: 0,
                    latency_ms: m.latency_ms,
                    created_at: crate::domain::fmt_time(m.at),
                },
            )
        })
        .collect();
    let n = rows.len();
    let done = db
        .write_bookkeeping(crate::db::Bookkeeping::Usage, move |tx| {
            type PriceKey = (String, Option<String>, String);
            let mut prices: BTreeMap<PriceKey, Option<(i64, i64)>> = BTreeMap::new();
            let mut anchors: BTreeMap<crate::domain::OrgId, u32> = BTreeMap::new();
            let mut batch = usage::Batch::default();
            let mut costs = Vec::with_capacity(rows.len());
            let mut last = None;
            for (ctx, at, upstream_model, mut e) in rows {
                last = Some(at);
                let key = (e.provider.clone(), e.served_model.clone(), upstream_model);
                let price = match prices.get(&key) {
                    Some(p) => *p,
                    None => {
                        let served = key.1.as_deref().unwrap_or("");
                        let p = usage::price(tx, &key.0, &[served, &key.2])?;
                        prices.insert(key, p);
                        p
                    }
                };
                e.priced = price.is_some();
                e.cost_micros = cost(
                    price,
                    Tokens {
                        input: e.input_tokens,
                        output: e.output_tokens,
                    },
                );
                costs.push(e.cost_micros);
                let anchor = match anchors.get(&ctx.org_id()) {
                    Some(a) => *a,
                    None => {
                        let (q, _) = super::quota::current_period(tx, &ctx, at)?;
                        anchors.insert(ctx.org_id(), q.billing_anchor_day);
                        q.billing_anchor_day
                    }
                };
                let period = crate::domain::period::period_at(at, anchor).label;
                batch.add(tx, &ctx, &period, &e)?;
            }
            let touched = batch.periods();
            batch.commit_totals(tx)?;
            let now = crate::domain::fmt_time(last.unwrap_or_else(crate::domain::now));
            for (ctx, period) in touched {
                super::quota::check_alerts(tx, &ctx, &period, &now)?;
            }
            Ok::<_, AppError>(costs)
        })
        .await;
    match done {
        Ok(costs) => {
            for (m, c) in calls.into_iter().zip(costs) {
                if let Some(r) = m.reservation {
                    r.settle(c);
                }
            }
        }
        Err(e) => {
            // The reservations end unsettled: nothing of these calls was committed.
            tracing::error!(error = %e, calls = n, "writing usage failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_and_is_zero_without_a_price() {
        let t = Tokens {
            input: 1000,
            output: 10,
        };
        assert_eq!(cost(None, t), 0);
        // 1000 × 0.15 + 10 × 0.6 = 156 µ$ exactly.
        assert_eq!(cost(Some((150_000, 600_000)), t), 156);
        assert_eq!(
            cost(
                Some((1, 0)),
                Tokens {
                    input: 1,
                    output: 0
                }
            ),
            1
        );
    }

    fn entry(name: &str, enabled: bool) -> repo::Provider {
        repo::Provider {
            provider: name.into(),
            base_url: None,
            key_ciphertext: None,
            key_id: None,
            key_hint: None,
            enabled,
            updated_at: String::new(),
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
