//! Two-factor authentication: TOTP enrolment (QR code and secret, confirmed by a code),
//! one-time recovery codes, the second step of signing in (with replay refusal and the
//! sign-in throttle), disabling, the instance administrator's reset, and organizations'
//! "require two-factor" policy, which the tenancy gate (`orgs::context`) enforces.
//!
//! The TOTP secret is sealed like provider keys: under the data key of the user's
//! personal organization, with the user bound in as associated data.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;

use super::throttle::LoginThrottle;
use super::{Actor, ClientMeta, Services, require};
use crate::crypto::Keyring;
use crate::db::repo::{audit, orgs, two_factor, users};
use crate::db::scope::enter;
use crate::db::{Conn, OrgContext, WriteTx};
use crate::domain::{Invalid, OrgId, Permission, UserId, fmt_time};
use crate::error::{AppError, Result};

/// The name authenticator apps show above the code.
pub const ISSUER: &str = "xagent";
/// How many recovery codes a user holds.
pub const RECOVERY_CODES: usize = 10;
/// Longest grace period an organization may give.
pub const MAX_GRACE_DAYS: u32 = 365;

fn aad(org: OrgId, user: UserId) -> String {
    format!("{org}/two-factor/totp/{user}")
}

/// SHA-1, six digits, 30-second steps, one step of clock drift either way: what every
/// authenticator app speaks.
fn totp(secret_b32: &str, account: &str) -> Result<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32)
        .map_err(|_| AppError::Internal("a stored TOTP secret is not base32".into()))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| AppError::Internal(format!("totp: {e}")))
}

fn unix(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

// ---------------------------------------------------------------- status

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// A confirmed second factor: sign-in asks for a code.
    pub enabled: bool,
    /// An enrolment waits for its first code.
    pub pending: bool,
    pub enabled_at: Option<DateTime<Utc>>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

pub async fn status(svc: &Services, user: UserId) -> Result<Status> {
    svc.db
        .read(move |tx| {
            let t = two_factor::find(tx, user)?;
            Ok(Status {
                enabled: t.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
                pending: t.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
                enabled_at: t.and_then(|t| t.confirmed_at),
                recovery_codes_left: two_factor::recovery_codes_left(tx, user)?,
            })
        })
        .await
}

/// Whether the user has a confirmed second factor (for rules elsewhere, such as an
/// organization's single sign-on break-glass).
pub fn has_two_factor(c: &Conn<'_>, user: UserId) -> Result<bool> {
    Ok(two_factor::is_enabled(c, user)?)
}

// ---------------------------------------------------------------- enrolment

/// What an enrolment shows once: the secret as text, the `otpauth://` URL and its QR code.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// base32, for typing into an authenticator app
    pub secret: String,
    pub otpauth_url: String,
    /// the otpauth URL as a QR code (an SVG document)
    pub qr_svg: String,
}

fn already_enabled() -> AppError {
    AppError::conflict(
        "two_factor_enabled",
        "two-factor authentication is on already; turn it off first to enrol another device",
    )
}

/// Starts (or restarts) an enrolment: a new secret, sealed and stored unconfirmed.
pub async fn start_enrolment(svc: &Services, actor: &Actor) -> Result<Enrolment> {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = totp_rs::Secret::new_stack(bytes).to_base32();
    let t = totp(&secret, &actor.email)?;
    let otpauth_url = t
        .to_url()
        .map_err(|e| AppError::Internal(format!("totp url: {e}")))?;
    let qr_svg = qr_svg(&otpauth_url)?;
    let (user, keyring, now, sealed_input) = (
        actor.user_id,
        svc.keyring.clone(),
        svc.now_str(),
        secret.clone(),
    );
    svc.db
        .write(move |tx| {
            if two_factor::is_enabled(tx, user)? {
                return Err(already_enabled());
            }
            let ctx = personal_context(tx, user)?;
            let dk = super::llm::data_key_for_sealing(tx, &ctx, &keyring, &now)?;
            let sealed = dk.seal(sealed_input.as_bytes(), &aad(ctx.org_id(), user));
            two_factor::start(tx, user, ctx.org_id(), dk.id(), &sealed, &now)?;
            Ok(())
        })
        .await?;
    Ok(Enrolment {
        secret,
        otpauth_url,
        qr_svg,
    })
}

