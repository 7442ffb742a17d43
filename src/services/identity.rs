//! Accounts, sign-in, sessions and API tokens.
use super::Services;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::throttle::LoginThrottle;
use super::two_factor::SecondFactor;
use super::{Actor, ClientMeta};
use crate::auth;
use crate::db::OrgContext;
use crate::db::repo::{audit, orgs, sessions, settings, tokens, users};
use crate::db::scope::enter;
use crate::db::unscoped::{Membership, unscoped_memberships_of};
use crate::domain::{
    ApiTokenId, Email, Invalid, OrgId, OrgKind, OrgName, Password, PersonName, SessionId, Slug,
    TokenName, UserId, UserStatus, fmt_time,
};
use crate::error::{AppError, Result};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub max_age: Duration,
}

impl SessionPolicy {
    fn idle_cutoff(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at - chrono::Duration::from_std(self.idle).unwrap_or(chrono::Duration::days(1))
    }
}

/// Last-seen times are written at most this often, so reads stay reads.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

// ---------------------------------------------------------------- users

/// Creates a user and their personal organization (they own it; it becomes current).
pub async fn create_user(
    svc: &Services,
    email: &str,
    name: &str,
    password: &str,
    superuser: bool,
    meta: &ClientMeta,
) -> Result<(users::User, orgs::Org)> {
    let mut errors = Vec::new();
    let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
    let name = PersonName::parse(name).map_err(|e| errors.push(e)).ok();
    let password = Password::parse(password).map_err(|e| errors.push(e)).ok();
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(AppError::invalid(errors));
    };
    let hash = hash_off_thread(password).await?;
    let meta = meta.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            insert_user_with_workspace(tx, &email, &name, Some(&hash), superuser, &meta, &now)
        })
        .await
}

/// Hashes a password off the async threads (argon2 is deliberately slow).
pub(crate) async fn hash_off_thread(password: Password) -> Result<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| AppError::Internal("hashing task failed".into()))?
        .map_err(AppError::from)
}

/// The user row, their personal organization (owner, current) and the audit rows, inside
/// the caller's write job. A user without a password hash cannot sign in with a password.
pub(crate) fn insert_user_with_workspace(
    tx: &crate::db::WriteTx<'_>,
    email: &Email,
    name: &PersonName,
    password_hash: Option<&str>,
    superuser: bool,
    meta: &ClientMeta,
    now: &str,
) -> Result<(users::User, orgs::Org)> {
    if users::find_by_email(tx, email)?.is_some() {
        return Err(AppError::conflict(
            "email_taken",
            "An account with this email already exists.",
        ));
    }
    let id = UserId::new();
    users::insert(
        tx,
        &users::NewUser {
            id,
            email,
            name,
            password_hash,
            is_superuser: superuser,
            now,
        },
    )?;
    let actor = Actor {
        user_id: id,
        email: email.to_string(),
        meta: meta.clone(),
    };
    let org = create_personal_org(tx, &actor, name, now)?;
    audit::append_instance(
        tx,
        &actor.entry(
            "user.created",
            "user",
            Some(id.to_string()),
            json!({"email": email.as_str(), "superuser": superuser}),
        ),
        now,
    )?;
    let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
    Ok((user, org))
}

/// The actor's personal organization (they own it; it becomes their current one), with
/// its audit row, inside the caller's write job.
pub(crate) fn create_personal_org(
    tx: &crate::db::WriteTx<'_>,
    actor: &Actor,
    name: &PersonName,
    now: &str,
) -> Result<orgs::Org> {
    let local = actor.email.split('@').next().unwrap_or("user");
    let slug = super::orgs::free_slug(tx, &Slug::derive_from(local))?;
    let org_name = OrgName::parse(&format!("{} (personal)", name.as_str()))
        .or_else(|_| OrgName::parse("Personal workspace"))?;
    let plan = super::orgs::default_plan(tx)?;
    let org =
        super::orgs::create_in_tx(tx, actor, &org_name, &slug, OrgKind::Personal, &plan, now)?;
    users::set_current_org(tx, actor.user_id, org.id, now)?;
    Ok(org)
}

