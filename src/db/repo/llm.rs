//! Organization data keys, LLM providers (per organization and per member) and policy.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_time_at, time_at};

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{UserId, fmt_time};

/// A data key as stored: wrapped by the master key `master_key_id`.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    pub key_id: String,
    pub wrapped: String,
    pub master_key_id: String,
}

fn wrapped_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<WrappedKey> {
    Ok(WrappedKey {
        key_id: r.get(0)?,
        wrapped: r.get(1)?,
        master_key_id: r.get(2)?,
    })
}

/// The organization's newest data key (the one new secrets are sealed with).
pub fn current_data_key(c: &Conn<'_>, ctx: &OrgContext) -> Result<Option<WrappedKey>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT key_id, wrapped_key, master_key_id FROM organization_keys
         WHERE organization_id = ?1 ORDER BY created_at DESC, key_id DESC LIMIT 1",
        &[],
        wrapped_from,
    )
}

pub fn data_key(
    c: &Conn<'_>,
    ctx: &OrgContext,
    key_id: &str,
) -> Result<Option<WrappedKey>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT key_id, wrapped_key, master_key_id FROM organization_keys
         WHERE organization_id = ?1 AND key_id = ?2",
        params![key_id],
        wrapped_from,
    )
}

pub fn all_data_keys(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<WrappedKey>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT key_id, wrapped_key, master_key_id FROM organization_keys
         WHERE organization_id = ?1 ORDER BY created_at, key_id",
        &[],
        wrapped_from,
    )
}

pub fn insert_data_key(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    key: &WrappedKey,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO organization_keys (organization_id, key_id, wrapped_key, master_key_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.key_id,
            key.wrapped,
            key.master_key_id,
            now
        ],
    )?;
    Ok(())
}

pub fn rewrap_data_key(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    key: &WrappedKey,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE organization_keys SET wrapped_key = ?3, master_key_id = ?4
         WHERE organization_id = ?1 AND key_id = ?2",
        params![key.key_id, key.wrapped, key.master_key_id],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow_user_keys: bool,
    pub default_model: Option<String>,
    pub allowed_models: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn policy(c: &Conn<'_>, ctx: &OrgContext) -> Result<Policy, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT allow_user_keys, default_model, allowed_models, updated_at
             FROM organization_llm_policy WHERE organization_id = ?1",
            &[],
            |r| {
                let models: String = r.get(2)?;
                Ok(Policy {
                    allow_user_keys: r.get(0)?,
                    default_model: r.get(1)?,
                    allowed_models: serde_json::from_str(&models).unwrap_or_default(),
                    updated_at: opt_time_at(r, 3)?,
                })
            },
        )?
        .unwrap_or_default())
}

pub fn save_policy(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    p: &Policy,
    by: UserId,
    now: &str,
) -> Result<(), DbError> {
    let models = serde_json::to_string(&p.allowed_models).unwrap_or_else(|_| "[]".into());
    tx.scoped(ctx).execute(
        "INSERT INTO organization_llm_policy
             (organization_id, allow_user_keys, default_model, allowed_models, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (organization_id) DO UPDATE SET
             allow_user_keys = excluded.allow_user_keys, default_model = excluded.default_model,
             allowed_models = excluded.allowed_models, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at",
        params![p.allow_user_keys,
            p.default_model,
            models,
            by.to_string(),
            now
        ],
    )?;
    Ok(())
}

/// A provider entry, the organization's or a member's. The key is sealed.
#[derive(Debug, Clone)]
pub struct Provider {
    pub provider: String,
    pub base_url: Option<String>,
    pub key_ciphertext: Option<String>,
    pub key_id: Option<String>,
    pub key_hint: Option<String>,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
    /// False for a provider that is called without a key (organization entries only).
    pub key_required: bool,
}

fn provider_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Provider> {
    Ok(Provider {
        provider: r.get(0)?,
        base_url: r.get(1)?,
        key_ciphertext: r.get(2)?,
        key_id: r.get(3)?,
        key_hint: r.get(4)?,
        enabled: r.get(5)?,
        updated_at: time_at(r, 6)?,
        key_required: r.get(7)?,
    })
}

pub fn org_providers(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<Provider>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT provider, base_url, key_ciphertext, key_id, key_hint, enabled, updated_at, key_required
         FROM organization_llm_settings WHERE organization_id = ?1 ORDER BY provider",
        &[],
        provider_from,
    )
}

pub fn org_provider(
    c: &Conn<'_>,
    ctx: &OrgContext,
    provider: &str,
) -> Result<Option<Provider>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT provider, base_url, key_ciphertext, key_id, key_hint, enabled, updated_at, key_required
         FROM organization_llm_settings WHERE organization_id = ?1 AND provider = ?2",
        params![provider],
        provider_from,
    )
}

pub fn save_org_provider(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    p: &Provider,
    by: UserId,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO organization_llm_settings
             (organization_id, provider, base_url, key_ciphertext, key_id, key_hint, enabled, updated_by, updated_at,
              key_required)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (organization_id, provider) DO UPDATE SET
             base_url = excluded.base_url, key_ciphertext = excluded.key_ciphertext,
             key_id = excluded.key_id, key_hint = excluded.key_hint, enabled = excluded.enabled,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at,
             key_required = excluded.key_required",
        params![p.provider,
            p.base_url,
            p.key_ciphertext,
            p.key_id,
            p.key_hint,
            p.enabled,
            by.to_string(),
            fmt_time(p.updated_at),
            p.key_required
        ],
    )?;
    Ok(())
}

pub fn delete_org_provider(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    provider: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM organization_llm_settings WHERE organization_id = ?1 AND provider = ?2",
        params![provider],
    )? > 0)
}

pub fn user_providers(
    c: &Conn<'_>,
    ctx: &OrgContext,
    user: UserId,
) -> Result<Vec<Provider>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT provider, base_url, key_ciphertext, key_id, key_hint, 1, updated_at, 1
         FROM user_llm_settings WHERE organization_id = ?1 AND user_id = ?2 ORDER BY provider",
        params![user.to_string()],
        provider_from,
    )
}

pub fn user_provider(
    c: &Conn<'_>,
    ctx: &OrgContext,
    user: UserId,
    provider: &str,
) -> Result<Option<Provider>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT provider, base_url, key_ciphertext, key_id, key_hint, 1, updated_at, 1
         FROM user_llm_settings WHERE organization_id = ?1 AND user_id = ?2 AND provider = ?3",
        params![user.to_string(), provider],
        provider_from,
    )
}

pub fn save_user_provider(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    p: &Provider,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO user_llm_settings
             (organization_id, user_id, provider, base_url, key_ciphertext, key_id, key_hint, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (organization_id, user_id, provider) DO UPDATE SET
             base_url = excluded.base_url, key_ciphertext = excluded.key_ciphertext,
             key_id = excluded.key_id, key_hint = excluded.key_hint, updated_at = excluded.updated_at",
        params![user.to_string(),
            p.provider,
            p.base_url,
            p.key_ciphertext,
            p.key_id,
            p.key_hint,
            fmt_time(p.updated_at)
        ],
    )?;
    Ok(())
}

pub fn delete_user_provider(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: UserId,
    provider: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM user_llm_settings WHERE organization_id = ?1 AND user_id = ?2 AND provider = ?3",
        params![user.to_string(), provider],
    )? > 0)
}