/// The enrolment waiting for its first code, shown again (after a wrong code).
pub async fn pending_enrolment(svc: &Services, actor: &Actor) -> Result<Option<Enrolment>> {
    let (user, keyring) = (actor.user_id, svc.keyring.clone());
    let secret = svc
        .db
        .read(move |tx| {
            let Some(t) = two_factor::find(tx, user)?.filter(|t| t.confirmed_at.is_none()) else {
                return Ok(None);
            };
            let ctx = enter(tx, user, &t.key_org.to_string())?
                .ok_or_else(|| AppError::Internal("the secret's organization is gone".into()))?;
            let s = super::llm::open_sealed(
                tx,
                &ctx,
                &keyring,
                &t.key_id,
                &t.secret_sealed,
                &aad(t.key_org, user),
            )?;
            Ok::<_, AppError>(Some(s.expose().to_string()))
        })
        .await?;
    let Some(secret) = secret else {
        return Ok(None);
    };
    let otpauth_url = totp(&secret, &actor.email)?
        .to_url()
        .map_err(|e| AppError::Internal(format!("totp url: {e}")))?;
    Ok(Some(Enrolment {
        qr_svg: qr_svg(&otpauth_url)?,
        secret,
        otpauth_url,
    }))
}

fn qr_svg(url: &str) -> Result<String> {
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AppError::Internal(format!("qr code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The user's personal organization, whose data key seals their secret.
fn personal_context(c: &Conn<'_>, user: UserId) -> Result<OrgContext> {
    let org = two_factor::personal_org_of(c, user)?
        .ok_or_else(|| AppError::Internal("the user has no personal organization".into()))?;
    enter(c, user, &org.to_string())?
        .ok_or_else(|| AppError::Internal("the user is not in their personal organization".into()))
}

/// A second factor as the user gives it.
#[derive(Debug, Clone, Copy)]
pub enum Code<'a> {
    /// Six digits from the authenticator app.
    Totp(&'a str),
    /// One of the recovery codes.
    Recovery(&'a str),
}

impl<'a> Code<'a> {
    /// What a single "code" field holds: six digits are a TOTP code, anything else is
    /// taken for a recovery code.
    pub fn guess(raw: &'a str) -> Code<'a> {
        let t = raw.trim();
        if t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()) {
            Code::Totp(t)
        } else {
            Code::Recovery(t)
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Code::Totp(_) => "totp",
            Code::Recovery(_) => "recovery_code",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Accepted,
    Wrong,
    /// A right code whose time step was accepted already.
    Replayed,
}

/// Checks `code` inside the write job, using it up when right (the time step, or the
/// recovery code). `confirming`: the code of a pending enrolment.
fn check_code(
    tx: &WriteTx<'_>,
    keyring: &Keyring,
    user: UserId,
    email: &str,
    code: Code<'_>,
    at: DateTime<Utc>,
    confirming: bool,
) -> Result<Checked> {
    let now = fmt_time(at);
    match code {
        Code::Totp(raw) => {
            let Some(t) = two_factor::find(tx, user)? else {
                return Ok(Checked::Wrong);
            };
            if t.confirmed_at.is_some() == confirming {
                return Ok(Checked::Wrong);
            }
            let ctx = enter(tx, user, &t.key_org.to_string())?
                .ok_or_else(|| AppError::Internal("the secret's organization is gone".into()))?;
            let secret = super::llm::open_sealed(
                tx,
                &ctx,
                keyring,
                &t.key_id,
                &t.secret_sealed,
                &aad(t.key_org, user),
            )?;
            let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
            let Some(step) = totp(secret.expose(), email)?.check(&digits, unix(at)) else {
                return Ok(Checked::Wrong);
            };
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            if two_factor::accept_step(tx, user, step, confirming, &now)? {
                Ok(Checked::Accepted)
            } else {
                Ok(Checked::Replayed)
            }
        }
        Code::Recovery(raw) => {
            if confirming || !two_factor::is_enabled(tx, user)? {
                return Ok(Checked::Wrong);
            }
            let hash = recovery_hash(raw);
            if two_factor::use_recovery_code(tx, user, &hash, &now)? {
                Ok(Checked::Accepted)
            } else {
                Ok(Checked::Wrong)
            }
        }
    }
}

fn recovery_hash(raw: &str) -> String {
    let normal: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crate::auth::token_hash(&format!("xagent-recovery:{normal}"))
}

/// Ten new recovery codes (80 random bits each, written `abcd-efgh-ijkl-mnop`) and their
/// hashes.
fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::thread_rng();
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    (codes, hashes)
}

/// The refusal of a wrong or replayed code, as a field error of `field`.
fn refused(checked: Checked, field: &'static str) -> AppError {
    let reason = match checked {
        Checked::Replayed => "This code was used already; wait for the next one.",
        _ => "The code is not right.",
    };
    AppError::invalid(vec![Invalid::new(field, reason)])
}

fn audit_failure(
    tx: &WriteTx<'_>,
    actor: &Actor,
    during: &str,
    code: Code<'_>,
    checked: Checked,
    now: &str,
) -> Result<()> {
    audit::append_instance(
        tx,
        &actor.entry(
            "auth.two_factor_failed",
            "user",
            Some(actor.user_id.to_string()),
            json!({"during": during, "kind": code.kind(),
                   "reason": if checked == Checked::Replayed { "replayed" } else { "wrong_code" }}),
        ),
        now,
    )?;
    Ok(())
}

fn throttled(wait: u64) -> AppError {
    AppError::TooManyRequests {
        code: "rate_limited",
        message: "Too many wrong codes; try again later.".into(),
        retry_after_secs: Some(wait),
    }
}

/// A code checked for a signed-in user's account operation (`during` names it), throttled
/// like sign-in: a wrong one counts against the account and the address. `then` runs in
/// the same write job once the code is accepted.
async fn with_code<T: Send + 'static>(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    during: &'static str,
    code: Code<'_>,
    confirming: bool,
    then: impl FnOnce(&WriteTx<'_>, &str) -> Result<T> + Send + 'static,
) -> Result<T> {
    let key = actor.email.to_lowercase();
    if let Some(wait) = throttle.blocked(&key, actor.meta.ip.as_deref()) {
        return Err(throttled(wait));
    }
    let (actor2, keyring, at) = (actor.clone(), svc.keyring.clone(), svc.now());
    let owned = match code {
        Code::Totp(c) => (true, c.to_string()),
        Code::Recovery(c) => (false, c.to_string()),
    };
    let outcome = svc
        .db
        .write(move |tx| {
            let code = if owned.0 {
                Code::Totp(&owned.1)
            } else {
                Code::Recovery(&owned.1)
            };
            let now = fmt_time(at);
            let checked = check_code(
                tx,
                &keyring,
                actor2.user_id,
                &actor2.email,
                code,
                at,
                confirming,
            )?;
            if checked != Checked::Accepted {
                audit_failure(tx, &actor2, during, code, checked, &now)?;
                return Ok(Err(checked));
            }
            Ok::<_, AppError>(Ok(then(tx, &now)?))
        })
        .await?;
    match outcome {
        Ok(v) => Ok(v),
        Err(checked) => {
            throttle.record_failure(&key, actor.meta.ip.as_deref());
            Err(refused(checked, "code"))
        }
    }
}

/// Confirms the pending enrolment with a code from the app: two-factor is on from now,
/// and the ten recovery codes are returned (shown once; only their hashes are kept).
pub async fn confirm(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    code: &str,
) -> Result<Vec<String>> {
    let state = status(svc, actor.user_id).await?;
    if state.enabled {
        return Err(already_enabled());
    }
    if !state.pending {
        return Err(AppError::conflict(
            "no_enrolment",
            "start the enrolment first (POST /api/v1/me/2fa/totp)",
        ));
    }
    if code.trim().is_empty() {
        return Err(AppError::invalid(vec![Invalid::new(
            "code",
            "Enter the six-digit code your app shows.",
        )]));
    }
    let (codes, hashes) = new_recovery_codes();
    let a = actor.clone();
    with_code(
        svc,
        throttle,
        actor,
        "enrolment",
        Code::Totp(code),
        true,
        move |tx, now| {
            two_factor::replace_recovery_codes(tx, a.user_id, &hashes, now)?;
            audit::append_instance(
                tx,
                &a.entry(
                    "user.two_factor_enabled",
                    "user",
                    Some(a.user_id.to_string()),
                    json!({"email": a.email, "method": "totp"}),
                ),
                now,
            )?;
            Ok(())
        },
    )
    .await?;
    Ok(codes)
}

/// Ten new recovery codes in place of the old ones, for a code from the app.
pub async fn regenerate_recovery_codes(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    code: &str,
) -> Result<Vec<String>> {
    if !status(svc, actor.user_id).await?.enabled {
        return Err(not_enabled());
    }
    let (codes, hashes) = new_recovery_codes();
    let a = actor.clone();
    with_code(
        svc,
        throttle,
        actor,
        "recovery_codes",
        Code::Totp(code),
        false,
        move |tx, now| {
            two_factor::replace_recovery_codes(tx, a.user_id, &hashes, now)?;
            audit::append_instance(
                tx,
                &a.entry(
                    "user.recovery_codes_regenerated",
                    "user",
                    Some(a.user_id.to_string()),
                    json!({"email": a.email}),
                ),
                now,
            )?;
            Ok(())
        },
    )
    .await?;
    Ok(codes)
}

fn not_enabled() -> AppError {
    AppError::conflict(
        "two_factor_not_enabled",
        "two-factor authentication is not on for this account",
    )
}

/// Turns two-factor off, for the password and a code (from the app, or a recovery code).
pub async fn disable(
    svc: &Services,
    throttle: &LoginThrottle,
    actor: &Actor,
    password: &str,
    code: &str,
) -> Result<()> {
    if !status(svc, actor.user_id).await?.enabled {
        return Err(not_enabled());
    }
    let mut errors = Vec::new();
    if password.is_empty() {
        errors.push(Invalid::new("password", "Enter your password."));
    }
    if code.trim().is_empty() {
        errors.push(Invalid::new(
            "code",
            "Enter a code from your app or a recovery code.",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    super::identity::confirm_password(svc, throttle, actor, password).await?;
    let a = actor.clone();
    with_code(
        svc,
        throttle,
        actor,
        "disable",
        Code::guess(code),
        false,
        move |tx, now| {
            two_factor::remove(tx, a.user_id)?;
            audit::append_instance(
                tx,
                &a.entry(
                    "user.two_factor_disabled",
                    "user",
                    Some(a.user_id.to_string()),
                    json!({"email": a.email}),
                ),
                now,
            )?;
            Ok(())
        },
    )
    .await
}

/// Removes a user's second factor for the instance administrator (a lost device, no
/// recovery codes left); whether they had one. Audited by the caller's job.
pub(crate) fn reset_in_tx(tx: &WriteTx<'_>, user: UserId) -> Result<bool> {
    Ok(two_factor::remove(tx, user)?)
}

// ---------------------------------------------------------------- sign-in

/// What a sign-in carries besides the password.
#[derive(Debug, Clone, Default)]
pub struct SecondFactor {
    pub totp: Option<String>,
    pub recovery_code: Option<String>,
}

impl SecondFactor {
    fn code(&self) -> Option<Code<'_>> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match (given(&self.totp), given(&self.recovery_code)) {
            (Some(_), _) => self.totp.as_deref().map(Code::Totp),
            (None, Some(_)) => self.recovery_code.as_deref().map(Code::Recovery),
            (None, None) => None,
        }
    }
}

/// The second step of signing in, after the password was right: nothing for a user
/// without two-factor; else a code from the app or a recovery code (used up), 401
/// `two_factor_required` when none is given and `invalid_two_factor` when it is wrong or
/// replayed. A wrong code counts as a failed sign-in (throttle) and is audited.
pub async fn pass_login(
    svc: &Services,
    throttle: &LoginThrottle,
    user: &users::User,
    second: &SecondFactor,
    meta: &ClientMeta,
) -> Result<()> {
    let id = user.id;
    if !svc
        .db
        .read(move |tx| Ok::<_, AppError>(two_factor::is_enabled(tx, id)?))
        .await?
    {
        return Ok(());
    }
    let Some(code) = second.code() else {
        return Err(AppError::TwoFactor {
            code: "two_factor_required",
            message: "this account has two-factor authentication: send `totp` (the six-digit \
                      code of the authenticator app) or `recovery_code` with the email and \
                      password"
                .into(),
        });
    };
    let key = user.email.to_lowercase();
    if let Some(wait) = throttle.blocked(&key, meta.ip.as_deref()) {
        return Err(throttled(wait));
    }
    let actor = Actor {
        user_id: user.id,
        email: user.email.clone(),
        meta: meta.clone(),
    };
    let (keyring, at) = (svc.keyring.clone(), svc.now());
    let (is_totp, raw) = match code {
        Code::Totp(c) => (true, c.to_string()),
        Code::Recovery(c) => (false, c.to_string()),
    };
    let checked = svc
        .db
        .write(move |tx| {
            let code = if is_totp {
                Code::Totp(&raw)
            } else {
                Code::Recovery(&raw)
            };
            let now = fmt_time(at);
            let checked = check_code(tx, &keyring, actor.user_id, &actor.email, code, at, false)?;
            match checked {
                Checked::Accepted if !is_totp => {
                    let left = two_factor::recovery_codes_left(tx, actor.user_id)?;
                    audit::append_instance(
                        tx,
                        &actor.entry(
                            "user.recovery_code_used",
                            "user",
                            Some(actor.user_id.to_string()),
                            json!({"email": actor.email, "codes_left": left}),
                        ),
                        &now,
                    )?;
                }
                Checked::Accepted => {}
                refused => audit_failure(tx, &actor, "login", code, refused, &now)?,
            }
            Ok::<_, AppError>(checked)
        })
        .await?;
    match checked {
        Checked::Accepted => Ok(()),
        other => {
            throttle.record_failure(&key, meta.ip.as_deref());
            Err(AppError::TwoFactor {
                code: "invalid_two_factor",
                message: if other == Checked::Replayed {
                    "this code was used already; wait for the next one".into()
                } else {
                    "the two-factor code is not right".into()
                },
            })
        }
    }
}

/// Sign-ins whose password was right and whose second factor the sign-in page asks for
/// next, by a random token the page carries (kept in memory for five minutes; a restart
/// asks for the password again).
pub struct PendingLogins {
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub user_id: UserId,
    pub next: String,
    started: Instant,
    failures: u32,
}

const PENDING_FOR: Duration = Duration::from_secs(300);
const PENDING_FAILURES: u32 = 5;

impl Default for PendingLogins {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl PendingLogins {
    /// A token for the second step of `user`'s sign-in.
    pub fn start(&self, user: UserId, next: String) -> String {
        let token = crate::auth::random_token();
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, p| p.started.elapsed() < PENDING_FOR);
        map.insert(
            crate::auth::token_hash(&token),
            Pending {
                user_id: user,
                next,
                started: Instant::now(),
                failures: 0,
            },
        );
        token
    }

    /// The sign-in the token belongs to, while it lasts.
    pub fn get(&self, token: &str) -> Option<Pending> {
        let map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&crate::auth::token_hash(token))
            .filter(|p| p.started.elapsed() < PENDING_FOR)
            .cloned()
    }

    /// A wrong code: after five, the sign-in starts over with the password.
    pub fn failed(&self, token: &str) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = crate::auth::token_hash(token);
        if let Some(p) = map.get_mut(&key) {
            p.failures += 1;
            if p.failures >= PENDING_FAILURES {
                map.remove(&key);
            }
        }
    }

    pub fn finish(&self, token: &str) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&crate::auth::token_hash(token));
    }
}

// ---------------------------------------------------------------- organization policy

/// The refusal of the tenancy gate: once an organization requires two-factor and its
/// grace period is over, members without it get 403 `two_factor_required` there (their
/// other organizations are not affected).
pub fn refuse_unenrolled(svc: &Services, ctx: &OrgContext) -> Result<()> {
    let Some(from) = ctx.org().two_factor.enforced_from() else {
        return Ok(());
    };
    if svc.now() < from {
        return Ok(());
    }
    let user = ctx.user_id();
    if svc
        .db
        .lookup(|tx| Ok::<_, AppError>(two_factor::is_enabled(tx, user)?))?
    {
        return Ok(());
    }
    Err(AppError::Forbidden {
        code: "two_factor_required",
        message: format!(
            "the organization {} requires two-factor authentication: turn it on for your \
             account (/account/two-factor) to enter it",
            ctx.org().name
        ),
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgPolicy {
    /// Members without two-factor are refused once the grace period is over.
    pub require_2fa: bool,
    pub require_2fa_grace_days: u32,
    /// When the requirement was turned on.
    pub require_2fa_since: Option<DateTime<Utc>>,
    /// From when members without two-factor are refused.
    pub require_2fa_enforced_from: Option<DateTime<Utc>>,
}

fn policy_view(p: orgs::TwoFactorPolicy) -> OrgPolicy {
    OrgPolicy {
        require_2fa: p.since.is_some(),
        require_2fa_grace_days: p.grace_days,
        require_2fa_since: p.since,
        require_2fa_enforced_from: p.enforced_from(),
    }
}

pub fn org_policy(ctx: &OrgContext) -> Result<OrgPolicy> {
    require(ctx, Permission::SecurityManage)?;
    Ok(policy_view(ctx.org().two_factor))
}

/// Turns "require two-factor" on or off, or changes the grace period (counted from when
/// it was turned on). Whoever turns it on must have two-factor themselves.
pub async fn set_org_policy(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    require_2fa: Option<bool>,
    grace_days: Option<u32>,
) -> Result<OrgPolicy> {
    require(ctx, Permission::SecurityManage)?;
    if grace_days.is_some_and(|d| d > MAX_GRACE_DAYS) {
        return Err(AppError::invalid(vec![Invalid::new(
            "require_2fa_grace_days",
            "Give between 0 and 365 days of grace.",
        )]));
    }
    let (ctx, actor, now, at) = (ctx.clone(), actor.clone(), svc.now_str(), svc.now());
    svc.db
        .write(move |tx| {
            let me = super::fresh_context(tx, &ctx)?;
            let before = me.org().two_factor;
            let on = require_2fa.unwrap_or(before.since.is_some());
            if on && before.since.is_none() && !two_factor::is_enabled(tx, actor.user_id)? {
                return Err(AppError::Unprocessable {
                    code: "two_factor_required",
                    message: "turn on two-factor authentication for your own account before \
                              requiring it of the organization's members"
                        .into(),
                });
            }
            let since = match (on, before.since) {
                (false, _) => None,
                (true, Some(s)) => Some(s),
                (true, None) => Some(at),
            };
            let grace = grace_days.unwrap_or(before.grace_days);
            let after = orgs::TwoFactorPolicy {
                since: since.map(crate::domain::as_stored),
                grace_days: grace,
            };
            if after != before {
                orgs::set_two_factor_policy(tx, &me, since.map(fmt_time).as_deref(), grace, &now)?;
                audit::append(
                    tx,
                    &me,
                    &actor.entry(
                        "organization.security_changed",
                        "organization",
                        Some(me.org_id().to_string()),
                        json!({
                            "changes": {
                                "require_2fa": {"from": before.since.is_some(), "to": on},
                                "require_2fa_grace_days": {"from": before.grace_days, "to": grace},
                            },
                            "enforced_from": after.enforced_from().map(fmt_time),
                        }),
                    ),
                    &now,
                )?;
            }
            Ok(policy_view(after))
        })
        .await
}
