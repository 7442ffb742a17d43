//! LLM providers and keys: the organization's providers and policy, members' own keys,
//! and which key a call would use (user → organization → environment).
use super::Services;
use super::outbound::{self};
use super::upstream::Origin;
use crate::domain::Permission;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::{Actor, fresh_context, require};
use crate::config::{EnvProvider, Secret};
use crate::crypto::{Key, Keyring};
use crate::db::repo::{audit, llm};
use crate::db::{Conn, OrgContext, WriteTx};
use crate::domain::{Invalid, OrgId, UserId, as_stored, fmt_time, new_id};
use crate::error::AppError;
use chrono::{DateTime, Utc};

type Result<T> = std::result::Result<T, AppError>;

pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Provider)]
pub struct ProviderView {
    pub provider: String,
    pub base_url: Option<String>,
    /// sk-…abcd; null when the entry has no key of its own
    pub key_hint: Option<String>,
    pub enabled: bool,
    /// false: called at the base URL without a key unless one is set (Ollama, vLLM, llama.cpp)
    pub key_required: bool,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub updated_at: DateTime<Utc>,
}

impl From<llm::Provider> for ProviderView {
    fn from(p: llm::Provider) -> Self {
        ProviderView {
            provider: p.provider,
            base_url: p.base_url,
            key_hint: p.key_hint,
            enabled: p.enabled,
            key_required: p.key_required,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Policy)]
pub struct PolicyView {
    pub allow_user_keys: bool,
    pub default_model: Option<String>,
    pub allowed_models: Vec<String>,
}

impl From<llm::Policy> for PolicyView {
    fn from(p: llm::Policy) -> Self {
        PolicyView {
            allow_user_keys: p.allow_user_keys,
            default_model: p.default_model,
            allowed_models: p.allowed_models,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = LlmSettings)]
pub struct Settings {
    pub policy: PolicyView,
    pub providers: Vec<ProviderView>,
}

pub fn parse_provider(raw: &str) -> Result<String> {
    provider_name(raw).map_err(AppError::from)
}

fn provider_name(raw: &str) -> std::result::Result<String, Invalid> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Invalid::new(
            "provider",
            "Use 1 to 32 lower-case letters, digits and hyphens, starting with a letter or digit.",
        ))
    }
}

fn parse_base_url(raw: &str) -> std::result::Result<String, Invalid> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && url.len() <= 2048 && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_string())
        }
        _ => Err(Invalid::new(
            "base_url",
            "Enter an address that starts with http:// or https://, e.g. https://api.openai.com/v1.",
        )),
    }
}

fn parse_api_key(raw: &str) -> std::result::Result<String, Invalid> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 4096 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid::new(
            "api_key",
            "Enter the key without spaces (at most 4096 letters, digits and signs).",
        ));
    }
    Ok(key.to_string())
}

fn org_aad(org: OrgId, provider: &str) -> String {
    format!("{org}/llm/{provider}/organization")
}

fn user_aad(org: OrgId, user: UserId, provider: &str) -> String {
    format!("{org}/llm/{provider}/user/{user}")
}

/// The organization's current data key, made and wrapped on first use.
pub(crate) fn data_key_for_sealing(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    keyring: &Keyring,
    now: &str,
) -> Result<Key> {
    if let Some(w) = llm::current_data_key(tx, ctx)? {
        return unwrap(keyring, ctx, &w);
    }
    let key = Key::generate(format!("dk-{}", new_id()));
    let master = keyring.current();
    llm::insert_data_key(
        tx,
        ctx,
        &llm::WrappedKey {
            key_id: key.id().to_string(),
            wrapped: master.wrap(&key, &ctx.org_id().to_string()),
            master_key_id: master.id().to_string(),
        },
        now,
    )?;
    Ok(key)
}

