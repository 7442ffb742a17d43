//! An organization's security policy: reading and changing it (`security.manage`), and
//! `admit`, the check every request acting in the organization passes after the
//! membership check — IP allowlist, the organization's session and token lifetimes, the
//! sessions an administrator ended there, and its API rate limit. Each refusal concerns
//! this organization only: the same session keeps working in the member's others.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use governor::DefaultDirectRateLimiter;
use serde::Serialize;
use serde_json::json;

use super::metering::admission::{per_minute, wait_secs};
use super::{Actor, Services, fresh_context, require};
use crate::db::OrgContext;
use crate::db::repo::{audit, orgs, tokens};
use crate::domain::format::counted;
use crate::domain::security::{self, SecurityPolicy};
use crate::domain::{Invalid, OrgId, Permission, UserId};
use crate::error::{AppError, Result};

/// What a request acting in an organization holds.
#[derive(Debug, Clone, Copy)]
pub enum Credential {
    /// A browser session: when it was made and when it was last used before now.
    Session {
        created_at: DateTime<Utc>,
        last_seen_at: DateTime<Utc>,
    },
    /// An API token, made at this time.
    Token { created_at: DateTime<Utc> },
}

/// Per-organization API rate limiters, made when first needed and again when the
/// organization's limit changes.
#[derive(Default)]
pub struct ApiRates(Mutex<HashMap<OrgId, (u32, Arc<DefaultDirectRateLimiter>)>>);

impl ApiRates {
    /// `Err(seconds to wait)` when the organization's requests of this minute are used up.
    fn check(&self, org: OrgId, rpm: u32) -> std::result::Result<(), u64> {
        let limiter = {
            let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match all.get(&org) {
                Some((have, l)) if *have == rpm => l.clone(),
                _ => {
                    let Some(l) = per_minute(rpm.into()).map(Arc::new) else {
                        return Ok(());
                    };
                    all.insert(org, (rpm, l.clone()));
                    l
                }
            }
        };
        limiter.check().map_err(|not_until| {
            wait_secs(not_until.wait_time_from(governor::clock::Clock::now(limiter.clock())))
        })
    }
}

fn session_expired(org: &str, why: String) -> AppError {
    AppError::Reauthenticate {
        code: "session_expired",
        message: format!("{org} asks you to sign in again: {why}"),
    }
}

/// The policy checks of a request acting in `ctx`'s organization from `ip` with `cred`.
pub fn admit(svc: &Services, ctx: &OrgContext, cred: Credential, ip: Option<IpAddr>) -> Result<()> {
    let org = ctx.org();
    let policy = &org.security;
    if !policy.allows(ip) {
        return Err(AppError::Forbidden {
            code: "ip_not_allowed",
            message: format!(
                "{} accepts requests only from the addresses on its IP allowlist; yours ({}) is not on it",
                org.name,
                ip.map_or_else(|| "unknown".to_string(), |i| i.to_string())
            ),
        });
    }
    let now = svc.now();
    match cred {
        Credential::Session {
            created_at,
            last_seen_at,
        } => {
            if let Some(m) = policy.session_idle_minutes
                && now.signed_duration_since(last_seen_at) > chrono::Duration::minutes(m.into())
            {
                return Err(session_expired(
                    &org.name,
                    format!(
                        "sessions there end after {} without use",
                        counted(m.into(), "minute", "minutes")
                    ),
                ));
            }
            if let Some(h) = policy.session_max_hours
                && now.signed_duration_since(created_at) > chrono::Duration::hours(h.into())
            {
                return Err(session_expired(
                    &org.name,
                    format!(
                        "sessions there last at most {}",
                        counted(h.into(), "hour", "hours")
                    ),
                ));
            }
            if ctx.sessions_revoked_at().is_some_and(|r| created_at <= r) {
                return Err(session_expired(
                    &org.name,
                    "an administrator ended your sessions there".into(),
                ));
            }
        }
        Credential::Token { created_at } => {
            if let Some(d) = policy.token_max_days
                && now.signed_duration_since(created_at) > chrono::Duration::days(d.into())
            {
                return Err(AppError::Reauthenticate {
                    code: "token_expired",
                    message: format!(
                        "{} accepts API tokens for at most {} after they were made; make a new one",
                        org.name,
                        counted(d.into(), "day", "days")
                    ),
                });
            }
        }
    }
    if let Some(rpm) = policy.api_rate_limit_rpm
        && let Err(wait) = svc.api_rates.check(org.id, rpm)
    {
        return Err(AppError::TooManyRequests {
            code: "rate_limit_exceeded",
            message: format!(
                "{} takes at most {rpm} requests a minute from all its members and tokens; try again in {wait} s",
                org.name
            ),
            retry_after_secs: Some(wait),
        });
    }
    Ok(())
}

