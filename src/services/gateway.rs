//! The OpenAI-compatible gateway's rules: which provider, model and key a call uses, and
//! metering each call into the organization's usage.
use std::collections::BTreeMap;

use super::llm::{self, KeySource};
use crate::config::{EnvProvider, Secret};
use crate::crypto::Keyring;
use crate::db::repo::{llm as repo, usage};
use crate::db::{Db, OrgContext};
use crate::domain::{new_id, now_str};
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
    pub api_key: Secret,
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

/// Chooses provider, model and key for a call of the token's member. Lookups by key only,
/// so it runs inline (`Db::lookup`).
pub fn prepare(
    db: &Db,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    ctx: &OrgContext,
    requested: Option<&str>,
) -> Result<Call, Refusal> {
    super::require(ctx, "llm.use")?;
    db.lookup(|tx| {
        let policy = repo::policy(tx, ctx)?;
        let model = match requested.map(str::trim).filter(|m| !m.is_empty()) {
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
        let r = llm::resolve_in(tx, ctx, keyring, env, &provider)?;
        match (r.api_key, r.base_url) {
            (Some(api_key), Some(base_url)) => Ok(Call {
                ctx: ctx.clone(),
                provider,
                model,
                upstream_model,
                base_url,
                api_key,
                source: r.source,
            }),
            (Some(_), None) => Err(Refusal::new(
                424,
                "invalid_request_error",
                "no_provider_url",
                format!("the provider {provider} has a key but no base URL"),
            )),
            (None, _) => Err(Refusal::new(
                424,
                "invalid_request_error",
                "no_provider_key",
                r.reason
                    .unwrap_or_else(|| format!("no key for the provider {provider}")),
            )),
        }
    })
}

/// The models a token's member may call: the policy's list, or when it is empty, the
/// default model and the priced models.
pub fn models(db: &Db, ctx: &OrgContext) -> Result<Vec<String>, Refusal> {
    super::require(ctx, "llm.use")?;
    let policy = db.lookup(|tx| repo::policy(tx, ctx))?;
    if !policy.allowed_models.is_empty() {
        return Ok(policy.allowed_models);
    }
    Ok(policy.default_model.into_iter().collect())
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

/// Writes the call's usage event and adds it to the period totals (one write job; the
/// writer commits many of them together).
pub async fn meter(
    db: &Db,
    call: &Call,
    token_id: Option<String>,
    endpoint: &'static str,
    status: u16,
    tokens: Tokens,
    latency_ms: i64,
) -> Result<(), AppError> {
    let (ctx, provider, model) = (call.ctx.clone(), call.provider.clone(), call.model.clone());
    let source = match call.source {
        KeySource::User => "user",
        KeySource::Organization => "organization",
        KeySource::Environment => "environment",
        KeySource::None => "none",
    };
    db.write(move |tx| {
        let price = usage::price(tx, &model)?;
        let now = now_str();
        let (_, period) = super::quota::current_period(tx, &ctx)?;
        let period = period.label;
        usage::record(
            tx,
            &ctx,
            &period,
            &usage::Event {
                id: new_id().to_string(),
                api_token_id: token_id,
                endpoint,
                provider,
                model,
                key_source: source,
                status_code: status,
                input_tokens: tokens.input,
                output_tokens: tokens.output,
                cost_micros: cost(price, tokens),
                latency_ms,
                created_at: now,
            },
        )?;
        Ok(())
    })
    .await
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
