//! Admission: every limit that applies to a call is checked and its estimated cost is
//! reserved before it goes upstream.
//!
//! Metering commits the real cost, and then, in one step under the organization's ledger
//! lock, the ledger adds the real cost to its committed use and drops the reservation. A
//! call is admitted while committed use plus open reservations is below the limit, so
//! concurrent calls at the edge of a quota overspend by at most one call's reservation,
//! and a call is never counted zero times nor (in steady state) twice. The committed use
//! is read from the database once per organization, member and period; after that the
//! ledger keeps it.
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota as Rate, RateLimiter};

use super::Denied;
use super::tokens::{Tokens, cost};
use crate::db::repo::{quotas, usage};
use crate::db::{Db, OrgContext};
use crate::domain::period::period_at;
use crate::domain::{Micros, OrgId, UserId};
use crate::error::AppError;

/// What admission needs besides the ledger: the quota settings, the credit limit and the
/// model's price.
#[derive(Debug, Clone)]
pub struct Limits {
    pub quota: quotas::Quota,
    /// The organization's monthly credit limit (`quota::credit_limit`).
    pub credit_limit: Option<Micros>,
    /// (input, output) per million tokens.
    pub price: Option<(Micros, Micros)>,
}

#[derive(Default, Clone, Copy)]
struct Account {
    loaded: bool,
    used_credits: Micros,
    used_requests: i64,
    reserved_credits: Micros,
    reserved_requests: i64,
}

#[derive(Default)]
struct Ledger {
    period: String,
    org: Account,
    members: HashMap<UserId, Account>,
}

struct Limiters {
    rpm: Option<(i64, DefaultDirectRateLimiter)>,
    tpm: Option<(i64, DefaultDirectRateLimiter)>,
}

/// Open reservations and rate limiters, per organization, in memory.
#[derive(Default)]
pub struct Gate {
    ledgers: Mutex<HashMap<OrgId, Arc<Mutex<Ledger>>>>,
    limiters: Mutex<HashMap<OrgId, Arc<Mutex<Limiters>>>>,
}

/// What a call is expected to cost, reserved until its usage is committed.
pub struct Reservation {
    ledger: Arc<Mutex<Ledger>>,
    period: String,
    user: UserId,
    credits: Micros,
    settled: bool,
}

impl Reservation {
    /// The call's usage is committed: its real cost becomes committed use and the
    /// reservation ends, in one step.
    pub fn settle(mut self, cost_micros: Micros) {
        self.release(Some(cost_micros));
        self.settled = true;
    }

    fn release(&self, committed: Option<Micros>) {
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if l.period != self.period {
            return;
        }
        let apply = |a: &mut Account| {
            a.reserved_credits = a.reserved_credits.saturating_sub(self.credits);
            a.reserved_requests -= 1;
            if let Some(c) = committed
                && a.loaded
            {
                a.used_credits = a.used_credits.saturating_add(c);
                a.used_requests += 1;
            }
        };
        apply(&mut l.org);
        if let Some(m) = l.members.get_mut(&self.user) {
            apply(m);
        }
    }
}

impl Drop for Reservation {
    /// Not settled: the call was refused or its usage could not be written.
    fn drop(&mut self) {
        if !self.settled {
            self.release(None);
        }
    }
}

/// A limiter of `n` a minute; `None` for a limit that is no positive `u32`.
pub(crate) fn per_minute(n: i64) -> Option<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(u32::try_from(n).ok()?)?;
    Some(RateLimiter::direct(Rate::per_minute(n)))
}

/// Seconds until a limiter allows again, at least one (a `Retry-After` of 0 invites a
/// client to hammer).
pub(crate) fn wait_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

impl Gate {
    fn ledger(&self, org: OrgId) -> Arc<Mutex<Ledger>> {
        let mut all = self.ledgers.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(org).or_default().clone()
    }