fn unwrap(keyring: &Keyring, ctx: &OrgContext, w: &llm::WrappedKey) -> Result<Key> {
    let master = keyring
        .get(&w.master_key_id)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    master
        .unwrap_key(&w.wrapped, &ctx.org_id().to_string(), &w.key_id)
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// The plaintext of a stored key. Any failure is an internal error whose text names no
/// secret (wrong master key, moved or altered ciphertext).
fn open_key(
    c: &Conn<'_>,
    ctx: &OrgContext,
    keyring: &Keyring,
    p: &llm::Provider,
    aad: &str,
) -> Result<Option<Secret>> {
    let (Some(ct), Some(key_id)) = (&p.key_ciphertext, &p.key_id) else {
        return Ok(None);
    };
    open_sealed(c, ctx, keyring, key_id, ct, aad)
        .map(Some)
        .map_err(|e| AppError::Internal(format!("{e} ({})", p.provider)))
}

/// The plaintext of a value sealed under the organization's data key `key_id`. Any
/// failure is an internal error whose text names no secret (wrong master key, moved or
/// altered ciphertext).
pub(crate) fn open_sealed(
    c: &Conn<'_>,
    ctx: &OrgContext,
    keyring: &Keyring,
    key_id: &str,
    sealed: &str,
    aad: &str,
) -> Result<Secret> {
    let w = llm::data_key(c, ctx, key_id)?
        .ok_or_else(|| AppError::Internal(format!("data key {key_id} is missing")))?;
    let dk = unwrap(keyring, ctx, &w)?;
    let plain = dk
        .open(sealed, aad)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| AppError::Internal("a stored secret is not text".into()))
}

pub async fn settings(svc: &Services, ctx: &OrgContext) -> Result<Settings> {
    require(ctx, Permission::LlmUse)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            Ok(Settings {
                policy: llm::policy(tx, &ctx)?.into(),
                providers: llm::org_providers(tx, &ctx)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            })
        })
        .await
}

/// A change to a provider entry. `api_key`/`base_url`: absent = unchanged, `null` =
/// remove, a string = set.
#[derive(Debug, Clone, Default)]
pub struct ProviderInput {
    pub api_key: Option<Option<String>>,
    pub base_url: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub key_required: Option<bool>,
}

pub async fn put_provider(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    provider: &str,
    input: ProviderInput,
) -> Result<ProviderView> {
    let (keyring, targets) = (&svc.keyring, svc.targets);
    require(ctx, Permission::LlmKeysManage)?;
    let mut errors = Vec::new();
    let provider = provider_name(provider).map_err(|e| errors.push(e)).ok();
    if input.key_required == Some(false) && matches!(input.base_url, Some(None)) {
        errors.push(no_key_needs_base_url());
    }
    let api_key = match input.api_key {
        Some(Some(k)) => parse_api_key(&k).map_err(|e| errors.push(e)).ok().map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let base_url = match input.base_url {
        Some(Some(u)) => parse_base_url(&u)
            .map_err(|e| errors.push(e))
            .ok()
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(url)) = &base_url
        && let Err(e) = outbound::check_saved(url, targets, "base_url").await
    {
        errors.push(e);
    }
    let Some(provider) = provider.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let (ctx, actor, keyring) = (ctx.clone(), actor.clone(), keyring.clone());
    let at = as_stored(svc.now());
    let now = fmt_time(at);
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::LlmKeysManage)?;
            let mut row = llm::org_provider(tx, &me, &provider)?.unwrap_or(llm::Provider {
                provider: provider.clone(),
                base_url: None,
                key_ciphertext: None,
                key_id: None,
                key_hint: None,
                enabled: true,
                updated_at: at,
                key_required: true,
            });
            let key_change = match &api_key {
                Some(Some(k)) => {
                    let dk = data_key_for_sealing(tx, &me, &keyring, &now)?;
                    row.key_ciphertext =
                        Some(dk.seal(k.as_bytes(), &org_aad(me.org_id(), &provider)));
                    row.key_id = Some(dk.id().to_string());
                    row.key_hint = Some(crate::auth::hint(k));
                    "set"
                }
                Some(None) => {
                    row.key_ciphertext = None;
                    row.key_id = None;
                    row.key_hint = None;
                    "removed"
                }
                None => "unchanged",
            };
            if let Some(u) = base_url {
                row.base_url = u;
            }
            if let Some(e) = input.enabled {
                row.enabled = e;
            }
            if let Some(k) = input.key_required {
                row.key_required = k;
            }
            if !row.key_required && row.base_url.is_none() {
                return Err(AppError::invalid(vec![no_key_needs_base_url()]));
            }
            row.updated_at = at;
            llm::save_org_provider(tx, &me, &row, me.user_id())?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "llm.provider.updated",
                    "llm_provider",
                    Some(provider.clone()),
                    json!({"base_url": row.base_url, "enabled": row.enabled, "api_key": key_change,
                       "key_required": row.key_required}),
                ),
                &now,
            )?;
            Ok(ProviderView::from(row))
        })
        .await
}