/// The latest expiry an API token of `ctx`'s organization may have when made `now`:
/// the end of the day `token_max_days` ahead (a date entered means the end of that day).
pub fn token_expiry_limit(policy: &SecurityPolicy, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let days = policy.token_max_days?;
    let day = (now + chrono::Duration::days(days.into())).date_naive();
    day.and_hms_opt(23, 59, 59).map(|t| t.and_utc())
}

/// Refuses an API token that would outlive the organization's token lifetime.
pub fn check_token_expiry(
    policy: &SecurityPolicy,
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let Some(limit) = token_expiry_limit(policy, now) else {
        return Ok(());
    };
    let days = policy.token_max_days.unwrap_or_default();
    match expires_at {
        Some(e) if e <= limit => Ok(()),
        _ => Err(AppError::invalid(vec![Invalid::new(
            "expires_at",
            format!(
                "This organization allows API tokens of at most {days} days: choose an expiry date no later than {}.",
                limit.format("%Y-%m-%d")
            ),
        )])),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecurityView {
    /// Networks (CIDR) allowed to act in the organization; empty: any address.
    pub ip_allowlist: Vec<String>,
    /// Minutes a session may go unused and still act here; null: the instance's.
    pub session_idle_minutes: Option<u32>,
    /// Hours a session may act here after signing in; null: the instance's.
    pub session_max_hours: Option<u32>,
    /// Days an API token of this organization works after it was made; null: no limit.
    pub token_max_days: Option<u32>,
    /// Requests a minute the organization takes from all its members and tokens.
    pub api_rate_limit_rpm: Option<u32>,
    /// The caller's address as this server sees it (what the allowlist is checked against).
    pub your_ip: Option<String>,
}

fn view(p: &SecurityPolicy, ip: Option<IpAddr>) -> SecurityView {
    SecurityView {
        ip_allowlist: p.allowlist_text(),
        session_idle_minutes: p.session_idle_minutes,
        session_max_hours: p.session_max_hours,
        token_max_days: p.token_max_days,
        api_rate_limit_rpm: p.api_rate_limit_rpm,
        your_ip: ip.map(|i| i.to_string()),
    }
}

pub fn get(ctx: &OrgContext, ip: Option<IpAddr>) -> Result<SecurityView> {
    require(ctx, Permission::SecurityManage)?;
    Ok(view(&ctx.org().security, ip))
}

/// A change to the policy; for the optional limits `Some(None)` clears the limit.
#[derive(Debug, Clone, Default)]
pub struct SecurityInput {
    pub ip_allowlist: Option<Vec<String>>,
    pub session_idle_minutes: Option<Option<i64>>,
    pub session_max_hours: Option<Option<i64>>,
    pub token_max_days: Option<Option<i64>>,
    pub api_rate_limit_rpm: Option<Option<i64>>,
    /// Saving an allowlist that leaves out the caller's own address needs this.
    pub confirm_lockout: bool,
    /// Fields a form sent that could not be read at all.
    pub unreadable: Vec<Invalid>,
}

fn limit(
    field: &'static str,
    input: Option<Option<i64>>,
    current: Option<u32>,
    max: u32,
    errors: &mut Vec<Invalid>,
) -> Option<u32> {
    match input {
        None => current,
        Some(None) => None,
        Some(Some(v)) => security::check_limit(field, v, max)
            .map_err(|e| errors.push(e))
            .ok(),
    }
}

/// The policy `input` makes of `current`, or what is wrong with it.
fn apply(
    current: &SecurityPolicy,
    input: SecurityInput,
) -> std::result::Result<SecurityPolicy, Vec<Invalid>> {
    let mut errors = input.unreadable;
    let ip_allowlist = match &input.ip_allowlist {
        None => current.ip_allowlist.clone(),
        Some(list) => security::parse_allowlist(list)
            .map_err(|e| errors.push(e))
            .unwrap_or_default(),
    };
    let next = SecurityPolicy {
        ip_allowlist,
        session_idle_minutes: limit(
            "session_idle_minutes",
            input.session_idle_minutes,
            current.session_idle_minutes,
            security::MAX_SESSION_IDLE_MINUTES,
            &mut errors,
        ),
        session_max_hours: limit(
            "session_max_hours",
            input.session_max_hours,
            current.session_max_hours,
            security::MAX_SESSION_HOURS,
            &mut errors,
        ),
        token_max_days: limit(
            "token_max_days",
            input.token_max_days,
            current.token_max_days,
            security::MAX_TOKEN_DAYS,
            &mut errors,
        ),
        api_rate_limit_rpm: limit(
            "api_rate_limit_rpm",
            input.api_rate_limit_rpm,
            current.api_rate_limit_rpm,
            security::MAX_API_RPM,
            &mut errors,
        ),
    };
    if errors.is_empty() {
        Ok(next)
    } else {
        Err(errors)
    }
}

/// A checked change, ready to be stored (`store`).
pub struct Prepared {
    next: SecurityPolicy,
    confirm: bool,
}

/// Checks a change without storing it: the input, and the lock-out confirmation.
pub fn prepare(ctx: &OrgContext, ip: Option<IpAddr>, input: SecurityInput) -> Result<Prepared> {
    require(ctx, Permission::SecurityManage)?;
    let confirm = input.confirm_lockout;
    let next = apply(&ctx.org().security, input).map_err(AppError::invalid)?;
    if !next.allows(ip) && !confirm {
        return Err(AppError::conflict(
            "lockout_unconfirmed",
            format!(
                "the allowlist leaves out your own address ({}): saving it shuts you out of this organization from here; send confirm_lockout: true to save it anyway",
                ip.map_or_else(|| "unknown".to_string(), |i| i.to_string())
            ),
        ));
    }
    Ok(Prepared { next, confirm })
}

pub async fn patch(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    ip: Option<IpAddr>,
    input: SecurityInput,
) -> Result<SecurityView> {
    let prepared = prepare(ctx, ip, input)?;
    store(svc, ctx, actor, ip, prepared).await
}

pub async fn store(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    ip: Option<IpAddr>,
    Prepared { next, confirm }: Prepared,
) -> Result<SecurityView> {
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::SecurityManage)?;
            let before = me.org().security.clone();
            if before == next {
                return Ok(view(&next, ip));
            }
            orgs::set_security_policy(tx, &me, &next, &now)?;
            let mut changes = serde_json::Map::new();
            let pairs = [
                (
                    "ip_allowlist",
                    json!(before.allowlist_text()),
                    json!(next.allowlist_text()),
                ),
                (
                    "session_idle_minutes",
                    json!(before.session_idle_minutes),
                    json!(next.session_idle_minutes),
                ),
                (
                    "session_max_hours",
                    json!(before.session_max_hours),
                    json!(next.session_max_hours),
                ),
                (
                    "token_max_days",
                    json!(before.token_max_days),
                    json!(next.token_max_days),
                ),
                (
                    "api_rate_limit_rpm",
                    json!(before.api_rate_limit_rpm),
                    json!(next.api_rate_limit_rpm),
                ),
            ];
            for (field, from, to) in pairs {
                if from != to {
                    changes.insert(field.into(), json!({"from": from, "to": to}));
                }
            }
            let mut details = json!({ "changes": changes });
            if confirm && !next.allows(ip) {
                details["lockout_confirmed"] = json!(true);
            }
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "organization.security_changed",
                    "organization",
                    Some(me.org_id().to_string()),
                    details,
                ),
                &now,
            )?;
            Ok(view(&next, ip))
        })
        .await
}