    fn limiters(&self, org: OrgId) -> Arc<Mutex<Limiters>> {
        let mut all = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(org)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Limiters {
                    rpm: None,
                    tpm: None,
                }))
            })
            .clone()
    }

    /// Checks every limit that applies to the caller and reserves the estimate. The outer
    /// error is a failure to read the committed use; the inner one names the limit that
    /// was hit.
    pub fn admit(
        &self,
        db: &Db,
        ctx: &OrgContext,
        limits: &Limits,
        estimate: Tokens,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Result<Reservation, Denied>, AppError> {
        let ledger = self.ledger(ctx.org_id());
        let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        let q = &limits.quota;
        let period = period_at(at, q.billing_anchor_day);
        if l.period != period.label {
            // A new period: reservations of the old one are settled against the old one.
            *l = Ledger {
                period: period.label.clone(),
                ..Ledger::default()
            };
        }
        // Committed use, read once under the lock; from then on the ledger keeps it.
        let user = ctx.user_id();
        let member_loaded = l.members.get(&user).is_some_and(|m| m.loaded);
        if !l.org.loaded || !member_loaded {
            let (org_used, member_used) = db.lookup(|tx| {
                Ok::<_, AppError>((
                    usage::totals(tx, ctx, &period.label)?,
                    usage::member_totals(tx, ctx, user, &period.label)?,
                ))
            })?;
            if !l.org.loaded {
                l.org.loaded = true;
                l.org.used_credits = org_used.cost_micros;
                l.org.used_requests = org_used.requests;
            }
            let m = l.members.entry(user).or_default();
            if !m.loaded {
                m.loaded = true;
                m.used_credits = member_used.cost_micros;
                m.used_requests = member_used.requests;
            }
        }
        let org = l.org;
        let mine = l.members.get(&user).copied().unwrap_or_default();
        if let Some(denied) = exhausted(limits, org, mine, &period.label) {
            return Ok(Err(denied));
        }
        let reserve = cost(limits.price, estimate);
        l.org.reserved_credits = l.org.reserved_credits.saturating_add(reserve);
        l.org.reserved_requests += 1;
        if let Some(m) = l.members.get_mut(&user) {
            m.reserved_credits = m.reserved_credits.saturating_add(reserve);
            m.reserved_requests += 1;
        }
        drop(l);
        let reservation = Reservation {
            ledger,
            period: period.label,
            user,
            credits: reserve,
            settled: false,
        };
        // Rate limits after the quota, so that a refused call spends no rate. A call the
        // rates refuse drops its reservation here.
        Ok(self
            .check_rates(ctx.org_id(), q, estimate)
            .map(|()| reservation))
    }

    fn check_rates(&self, org: OrgId, q: &quotas::Quota, estimate: Tokens) -> Result<(), Denied> {
        let limiters = self.limiters(org);
        let mut lim = limiters.lock().unwrap_or_else(|e| e.into_inner());
        if lim.rpm.as_ref().map(|(n, _)| *n) != q.rate_limit_rpm {
            lim.rpm = q.rate_limit_rpm.and_then(|n| per_minute(n).map(|l| (n, l)));
        }
        if lim.tpm.as_ref().map(|(n, _)| *n) != q.rate_limit_tpm {
            lim.tpm = q.rate_limit_tpm.and_then(|n| per_minute(n).map(|l| (n, l)));
        }
        // Each limiter's own clock: making a new one calibrates it (CPUID), which cost more
        // than the rest of the admission when it was done per call.
        if let Some((n, l)) = &lim.rpm
            && let Err(not_until) = l.check()
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(l.clock()));
            return Err(Denied::RequestsPerMinute {
                limit: *n,
                retry_after_secs: wait_secs(wait),
            });
        }
        if let Some((n, l)) = &lim.tpm {
            let tokens = (estimate.input + estimate.output).clamp(1, i64::from(u32::MAX));
            let want = NonZeroU32::new(tokens as u32).unwrap_or(NonZeroU32::MIN);
            match l.check_n(want) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(l.clock()));
                    return Err(Denied::TokensPerMinute {
                        limit: *n,
                        retry_after_secs: wait_secs(wait),
                    });
                }
                Err(_) => {
                    return Err(Denied::LargerThanTokensPerMinute { tokens, limit: *n });
                }
            }
        }
        Ok(())
    }
}