fn no_key_needs_base_url() -> Invalid {
    Invalid::new(
        "base_url",
        "A provider that needs no key needs its address, e.g. http://localhost:11434/v1.",
    )
}

pub async fn delete_provider(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    provider: &str,
) -> Result<()> {
    require(ctx, Permission::LlmKeysManage)?;
    let provider = parse_provider(provider)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::LlmKeysManage)?;
            if !llm::delete_org_provider(tx, &me, &provider)? {
                return Err(AppError::not_found());
            }
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "llm.provider.deleted",
                    "llm_provider",
                    Some(provider.clone()),
                    json!({}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub allow_user_keys: Option<bool>,
    pub default_model: Option<Option<String>>,
    pub allowed_models: Option<Vec<String>>,
}

fn parse_model(field: &'static str, m: &str) -> std::result::Result<String, Invalid> {
    let m = m.trim();
    if m.is_empty() || m.len() > 200 || m.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "Use 1 to 200 characters for a model name.",
        ));
    }
    Ok(m.to_string())
}

fn default_not_allowed() -> Invalid {
    Invalid::new(
        "default_model",
        "Choose one of the allowed models, or none.",
    )
}

pub async fn patch_policy(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    input: PolicyInput,
) -> Result<PolicyView> {
    require(ctx, Permission::LlmPolicyManage)?;
    let mut errors = Vec::new();
    let allowed = input.allowed_models.map(|models| {
        let mut out: Vec<String> = Vec::new();
        for m in models {
            match parse_model("allowed_models", &m) {
                Ok(m) if !out.contains(&m) => out.push(m),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        out
    });
    if allowed.as_ref().is_some_and(|a| a.len() > 500) {
        errors.push(Invalid::new("allowed_models", "List at most 500 models."));
    }
    let default = match input.default_model {
        Some(Some(m)) => parse_model("default_model", &m)
            .map_err(|e| errors.push(e))
            .ok()
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    // Both sent: told with the rest. One of them alone is checked against what is stored.
    if let (Some(Some(d)), Some(a)) = (&default, &allowed)
        && !a.is_empty()
        && !a.contains(d)
    {
        errors.push(default_not_allowed());
    }
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::LlmPolicyManage)?;
            let mut p = llm::policy(tx, &me)?;
            if let Some(a) = input.allow_user_keys {
                p.allow_user_keys = a;
            }
            if let Some(a) = allowed {
                p.allowed_models = a;
            }
            if let Some(d) = default {
                p.default_model = d;
            }
            if let Some(d) = &p.default_model
                && !p.allowed_models.is_empty()
                && !p.allowed_models.contains(d)
            {
                return Err(AppError::invalid(vec![default_not_allowed()]));
            }
            llm::save_policy(tx, &me, &p, me.user_id(), &now)?;
            let view = PolicyView::from(p);
            audit::append(
                tx,
                &me,
                &actor.entry("llm.policy.updated", "llm_policy", None, json!(view)),
                &now,
            )?;
            Ok(view)
        })
        .await
}

/// The caller's own keys in the organization.
pub async fn my_keys(svc: &Services, ctx: &OrgContext) -> Result<Vec<ProviderView>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            Ok(llm::user_providers(tx, &ctx, ctx.user_id())?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
}

fn user_keys_disabled() -> AppError {
    AppError::Forbidden {
        code: "user_keys_disabled",
        message: "this organization does not allow members' own provider keys".into(),
    }
}