/// What ending a member's sessions did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    pub user_id: UserId,
    /// API tokens of this organization that were revoked.
    pub tokens_revoked: usize,
}

/// Ends a member's sessions in this organization (they sign in again to act here; their
/// other organizations are not touched) and revokes their API tokens of it.
pub async fn revoke_member_access(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    member: UserId,
) -> Result<Revoked> {
    require(ctx, Permission::MembersManage)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::MembersManage)?;
            let target = crate::db::repo::members::find(tx, &me, member)?
                .ok_or_else(AppError::not_found)?;
            super::members::may_manage(&me, target.role)?;
            orgs::revoke_member_sessions(tx, &me, member, &now)?;
            let tokens_revoked = tokens::revoke_member_tokens(tx, &me, member, &now)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "member.access_revoked",
                    "member",
                    Some(member.to_string()),
                    json!({"email": target.user.email, "role": target.role, "tokens_revoked": tokens_revoked}),
                ),
                &now,
            )?;
            Ok(Revoked {
                user_id: member,
                tokens_revoked,
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_what_it_names_and_clears_what_it_sets_to_null() {
        let current = SecurityPolicy {
            session_idle_minutes: Some(30),
            token_max_days: Some(7),
            ..Default::default()
        };
        let next = apply(
            &current,
            SecurityInput {
                ip_allowlist: Some(vec!["10.0.0.0/8".into()]),
                token_max_days: Some(None),
                api_rate_limit_rpm: Some(Some(600)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(next.allowlist_text(), ["10.0.0.0/8"]);
        assert_eq!(next.session_idle_minutes, Some(30));
        assert_eq!(next.token_max_days, None);
        assert_eq!(next.api_rate_limit_rpm, Some(600));
        let errors = apply(
            &current,
            SecurityInput {
                ip_allowlist: Some(vec!["nonsense".into()]),
                session_max_hours: Some(Some(0)),
                ..Default::default()
            },
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["ip_allowlist", "session_max_hours"]);
    }

    #[test]
    fn a_token_may_last_until_the_end_of_the_day_the_limit_reaches() {
        let p = SecurityPolicy {
            token_max_days: Some(30),
            ..Default::default()
        };
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let limit = token_expiry_limit(&p, now).unwrap();
        assert_eq!(limit.to_rfc3339(), "2026-12-31T23:59:59+00:00");
        assert!(check_token_expiry(&p, now, Some(limit)).is_ok());
        assert!(check_token_expiry(&p, now, Some(limit + chrono::Duration::seconds(1))).is_err());
        assert!(
            check_token_expiry(&p, now, None).is_err(),
            "no expiry is too long"
        );
        assert!(check_token_expiry(&SecurityPolicy::default(), now, None).is_ok());
    }

    #[test]
    fn the_rate_limit_is_per_organization_and_follows_a_changed_limit() {
        let rates = ApiRates::default();
        let (a, b) = (OrgId::new(), OrgId::new());
        assert!(rates.check(a, 2).is_ok());
        assert!(rates.check(a, 2).is_ok());
        let wait = rates.check(a, 2).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(
            rates.check(b, 2).is_ok(),
            "another organization has its own"
        );
        assert!(rates.check(a, 3).is_ok(), "a new limit starts afresh");
    }
}