pub async fn signup(
    svc: &Services,
    email: &str,
    name: &str,
    password: &str,
    meta: &ClientMeta,
) -> Result<(users::User, orgs::Org)> {
    let enabled = svc
        .db
        .read(|tx| Ok::<_, AppError>(settings::get_bool(tx, settings::SIGNUP_ENABLED)?))
        .await?;
    if !enabled {
        return Err(AppError::Forbidden {
            code: "signup_disabled",
            message:
                "sign-up is turned off on this instance; ask an administrator for an invitation"
                    .into(),
        });
    }
    create_user(svc, email, name, password, false, meta).await
}

pub async fn user_count(svc: &Services) -> Result<i64> {
    svc.db.read(|tx| Ok(users::count(tx)?)).await
}

pub async fn set_signup(svc: &Services, enabled: bool, actor: Option<&Actor>) -> Result<()> {
    let actor = actor.cloned();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            settings::set(
                tx,
                settings::SIGNUP_ENABLED,
                if enabled { "true" } else { "false" },
                &now,
            )?;
            let entry = audit::Entry {
                actor_id: actor.as_ref().map(|a| a.user_id),
                actor_email: actor.as_ref().map(|a| a.email.as_str()),
                action: "instance.signup_changed",
                resource_type: "instance",
                resource_id: None,
                ip: actor.as_ref().and_then(|a| a.meta.ip.as_deref()),
                user_agent: actor.as_ref().and_then(|a| a.meta.user_agent.as_deref()),
                details: json!({"signup_enabled": enabled}),
            };
            audit::append_instance(tx, &entry, &now)?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------- sign-in

pub struct LoginOutcome {
    pub user: users::User,
    pub memberships: Vec<Membership>,
    pub current_organization_id: Option<OrgId>,
    pub session_token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks the password and the second factor (for an account that has one), then opens
/// a session. Unknown email and wrong password give the same error after the same work;
/// failures are counted (throttling) and audited.
pub async fn login(
    svc: &Services,
    policy: SessionPolicy,
    throttle: &LoginThrottle,
    email_raw: &str,
    password: &str,
    second: &SecondFactor,
    meta: &ClientMeta,
) -> Result<LoginOutcome> {
    let user = authenticate_password(svc, throttle, email_raw, password, meta).await?;
    finish_login(svc, policy, throttle, user, second, meta).await
}

/// The second half of `login`, for a user whose password was right: the second factor,
/// then the session. The account's failure count is cleared only here, so a right
/// password does not reset the count of wrong codes.
pub async fn finish_login(
    svc: &Services,
    policy: SessionPolicy,
    throttle: &LoginThrottle,
    user: users::User,
    second: &SecondFactor,
    meta: &ClientMeta,
) -> Result<LoginOutcome> {
    super::two_factor::pass_login(svc, throttle, &user, second, meta).await?;
    throttle.record_success(&user.email.to_lowercase());
    start_session(svc, policy, user, meta, SignInMethod::Password).await
}

/// How a session was opened, as its `auth.login` audit row says.
#[derive(Debug, Clone, Copy)]
pub enum SignInMethod {
    Password,
    /// Single sign-on through this organization's provider.
    Sso(OrgId),
}

/// Whether the user has a confirmed second factor (see `two_factor::has_two_factor`).
pub fn has_two_factor(c: &crate::db::Conn<'_>, user: UserId) -> Result<bool> {
    super::two_factor::has_two_factor(c, user)
}

/// The account behind an email and password, throttled per account and address; every
/// failure is audited, and unknown emails cost the same hashing time as known ones.
pub async fn authenticate_password(
    svc: &Services,
    throttle: &LoginThrottle,
    email_raw: &str,
    password: &str,
    meta: &ClientMeta,
) -> Result<users::User> {
    if email_raw.trim().is_empty() || password.is_empty() {
        let mut errs = Vec::new();
        if email_raw.trim().is_empty() {
            errs.push(Invalid::new("email", "Enter your email."));
        }
        if password.is_empty() {
            errs.push(Invalid::new("password", "Enter your password."));
        }
        return Err(AppError::invalid(errs));
    }
    let email_key = email_raw.trim().to_lowercase();
    if let Some(wait) = throttle.blocked(&email_key, meta.ip.as_deref()) {
        audit_login_failure(svc, &email_key, "throttled", meta).await?;
        return Err(AppError::TooManyRequests {
            code: "rate_limited",
            message: "Too many failed sign-in attempts; try again later.".into(),
            retry_after_secs: Some(wait),
        });
    }
    let found = match Email::parse(email_raw) {
        Ok(email) => {
            svc.db
                .read(move |tx| Ok::<_, AppError>(users::find_by_email(tx, &email)?))
                .await?
        }
        Err(_) => None,
    };
    let (stored_hash, user) = match found {
        Some((user, Some(hash))) => (hash, Some(user)),
        _ => (auth::dummy_hash().to_string(), None),
    };
    let (pw, checked_hash) = (password.to_string(), stored_hash.clone());
    let password_ok =
        tokio::task::spawn_blocking(move || auth::verify_password(&pw, &checked_hash))
            .await
            .map_err(|_| AppError::Internal("verification task failed".into()))?;
    let user = match user {
        Some(u) if password_ok && u.status == UserStatus::Active => u,
        Some(u) => {
            throttle.record_failure(&email_key, meta.ip.as_deref());
            let reason = if password_ok {
                "account_disabled"
            } else {
                "wrong_password"
            };
            audit_login_failure_user(svc, &u, reason, meta).await?;
            return Err(AppError::InvalidCredentials);
        }
        None => {
            throttle.record_failure(&email_key, meta.ip.as_deref());
            audit_login_failure(svc, &email_key, "unknown_email", meta).await?;
            return Err(AppError::InvalidCredentials);
        }
    };
    // Checked only once the password matched, so the answer says nothing about an account
    // to someone who does not know its password.
    let checked = user.clone();
    let refusal = svc
        .db
        .read(move |tx| super::sso::password_refusal(tx, &checked))
        .await?;
    if let Some(refusal) = refusal {
        audit_login_failure_user(svc, &user, "sso_required", meta).await?;
        return Err(refusal);
    }
    if auth::needs_rehash(&stored_hash) {
        upgrade_hash(svc, user.id, password, stored_hash).await;
    }
    Ok(user)
}

/// Replaces an imported (bcrypt) hash by an argon2id one of the password that just
/// matched it, unless the hash changed meanwhile. The sign-in goes on if this fails.
async fn upgrade_hash(svc: &Services, user: UserId, password: &str, old: String) {
    let pw = password.to_string();
    let hashed = tokio::task::spawn_blocking(move || auth::hash_verified_password(&pw)).await;
    let Ok(Ok(new)) = hashed else {
        tracing::warn!(%user, "cannot hash the password again");
        return;
    };
    let now = svc.now_str();
    let replaced = svc
        .db
        .write(move |tx| {
            Ok::<_, AppError>(users::replace_password_hash(tx, user, &old, &new, &now)?)
        })
        .await;
    match replaced {
        Ok(true) => tracing::info!(%user, "imported password hash replaced by argon2id"),
        Ok(false) => {}
        Err(e) => tracing::warn!(%user, error = %e, "cannot store the new password hash"),
    }
}

/// A new session for `user` (its cookie token and CSRF token, shown only now), audited,
/// with the organizations they can switch to.
pub(crate) async fn start_session(
    svc: &Services,
    policy: SessionPolicy,
    user: users::User,
    meta: &ClientMeta,
    method: SignInMethod,
) -> Result<LoginOutcome> {
    let session_token = auth::random_token();
    let csrf_token = auth::random_token();
    let started = svc.now();
    let expires_at =
        started + chrono::Duration::from_std(policy.max_age).unwrap_or(chrono::Duration::days(30));
    let (hash, csrf, meta2, user_id) = (
        auth::token_hash(&session_token),
        csrf_token.clone(),
        meta.clone(),
        user.id,
    );
    let email = user.email.clone();
    let stored_current = user.current_organization_id;
    let (memberships, current) = svc
        .db
        .write(move |tx| {
            let now_s = fmt_time(started);
            let sid = SessionId::new();
            sessions::insert(
                tx,
                &sessions::NewSession {
                    id: sid,
                    user_id,
                    token_hash: &hash,
                    csrf_token: &csrf,
                    now: &now_s,
                    expires_at: &fmt_time(expires_at),
                    ip: meta2.ip.as_deref(),
                    user_agent: meta2.user_agent.as_deref(),
                },
            )?;
            users::set_last_login(tx, user_id, &now_s)?;
            let actor = Actor {
                user_id,
                email,
                meta: meta2,
            };
            audit::append_instance(
                tx,
                &actor.entry(
                    "auth.login",
                    "session",
                    Some(sid.to_string()),
                    match method {
                        SignInMethod::Password => json!({}),
                        SignInMethod::Sso(org) => json!({"method": "sso", "organization_id": org}),
                    },
                ),
                &now_s,
            )?;
            let memberships = unscoped_memberships_of(tx, user_id)?;
            let current = current_org_in(stored_current, &memberships);
            Ok::<_, AppError>((memberships, current))
        })
        .await?;
    Ok(LoginOutcome {
        user,
        memberships,
        current_organization_id: current,
        session_token,
        csrf_token,
        expires_at,
    })
}

async fn audit_login_failure(
    svc: &Services,
    email: &str,
    reason: &'static str,
    meta: &ClientMeta,
) -> Result<()> {
    let (email, meta) = (email.to_string(), meta.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let entry = audit::Entry {
                actor_id: None,
                actor_email: Some(&email),
                action: "auth.login_failed",
                resource_type: "user",
                resource_id: None,
                ip: meta.ip.as_deref(),
                user_agent: meta.user_agent.as_deref(),
                details: json!({"email": email, "reason": reason}),
            };
            audit::append_instance(tx, &entry, &now)?;
            Ok(())
        })
        .await
}

async fn audit_login_failure_user(
    svc: &Services,
    user: &users::User,
    reason: &'static str,
    meta: &ClientMeta,
) -> Result<()> {
    let actor = Actor {
        user_id: user.id,
        email: user.email.clone(),
        meta: meta.clone(),
    };
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            audit::append_instance(
                tx,
                &actor.entry(
                    "auth.login_failed",
                    "user",
                    Some(actor.user_id.to_string()),
                    json!({"reason": reason}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

/// The user's current organization: the stored one while they are still a member of it,
/// else their personal organization (first in the list), else none.
fn current_org_in(stored: Option<OrgId>, memberships: &[Membership]) -> Option<OrgId> {
    match stored {
        Some(id) if memberships.iter().any(|m| m.organization.id == id) => Some(id),
        _ => memberships.first().map(|m| m.organization.id),
    }
}

// ---------------------------------------------------------------- authentication

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    pub session_id: SessionId,
    pub csrf_token: String,
    pub user: users::User,
    /// When it was made and when it was last used before this request: what an
    /// organization's stricter session policy is measured against.
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Set when the last-seen stamp is due to be renewed (`touch_session`); shared by the
    /// clones of one request's caller, so it is written once.
    pub touch: Option<Arc<AtomicBool>>,
}

/// Resolves a session cookie; `None` for unknown, revoked, expired or idle sessions and
/// for disabled users.
pub async fn authenticate_session(
    svc: &Services,
    policy: SessionPolicy,
    token: &str,
) -> Result<Option<SessionAuth>> {
    let hash = auth::token_hash(token);
    let at = svc.now();
    let idle_cutoff = policy.idle_cutoff(at);
    let found = svc.db.lookup(|tx| {
        let Some(s) = sessions::find_by_hash(tx, &hash)? else {
            return Ok::<_, AppError>(None);
        };
        if s.revoked_at.is_some() || s.expires_at <= at || s.last_seen_at <= idle_cutoff {
            return Ok(None);
        }
        let Some(user) = users::find_by_id(tx, s.user_id)? else {
            return Ok(None);
        };
        if user.status != UserStatus::Active {
            return Ok(None);
        }
        Ok(Some((s, user)))
    })?;
    let Some((s, user)) = found else {
        return Ok(None);
    };
    Ok(Some(SessionAuth {
        session_id: s.id,
        csrf_token: s.csrf_token,
        user,
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        touch: needs_touch(s.last_seen_at, at).then(|| Arc::new(AtomicBool::new(false))),
    }))
}

/// Records the session's use at `at` when it is due (at most once per request and per
/// touch interval). Called once the request is known to be allowed: a request an
/// organization's session policy refuses must not count as use, or a retry would pass.
pub fn touch_session(svc: &Services, s: &SessionAuth, at: DateTime<Utc>) {
    let Some(flag) = &s.touch else { return };
    if flag.swap(true, Ordering::SeqCst) {
        return;
    }
    let (db, id, stamp) = (svc.db.clone(), s.session_id, fmt_time(at));
    tokio::spawn(async move {
        let _ = db
            .write_bookkeeping(crate::db::Bookkeeping::SessionSeen, move |tx| {
                Ok::<_, AppError>(sessions::touch(tx, id, &stamp)?)
            })
            .await;
    });
}

fn needs_touch(last: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    at.signed_duration_since(last) > TOUCH_EVERY
}

/// A request authenticated by an API token: it acts in the token's organization only.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub token_id: ApiTokenId,
    pub organization_id: OrgId,
    pub user: users::User,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What `TokenAuth::check_use` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Expired,
    Valid,
    /// Valid, and its last-used stamp was renewed (whoever keeps it should keep the new one).
    Stamped,
}

impl TokenAuth {
    pub fn expired(&self, at: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// The check every use of a token passes, whether it was just read or remembered
    /// (the gateway keeps holders between calls): not expired at `at`, and its last-used
    /// stamp renewed when due.
    pub fn check_use(&mut self, svc: &Services, at: DateTime<Utc>) -> TokenUse {
        if self.expired(at) {
            return TokenUse::Expired;
        }
        match touch_token_if_due(svc, self.token_id, self.last_used_at, at) {
            Some(stamp) => {
                self.last_used_at = Some(stamp);
                TokenUse::Stamped
            }
            None => TokenUse::Valid,
        }
    }
}

/// Records that a token was used, at most once per touch interval (`last_used_at` is the
/// stamp the caller knows). Returns the new stamp when it wrote one.
pub fn touch_token_if_due(
    svc: &Services,
    id: ApiTokenId,
    last_used_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !last_used_at.is_none_or(|l| needs_touch(l, at)) {
        return None;
    }
    let (db, stamp) = (svc.db.clone(), at);
    let written = fmt_time(at);
    tokio::spawn(async move {
        let _ = db
            .write_bookkeeping(crate::db::Bookkeeping::TokenUsed, move |tx| {
                Ok::<_, AppError>(tokens::touch(tx, id, &written)?)
            })
            .await;
    });
    Some(stamp)
}

pub async fn authenticate_api_token(svc: &Services, token: &str) -> Result<Option<TokenAuth>> {
    if !token.starts_with(auth::API_TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = auth::token_hash(token);
    let found = svc.db.lookup(|tx| {
        let Some(t) = tokens::find_by_hash(tx, &hash)? else {
            return Ok::<_, AppError>(None);
        };
        if t.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(user) = users::find_by_id(tx, t.user_id)? else {
            return Ok(None);
        };
        if user.status != UserStatus::Active {
            return Ok(None);
        }
        Ok(Some((t, user)))
    })?;
    let Some((t, user)) = found else {
        return Ok(None);
    };
    let mut auth = TokenAuth {
        token_id: t.id,
        organization_id: t.organization_id,
        user,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at,
        created_at: t.created_at,
    };
    match auth.check_use(svc, svc.now()) {
        TokenUse::Expired => Ok(None),
        TokenUse::Valid | TokenUse::Stamped => Ok(Some(auth)),
    }
}

// ---------------------------------------------------------------- the signed-in user

pub struct Me {
    pub user: users::User,
    pub memberships: Vec<Membership>,
    pub current_organization_id: Option<OrgId>,
}

pub async fn me(svc: &Services, user: UserId) -> Result<Me> {
    svc.db
        .read(move |tx| {
            let user = users::find_by_id(tx, user)?.ok_or(AppError::Unauthorized)?;
            let memberships = unscoped_memberships_of(tx, user.id)?;
            let current = current_org_in(user.current_organization_id, &memberships);
            Ok(Me {
                user,
                memberships,
                current_organization_id: current,
            })
        })
        .await
}

/// Switches the user's current organization; 404 unless they are a member of it.
pub async fn set_current_org(svc: &Services, user: UserId, org_ref: String) -> Result<OrgContext> {
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let ctx = enter(tx, user, &org_ref)?.ok_or_else(AppError::not_found)?;
            users::set_current_org(tx, user, ctx.org_id(), &now)?;
            Ok(ctx)
        })
        .await
}

pub async fn logout(svc: &Services, actor: &Actor, session: SessionId) -> Result<()> {
    revoke_session(svc, actor, session)
        .await
        .or_else(|e| match e {
            AppError::NotFound { .. } => Ok(()),
            e => Err(e),
        })
}

pub async fn list_sessions(
    svc: &Services,
    policy: SessionPolicy,
    user: UserId,
) -> Result<Vec<sessions::Session>> {
    let at = svc.now();
    let (now_s, cutoff) = (fmt_time(at), fmt_time(policy.idle_cutoff(at)));
    svc.db
        .read(move |tx| Ok(sessions::list_active(tx, user, &now_s, &cutoff)?))
        .await
}

/// Ends one of the actor's own sessions; 404 for anyone else's.
pub async fn revoke_session(svc: &Services, actor: &Actor, session: SessionId) -> Result<()> {
    let actor = actor.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            if !sessions::revoke(tx, actor.user_id, session, &now)? {
                return Err(AppError::not_found());
            }
            audit::append_instance(
                tx,
                &actor.entry(
                    "session.revoked",
                    "session",
                    Some(session.to_string()),
                    json!({}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------- API tokens

pub struct NewApiToken {
    pub token: tokens::ApiToken,
    /// Shown once, never stored.
    pub secret: String,
}

pub async fn create_api_token(
    svc: &Services,
    actor: &Actor,
    name: &str,
    org_ref: String,
    expires_at: Option<&str>,
) -> Result<NewApiToken> {
    let mut errors = Vec::new();
    let name = TokenName::parse(name).map_err(|e| errors.push(e)).ok();
    let at = svc.now();
    let expires = match expires_at.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(None),
        Some(raw) => match parse_expiry(raw) {
            Ok(t) if t > at => Some(Some(t)),
            Ok(_) => {
                errors.push(Invalid::new("expires_at", "Choose a date in the future."));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let (Some(name), Some(expires)) = (name, expires) else {
        return Err(AppError::invalid(errors));
    };
    let secret = auth::new_api_token();
    let (hash, hint) = (auth::token_hash(&secret), auth::hint(&secret));
    let actor = actor.clone();
    let now = svc.now_str();
    let token = svc
        .db
        .write(move |tx| {
            let ctx = enter(tx, actor.user_id, &org_ref)?.ok_or_else(AppError::not_found)?;
            super::security::check_token_expiry(&ctx.org().security, at, expires)?;
            let expires = expires.map(fmt_time);
            let id = ApiTokenId::new();
            let token = tokens::insert(
                tx,
                &tokens::NewToken {
                    id,
                    user_id: actor.user_id,
                    organization_id: ctx.org_id(),
                    name: name.as_str(),
                    token_hash: &hash,
                    token_hint: &hint,
                    now: &now,
                    expires_at: expires.as_deref(),
                },
            )?;
            audit::append(
                tx,
                &ctx,
                &actor.entry(
                    "api_token.created",
                    "api_token",
                    Some(id.to_string()),
                    json!({"name": name.as_str(), "expires_at": expires}),
                ),
                &now,
            )?;
            Ok::<_, AppError>(token)
        })
        .await?;
    Ok(NewApiToken { token, secret })
}

/// An RFC 3339 time, or a date (`2027-01-31`, meaning the end of that day, UTC).
fn parse_expiry(raw: &str) -> std::result::Result<DateTime<Utc>, Invalid> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Invalid::new(
                "expires_at",
                "Enter a date (YYYY-MM-DD) or an RFC 3339 time.",
            )
        })
}

pub async fn list_api_tokens(svc: &Services, user: UserId) -> Result<Vec<tokens::ApiToken>> {
    svc.db
        .read(move |tx| Ok(tokens::list_for_user(tx, user)?))
        .await
}

/// Revokes one of the actor's own tokens; 404 for anyone else's or an already revoked one.
pub async fn revoke_api_token(svc: &Services, actor: &Actor, id: ApiTokenId) -> Result<()> {
    let actor = actor.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let token = tokens::find(tx, actor.user_id, id)?.ok_or_else(AppError::not_found)?;
            if !tokens::revoke(tx, actor.user_id, id, &now)? {
                return Err(AppError::not_found());
            }
            // Audited in the token's organization while the user still belongs to it.
            if let Some(ctx) = enter(tx, actor.user_id, &token.organization_id.to_string())? {
                audit::append(
                    tx,
                    &ctx,
                    &actor.entry(
                        "api_token.revoked",
                        "api_token",
                        Some(id.to_string()),
                        json!({"name": token.name}),
                    ),
                    &now,
                )?;
            }
            Ok(())
        })
        .await
}

/// Removes dead sessions (background cleanup).
pub async fn purge_dead_sessions(svc: &Services, policy: SessionPolicy) -> Result<usize> {
    let at = svc.now();
    let (now_s, cutoff) = (fmt_time(at), fmt_time(policy.idle_cutoff(at)));
    svc.db
        .write(move |tx| Ok(sessions::delete_dead(tx, &now_s, &cutoff)?))
        .await
}

// ---------------------------------------------------------------- account basics

/// Checks a signed-in user's password again (before a sensitive change), throttled like
/// sign-in: a wrong one counts against the account and the address. A wrong password is
/// a field error of `password`.
pub async fn confirm_password(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    password: &str,
) -> Result<()> {
    confirm_password_as(svc, throttle, actor, password, "password").await
}

async fn confirm_password_as(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    password: &str,
    field: &'static str,
) -> Result<()> {
    let key = actor.email.to_lowercase();
    if let Some(wait) = throttle.blocked(&key, actor.meta.ip.as_deref()) {
        return Err(AppError::TooManyRequests {
            code: "rate_limited",
            message: "Too many wrong passwords; try again later.".into(),
            retry_after_secs: Some(wait),
        });
    }
    let user = actor.user_id;
    let stored = svc
        .db
        .read(move |tx| Ok::<_, AppError>(users::password_hash(tx, user)?))
        .await?;
    let (pw, hash) = (
        password.to_string(),
        stored.unwrap_or_else(|| auth::dummy_hash().to_string()),
    );
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
        .await
        .map_err(|_| AppError::Internal("verification task failed".into()))?;
    if !ok {
        throttle.record_failure(&key, actor.meta.ip.as_deref());
        return Err(AppError::invalid(vec![Invalid::new(
            field,
            "The password is not right.",
        )]));
    }
    Ok(())
}

/// What a password change ended.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    /// The user's other sessions that were ended.
    pub sessions_ended: usize,
    pub tokens_revoked: usize,
}

/// A password change as the user asks for it.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
    /// End the user's other sessions (the default).
    pub end_other_sessions: bool,
    /// Revoke the user's API tokens (the default).
    pub revoke_tokens: bool,
}

/// Changes the signed-in user's password (the current one is checked, throttled). The
/// session it is done from stays; the other sessions and the API tokens end unless the
/// user keeps them. Open reset links stop working.
pub async fn change_password(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    session: Option<SessionId>,
    change: &PasswordChange,
) -> Result<SignedOut> {
    let (current, new) = (change.current.as_str(), change.new.as_str());
    let (end_other_sessions, revoke_tokens) = (change.end_other_sessions, change.revoke_tokens);
    let mut errors = Vec::new();
    if current.is_empty() {
        errors.push(Invalid::new(
            "current_password",
            "Enter your current password.",
        ));
    }
    let new = Password::parse(new)
        .map_err(|e| errors.push(Invalid::new("new_password", e.reason)))
        .ok();
    let Some(new) = new.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    confirm_password_as(svc, throttle, actor, current, "current_password").await?;
    let hash = hash_off_thread(new).await?;
    let (actor, now) = (actor.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let id = actor.user_id;
            users::set_password_hash(tx, id, &hash, &now)?;
            crate::db::repo::password_resets::use_up(tx, id, &now)?;
            let sessions_ended = match (end_other_sessions, session) {
                (false, _) => 0,
                (true, Some(keep)) => sessions::revoke_all_except(tx, id, keep, &now)?,
                (true, None) => sessions::revoke_all_for_user(tx, id, &now)?,
            };
            let tokens_revoked = if revoke_tokens {
                tokens::revoke_all_for_user(tx, id, &now)?
            } else {
                0
            };
            audit::append_instance(
                tx,
                &actor.entry(
                    "user.password_changed",
                    "user",
                    Some(id.to_string()),
                    json!({"email": actor.email, "sessions_ended": sessions_ended,
                           "tokens_revoked": tokens_revoked}),
                ),
                &now,
            )?;
            Ok(SignedOut {
                sessions_ended,
                tokens_revoked,
            })
        })
        .await
}

/// Ends every session of the signed-in user, the current one too, and their API tokens
/// when asked.
pub async fn sign_out_everywhere(
    svc: &Services,
    actor: &Actor,
    revoke_tokens: bool,
) -> Result<SignedOut> {
    let (actor, now) = (actor.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let id = actor.user_id;
            let sessions_ended = sessions::revoke_all_for_user(tx, id, &now)?;
            let tokens_revoked = if revoke_tokens {
                tokens::revoke_all_for_user(tx, id, &now)?
            } else {
                0
            };
            audit::append_instance(
                tx,
                &actor.entry(
                    "user.signed_out_everywhere",
                    "user",
                    Some(id.to_string()),
                    json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked}),
                ),
                &now,
            )?;
            Ok(SignedOut {
                sessions_ended,
                tokens_revoked,
            })
        })
        .await
}