/// A personal key as entered: the key, and the base URL when it is not the provider's.
pub struct MyKey<'a> {
    pub api_key: &'a str,
    pub base_url: Option<&'a str>,
}

pub async fn put_my_key(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    provider: &str,
    key: MyKey<'_>,
) -> Result<ProviderView> {
    let (keyring, targets) = (&svc.keyring, svc.targets);
    let MyKey { api_key, base_url } = key;
    require(ctx, Permission::LlmUse)?;
    let mut errors = Vec::new();
    let provider = provider_name(provider).map_err(|e| errors.push(e)).ok();
    let key = parse_api_key(api_key).map_err(|e| errors.push(e)).ok();
    let base_url = base_url
        .map(parse_base_url)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if let Some(url) = &base_url
        && let Err(e) = outbound::check_saved(url, targets, "base_url").await
    {
        errors.push(e);
    }
    let (Some(provider), Some(key), true) = (provider, key, errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let (ctx, actor, keyring) = (ctx.clone(), actor.clone(), keyring.clone());
    let at = as_stored(svc.now());
    let now = fmt_time(at);
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::LlmUse)?;
            if !llm::policy(tx, &me)?.allow_user_keys {
                return Err(user_keys_disabled());
            }
            let dk = data_key_for_sealing(tx, &me, &keyring, &now)?;
            let row = llm::Provider {
                key_ciphertext: Some(dk.seal(
                    key.as_bytes(),
                    &user_aad(me.org_id(), me.user_id(), &provider),
                )),
                key_id: Some(dk.id().to_string()),
                key_hint: Some(crate::auth::hint(&key)),
                provider: provider.clone(),
                base_url,
                enabled: true,
                updated_at: at,
                key_required: true,
            };
            llm::save_user_provider(tx, &me, me.user_id(), &row)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "llm.user_key.updated",
                    "llm_provider",
                    Some(provider.clone()),
                    json!({"base_url": row.base_url}),
                ),
                &now,
            )?;
            Ok(ProviderView::from(row))
        })
        .await
}

/// Removing one's own key is always allowed, also after the organization disallowed them.
pub async fn delete_my_key(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    provider: &str,
) -> Result<()> {
    let provider = parse_provider(provider)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            if !llm::delete_user_provider(tx, &me, me.user_id(), &provider)? {
                return Err(AppError::not_found());
            }
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "llm.user_key.deleted",
                    "llm_provider",
                    Some(provider.clone()),
                    json!({}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    User,
    Organization,
    Environment,
    None,
}

impl KeySource {
    /// As stored in usage events (the same words as the JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::User => "user",
            KeySource::Organization => "organization",
            KeySource::Environment => "environment",
            KeySource::None => "none",
        }
    }
}

/// The key a call would use, with its plaintext (never serialized).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub provider: String,
    pub source: KeySource,
    pub api_key: Option<Secret>,
    pub key_hint: Option<String>,
    pub base_url: Option<String>,
    /// Who chose `base_url`.
    pub url_origin: Origin,
    /// False when the organization's entry says the provider is called without a key.
    pub key_required: bool,
    /// Why there is no key, when there is none.
    pub reason: Option<String>,
}

impl Resolved {
    /// The key (none for a provider that needs none) and the URL a call uses, or `None`
    /// when the call cannot be made (see `reason`).
    pub fn usable(&self) -> Option<(Option<Secret>, String, Origin)> {
        let url = self.base_url.clone()?;
        match &self.api_key {
            Some(k) => Some((Some(k.clone()), url, self.url_origin)),
            None if !self.key_required => Some((None, url, self.url_origin)),
            None => None,
        }
    }
}

