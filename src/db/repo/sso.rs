//! Single sign-on: an organization's OpenID Connect provider, the email domains routed to
//! it (an instance-wide routing table: one domain, one organization) and the sign-ins under
//! way.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{OrgId, Role, UserId};

/// An organization's provider as stored (the secret sealed).
#[derive(Debug, Clone)]
pub struct Provider {
    pub issuer: String,
    pub client_id: String,
    pub secret_ciphertext: Option<String>,
    pub secret_key_id: Option<String>,
    pub secret_hint: Option<String>,
    pub default_role: Role,
    pub sso_only: bool,
    pub updated_at: DateTime<Utc>,
}

pub fn provider(c: &Conn<'_>, ctx: &OrgContext) -> Result<Option<Provider>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT issuer, client_id, secret_ciphertext, secret_key_id, secret_hint,
                default_role, sso_only, updated_at
         FROM sso_providers WHERE organization_id = ?1",
        &[],
        |r| {
            Ok(Provider {
                issuer: r.get(0)?,
                client_id: r.get(1)?,
                secret_ciphertext: r.get(2)?,
                secret_key_id: r.get(3)?,
                secret_hint: r.get(4)?,
                default_role: word_at(r, 5)?,
                sso_only: r.get(6)?,
                updated_at: time_at(r, 7)?,
            })
        },
    )
}

pub fn save_provider(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    p: &Provider,
    by: UserId,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO sso_providers (organization_id, issuer, client_id, secret_ciphertext,
             secret_key_id, secret_hint, default_role, sso_only, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (organization_id) DO UPDATE SET issuer = excluded.issuer,
             client_id = excluded.client_id, secret_ciphertext = excluded.secret_ciphertext,
             secret_key_id = excluded.secret_key_id, secret_hint = excluded.secret_hint,
             default_role = excluded.default_role, sso_only = excluded.sso_only,
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        params![
            p.issuer,
            p.client_id,
            p.secret_ciphertext,
            p.secret_key_id,
            p.secret_hint,
            p.default_role.as_str(),
            p.sso_only,
            now,
            by.to_string()
        ],
    )?;
    Ok(())
}

/// Removes the provider, its domains and the sign-ins under way; whether there was one.
pub fn delete_provider(tx: &WriteTx<'_>, ctx: &OrgContext) -> Result<bool, DbError> {
    set_domains(tx, ctx, &[])?;
    tx.scoped(ctx)
        .execute("DELETE FROM sso_logins WHERE organization_id = ?1", &[])?;
    Ok(tx
        .scoped(ctx)
        .execute("DELETE FROM sso_providers WHERE organization_id = ?1", &[])?
        > 0)
}

/// The email domains routed to the organization's provider, sorted.
pub fn domains(c: &Conn<'_>, ctx: &OrgContext) -> Result<Vec<String>, DbError> {
    c.query_vec(
        "SELECT domain FROM sso_domains WHERE organization_id = ?1 ORDER BY domain",
        [ctx.org_id().to_string()],
        |r| r.get(0),
    )
}

/// The organization that already routes one of `domains`, other than `ctx`'s, with that
/// domain (the first in order).
pub fn domain_taken(
    c: &Conn<'_>,
    ctx: &OrgContext,
    domains: &[String],
) -> Result<Option<String>, DbError> {
    for d in domains {
        let other = c.query_opt(
            "SELECT domain FROM sso_domains WHERE domain = ?1 AND organization_id <> ?2",
            params![d, ctx.org_id().to_string()],
            |r| r.get::<_, String>(0),
        )?;
        if other.is_some() {
            return Ok(other);
        }
    }
    Ok(None)
}

/// Makes `domains` the organization's routed domains (the caller checked that no other
/// organization routes one of them; the primary key refuses it anyway).
pub fn set_domains(tx: &WriteTx<'_>, ctx: &OrgContext, domains: &[String]) -> Result<(), DbError> {
    let org = ctx.org_id().to_string();
    tx.execute(
        "DELETE FROM sso_domains WHERE organization_id = ?1",
        [org.as_str()],
    )?;
    for d in domains {
        tx.execute(
            "INSERT INTO sso_domains (domain, organization_id) VALUES (?1, ?2)",
            params![d, org],
        )?;
    }
    Ok(())
}

/// The organization whose provider signs in people of an email domain, if any.
pub fn org_for_domain(c: &Conn<'_>, domain: &str) -> Result<Option<OrgId>, DbError> {
    c.query_opt(
        "SELECT organization_id FROM sso_domains WHERE domain = ?1",
        [domain],
        |r| Ok(OrgId::from_uuid(uuid_at(r, 0)?)),
    )
}

/// A sign-in under way.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    pub expires_at: DateTime<Utc>,
}

pub fn insert_login(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    state_hash: &str,
    login: &PendingLogin,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO sso_logins (organization_id, state_hash, nonce, pkce_verifier, created_at,
             expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            state_hash,
            login.nonce,
            login.pkce_verifier,
            now,
            crate::domain::fmt_time(login.expires_at)
        ],
    )?;
    Ok(())
}

/// Removes and returns the sign-in started with this state in this organization: a state
/// is good for one return from the provider.
pub fn take_login(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    state_hash: &str,
) -> Result<Option<PendingLogin>, DbError> {
    let found = tx.scoped(ctx).query_opt(
        "SELECT nonce, pkce_verifier, expires_at FROM sso_logins
         WHERE organization_id = ?1 AND state_hash = ?2",
        params![state_hash],
        |r| {
            Ok(PendingLogin {
                nonce: r.get(0)?,
                pkce_verifier: r.get(1)?,
                expires_at: time_at(r, 2)?,
            })
        },
    )?;
    if found.is_some() {
        tx.scoped(ctx).execute(
            "DELETE FROM sso_logins WHERE organization_id = ?1 AND state_hash = ?2",
            params![state_hash],
        )?;
    }
    Ok(found)
}

/// Removes the sign-ins that expired before `now` (maintenance).
pub fn purge_expired_logins(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    now: &str,
) -> Result<usize, DbError> {
    tx.scoped(ctx).execute(
        "DELETE FROM sso_logins WHERE organization_id = ?1 AND expires_at < ?2",
        params![now],
    )
}