/// How long an emailed reset link works.
pub const FORGOT_LINK_MINUTES: i64 = 30;

/// "Forgot password": when the email belongs to an active account, a one-time link to set
/// a new password (valid 30 minutes) is emailed. The answer is the same whether or not
/// there is such an account, and the mail leaves in the background so that the time taken
/// does not tell either. Requests are throttled per email and per address; each is audited.
pub async fn forgot_password(
    svc: &Services,
    throttle: &LoginThrottle,
    email_raw: &str,
    meta: &ClientMeta,
) -> Result<()> {
    let Some(mail) = svc.mail.clone() else {
        return Err(AppError::conflict(
            "smtp_not_configured",
            "password reset by email is not available on this instance (no mail server is \
             configured); ask an instance administrator for a reset link",
        ));
    };
    let email = Email::parse(email_raw).map_err(|e| AppError::invalid(vec![e]))?;
    let key = email.as_str().to_string();
    if let Some(wait) = throttle.blocked(&key, meta.ip.as_deref()) {
        return Err(AppError::TooManyRequests {
            code: "rate_limited",
            message: "Too many reset requests; try again later.".into(),
            retry_after_secs: Some(wait),
        });
    }
    throttle.record_failure(&key, meta.ip.as_deref());
    let token = auth::random_token();
    let hash = auth::token_hash(&token);
    let expires_at = svc.now() + chrono::Duration::minutes(FORGOT_LINK_MINUTES);
    let (meta, now) = (meta.clone(), svc.now_str());
    let to = svc
        .db
        .write(move |tx| {
            let expires = fmt_time(expires_at);
            match users::find_by_email(tx, &email)? {
                Some((user, _)) if user.status == UserStatus::Active => {
                    crate::db::repo::password_resets::insert(
                        tx, user.id, &hash, None, &now, &expires,
                    )?;
                    let actor = Actor {
                        user_id: user.id,
                        email: user.email.clone(),
                        meta,
                    };
                    audit::append_instance(
                        tx,
                        &actor.entry(
                            "user.password_reset_requested",
                            "user",
                            Some(user.id.to_string()),
                            json!({"email": user.email, "expires_at": expires, "emailed": true}),
                        ),
                        &now,
                    )?;
                    Ok::<_, AppError>(Some(user.email))
                }
                _ => {
                    let entry = audit::Entry {
                        actor_id: None,
                        actor_email: Some(email.as_str()),
                        action: "user.password_reset_requested",
                        resource_type: "user",
                        resource_id: None,
                        ip: meta.ip.as_deref(),
                        user_agent: meta.user_agent.as_deref(),
                        details: json!({"email": email.as_str(), "emailed": false,
                                        "reason": "no active account"}),
                    };
                    audit::append_instance(tx, &entry, &now)?;
                    Ok(None)
                }
            }
        })
        .await?;
    if let Some(to) = to {
        let body = format!(
            "Someone (hopefully you) asked to reset the password of your xagent account \
             {to}.\n\nSet a new password here:\n{base}/reset-password/{token}\n\n\
             The link works once and for {FORGOT_LINK_MINUTES} minutes. If you did not ask \
             for it, ignore this email: your password stays as it is.\n",
            base = svc.base_url,
        );
        tokio::spawn(async move {
            if let Err(e) =
                super::mail::send_text(&mail, &to, "Reset your xagent password", body).await
            {
                tracing::warn!(error = %e, "the password reset mail was not sent");
            }
        });
    }
    Ok(())
}

/// The user, while their account is active.
pub async fn active_user(svc: &Services, id: UserId) -> Result<Option<users::User>> {
    svc.db
        .read(move |tx| Ok(users::find_by_id(tx, id)?.filter(|u| u.status == UserStatus::Active)))
        .await
}