/// What `GET …/llm/resolve` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Resolution)]
pub struct ResolveView {
    pub provider: String,
    pub source: KeySource,
    pub key_hint: Option<String>,
    pub base_url: Option<String>,
    /// false when the organization's entry says the provider needs no key
    pub key_required: bool,
    /// why there is no key (source none)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

impl From<&Resolved> for ResolveView {
    fn from(r: &Resolved) -> Self {
        ResolveView {
            provider: r.provider.clone(),
            source: r.source,
            key_hint: r.key_hint.clone(),
            base_url: r.base_url.clone(),
            key_required: r.key_required,
            reason: r.reason.clone(),
        }
    }
}

/// User key (when the organization allows them) → organization key → environment, with
/// the policy and the organization's entry for `provider` already read (callers resolve
/// several providers or have them at hand). A disabled organization entry switches the
/// provider off for the whole organization.
pub fn resolve_with(
    c: &Conn<'_>,
    ctx: &OrgContext,
    keyring: &Keyring,
    env: &BTreeMap<String, EnvProvider>,
    provider: &str,
    policy: &llm::Policy,
    org: Option<llm::Provider>,
) -> Result<Resolved> {
    let env = env.get(provider);
    let default_url = (provider == "openai").then(|| OPENAI_BASE_URL.to_string());
    let org_url = org.as_ref().and_then(|o| o.base_url.clone());
    let env_url = env.and_then(|e| e.base_url.clone());
    // The organization's URL first, else the operator's (environment, then built in).
    let fallback = match &org_url {
        Some(u) => Some((u.clone(), Origin::Tenant)),
        None => env_url.or(default_url).map(|u| (u, Origin::Operator)),
    };
    let fallback_origin = fallback.as_ref().map_or(Origin::Operator, |f| f.1);
    let fallback_url = fallback.map(|f| f.0);
    let mut out = Resolved {
        provider: provider.to_string(),
        source: KeySource::None,
        api_key: None,
        key_hint: None,
        base_url: fallback_url.clone(),
        url_origin: fallback_origin,
        key_required: true,
        reason: None,
    };
    if org.as_ref().is_some_and(|o| !o.enabled) {
        out.reason = Some(format!(
            "the provider {provider} is disabled in this organization"
        ));
        return Ok(out);
    }
    if policy.allow_user_keys
        && let Some(mine) = llm::user_provider(c, ctx, ctx.user_id(), provider)?
    {
        let key = open_key(
            c,
            ctx,
            keyring,
            &mine,
            &user_aad(ctx.org_id(), ctx.user_id(), provider),
        )?;
        if key.is_some() {
            out.source = KeySource::User;
            out.api_key = key;
            out.key_hint = mine.key_hint;
            if let Some(u) = mine.base_url {
                out.base_url = Some(u);
                out.url_origin = Origin::Tenant;
            }
            return Ok(out);
        }
    }
    if let Some(o) = &org {
        let key = open_key(c, ctx, keyring, o, &org_aad(ctx.org_id(), provider))?;
        if key.is_some() {
            out.source = KeySource::Organization;
            out.api_key = key;
            out.key_hint.clone_from(&o.key_hint);
            return Ok(out);
        }
    }
    if let Some(k) = env.and_then(|e| e.api_key.clone()) {
        out.source = KeySource::Environment;
        out.key_hint = Some(crate::auth::hint(k.expose()));
        out.api_key = Some(k);
        return Ok(out);
    }
    if org.as_ref().is_some_and(|o| !o.key_required) {
        // Called as it is, at the entry's own URL.
        out.key_required = false;
        out.base_url = org_url;
        out.url_origin = Origin::Tenant;
        return Ok(out);
    }
    out.reason = Some(format!(
        "no key for {provider}: set one for the organization{}, or XAGENT_{}_API_KEY on the server",
        if policy.allow_user_keys {
            " or your own"
        } else {
            ""
        },
        provider.to_ascii_uppercase().replace('-', "_")
    ));
    Ok(out)
}

pub async fn resolve(svc: &Services, ctx: &OrgContext, provider: &str) -> Result<ResolveView> {
    let mut one = resolve_each(svc, ctx, vec![provider.to_string()]).await?;
    one.pop()
        .ok_or_else(|| AppError::Internal("resolve gave no answer".into()))
}

/// `resolve` for several providers, in one read (the member's keys page lists them all).
pub async fn resolve_each(
    svc: &Services,
    ctx: &OrgContext,
    providers: Vec<String>,
) -> Result<Vec<ResolveView>> {
    require(ctx, Permission::LlmUse)?;
    let providers = providers
        .iter()
        .map(|p| parse_provider(p))
        .collect::<Result<Vec<_>>>()?;
    let (ctx, keyring, env) = (ctx.clone(), svc.keyring.clone(), svc.env_providers.clone());
    svc.db
        .read(move |tx| {
            let policy = llm::policy(tx, &ctx)?;
            providers
                .iter()
                .map(|p| {
                    let org = llm::org_provider(tx, &ctx, p)?;
                    let r = resolve_with(tx, &ctx, &keyring, &env, p, &policy, org)?;
                    Ok(ResolveView::from(&r))
                })
                .collect()
        })
        .await
}

/// At start: every data key must be wrapped by a configured master key (a wrong
/// `XAGENT_MASTER_KEY` stops the server with this message instead of failing later), and
/// data keys still under an older master key are re-wrapped under the current one.
pub async fn check_and_rewrap(svc: &Services) -> std::result::Result<usize, String> {
    let keyring = svc.keyring.clone();
    let (missing, stale) = svc
        .db
        .read({
            let keyring = keyring.clone();
            move |tx| {
                let ids = crate::db::unscoped::unscoped_all_org_ids(tx)?;
                let known = keyring.ids();
                let (mut missing, mut stale) = (BTreeMap::new(), 0usize);
                for id in ids {
                    let Some(ctx) =
                        crate::db::scope::SystemScope::new("key-check").in_org(tx, id)?
                    else {
                        continue;
                    };
                    for w in llm::all_data_keys(tx, &ctx)? {
                        if keyring.get(&w.master_key_id).is_err() {
                            *missing.entry(w.master_key_id.clone()).or_insert(0usize) += 1;
                        } else if known.first() != Some(&w.master_key_id) {
                            stale += 1;
                        }
                    }
                }
                Ok::<_, AppError>((missing, stale))
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    if !missing.is_empty() {
        let wanted: Vec<String> = missing.keys().cloned().collect();
        return Err(format!(
            "the configured master key does not match this database: its data keys are wrapped by {} (configured: {}). Set XAGENT_MASTER_KEY, or restore master.key in the data directory.",
            wanted.join(", "),
            keyring.ids().join(", ")
        ));
    }
    if stale == 0 {
        return Ok(0);
    }
    rewrap_all(svc).await.map_err(|e| e.to_string())
}

/// Re-wraps every data key that is not under the current master key. The provider keys
/// themselves are untouched: nobody re-enters a credential.
pub async fn rewrap_all(svc: &Services) -> Result<usize> {
    let keyring = svc.keyring.clone();
    svc.db
        .write(move |tx| {
            let current = keyring.current();
            let mut n = 0;
            for id in crate::db::unscoped::unscoped_all_org_ids(tx)? {
                let Some(ctx) = crate::db::scope::SystemScope::new("key-rewrap").in_org(tx, id)?
                else {
                    continue;
                };
                for w in llm::all_data_keys(tx, &ctx)? {
                    if w.master_key_id == current.id() {
                        continue;
                    }
                    let dk = unwrap(&keyring, &ctx, &w)?;
                    llm::rewrap_data_key(
                        tx,
                        &ctx,
                        &llm::WrappedKey {
                            key_id: w.key_id.clone(),
                            wrapped: current.wrap(&dk, &id.to_string()),
                            master_key_id: current.id().to_string(),
                        },
                    )?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
}

/// Master key ids some data key is wrapped by (for retiring the others).
pub async fn master_keys_in_use(svc: &Services) -> Result<Vec<String>> {
    svc.db
        .read(|tx| {
            let mut used = Vec::new();
            for id in crate::db::unscoped::unscoped_all_org_ids(tx)? {
                let Some(ctx) = crate::db::scope::SystemScope::new("key-usage").in_org(tx, id)?
                else {
                    continue;
                };
                for w in llm::all_data_keys(tx, &ctx)? {
                    if !used.contains(&w.master_key_id) {
                        used.push(w.master_key_id);
                    }
                }
            }
            Ok(used)
        })
        .await
}