/// The first monthly limit that committed use plus open reservations has reached.
fn exhausted(limits: &Limits, org: Account, mine: Account, period: &str) -> Option<Denied> {
    let q = &limits.quota;
    let period = || period.to_string();
    if let Some(limit) = limits.credit_limit
        && org.used_credits.saturating_add(org.reserved_credits) >= limit
    {
        return Some(Denied::OrgCredits {
            used: org.used_credits,
            limit,
            period: period(),
        });
    }
    if let Some(limit) = q.monthly_requests
        && org.used_requests + org.reserved_requests >= limit
    {
        return Some(Denied::OrgRequests {
            used: org.used_requests,
            limit,
            period: period(),
        });
    }
    if let Some(limit) = q.member_monthly_credits_micros
        && mine.used_credits.saturating_add(mine.reserved_credits) >= limit
    {
        return Some(Denied::MemberCredits {
            used: mine.used_credits,
            limit,
            period: period(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::metering::test_member;
    use crate::services::quota::LimitKind;

    /// 1 µ$ per input token: an estimate of `n` tokens reserves `n` micro-USD.
    fn limits(q: quotas::Quota, credit_limit: Option<i64>) -> Limits {
        Limits {
            quota: q,
            credit_limit: credit_limit.map(Micros::new),
            price: Some((Micros::new(1_000_000), Micros::ZERO)),
        }
    }

    fn tokens(input: i64) -> Tokens {
        Tokens { input, output: 0 }
    }

    #[tokio::test]
    async fn credits_are_reserved_until_settled_and_a_call_past_the_limit_is_denied() {
        let (_dir, db, ctx) = test_member().await;
        let gate = Gate::default();
        let at = chrono::Utc::now();
        let l = limits(quotas::Quota::default(), Some(100));
        let first = gate.admit(&db, &ctx, &l, tokens(60), at).unwrap().unwrap();
        let second = gate.admit(&db, &ctx, &l, tokens(60), at).unwrap().unwrap();
        // 120 reserved of 100: the next call is refused, naming what was committed.
        let denied = gate.admit(&db, &ctx, &l, tokens(1), at).unwrap().err();
        assert!(matches!(
            denied,
            Some(Denied::OrgCredits {
                used: Micros::ZERO,
                limit,
                ..
            }) if limit == Micros::new(100)
        ));
        // A refused or failed call frees its reservation without counting as use.
        drop(second);
        drop(first);
        let third = gate.admit(&db, &ctx, &l, tokens(10), at).unwrap().unwrap();
        third.settle(Micros::new(100));
        match gate.admit(&db, &ctx, &l, tokens(1), at).unwrap() {
            Err(Denied::OrgCredits { used, .. }) => assert_eq!(used, Micros::new(100)),
            other => panic!("expected the credits to be used up, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn request_and_member_limits_are_checked_in_order() {
        let (_dir, db, ctx) = test_member().await;
        let gate = Gate::default();
        let at = chrono::Utc::now();
        let q = quotas::Quota {
            monthly_requests: Some(1),
            ..quotas::Quota::default()
        };
        let held = gate
            .admit(&db, &ctx, &limits(q.clone(), None), tokens(1), at)
            .unwrap()
            .unwrap();
        let denied = gate
            .admit(&db, &ctx, &limits(q, None), tokens(1), at)
            .unwrap()
            .err();
        assert_eq!(denied.map(|d| d.limit()), Some(LimitKind::OrgRequests));
        drop(held);
        let member = quotas::Quota {
            member_monthly_credits_micros: Some(Micros::ZERO),
            ..quotas::Quota::default()
        };
        let denied = gate
            .admit(&db, &ctx, &limits(member, Some(1000)), tokens(1), at)
            .unwrap()
            .err();
        assert_eq!(denied.map(|d| d.limit()), Some(LimitKind::MemberCredits));
    }

    #[tokio::test]
    async fn rate_limits_refuse_with_a_wait_and_a_call_larger_than_the_minute_never_fits() {
        let (_dir, db, ctx) = test_member().await;
        let gate = Gate::default();
        let at = chrono::Utc::now();
        let rpm = limits(
            quotas::Quota {
                rate_limit_rpm: Some(1),
                ..quotas::Quota::default()
            },
            None,
        );
        assert!(gate.admit(&db, &ctx, &rpm, tokens(1), at).unwrap().is_ok());
        match gate.admit(&db, &ctx, &rpm, tokens(1), at).unwrap() {
            Err(Denied::RequestsPerMinute {
                limit: 1,
                retry_after_secs,
            }) => assert!((1..=60).contains(&retry_after_secs)),
            other => panic!("expected the rate limit, got {:?}", other.err()),
        }
        let tpm = limits(
            quotas::Quota {
                rate_limit_tpm: Some(100),
                ..quotas::Quota::default()
            },
            None,
        );
        let denied = gate.admit(&db, &ctx, &tpm, tokens(500), at).unwrap().err();
        assert_eq!(
            denied,
            Some(Denied::LargerThanTokensPerMinute {
                tokens: 500,
                limit: 100
            })
        );
        assert!(
            gate.admit(&db, &ctx, &tpm, tokens(100), at)
                .unwrap()
                .is_ok()
        );
        let denied = gate.admit(&db, &ctx, &tpm, tokens(1), at).unwrap().err();
        assert_eq!(denied.map(|d| d.limit()), Some(LimitKind::RateTpm));
    }
}
