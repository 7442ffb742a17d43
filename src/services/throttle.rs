//! Sign-in throttling: failed attempts counted per account and per client IP in a
//! sliding window; once either passes its limit, further attempts are refused until
//! the oldest failure leaves the window. Kept in memory: a restart forgets, which only
//! ever lets an attacker start over at the same slow pace.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    window: Duration,
    per_account: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, per_account: u32, per_ip: u32) -> Self {
        Self {
            window,
            per_account,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, ip: Option<&str>) -> (String, Option<String>) {
        (format!("acct:{email}"), ip.map(|i| format!("ip:{i}")))
    }

    /// `Some(seconds)` to wait when the account or the IP is over its limit.
    pub fn blocked(&self, email: &str, ip: Option<&str>) -> Option<u64> {
        let now = Instant::now();
        let (acct, ipk) = Self::keys(email, ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, limit) in [(Some(acct), self.per_account), (ipk, self.per_ip)] {
            let Some(key) = key else { continue };
            if let Some(q) = map.get_mut(&key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() as u32 >= limit
                    && let Some(oldest) = q.front()
                {
                    let left = self.window.saturating_sub(now.duration_since(*oldest));
                    let secs = left.as_secs().max(1);
                    wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
                }
            }
        }
        wait
    }

    pub fn record_failure(&self, email: &str, ip: Option<&str>) {
        let now = Instant::now();
        let (acct, ipk) = Self::keys(email, ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a spray of distinct keys: forget entries whose window passed.
        if map.len() > 100_000 {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for key in [Some(acct), ipk].into_iter().flatten() {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful sign-in clears the account's count (not the IP's).
    pub fn record_success(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("acct:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limit_blocks_then_success_clears() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            assert!(t.blocked("a@x.io", Some("1.2.3.4")).is_none());
            t.record_failure("a@x.io", Some("1.2.3.4"));
        }
        let wait = t.blocked("a@x.io", Some("9.9.9.9"));
        assert!(matches!(wait, Some(s) if (1..=60).contains(&s)));
        assert!(t.blocked("b@x.io", Some("1.2.3.4")).is_none());
        t.record_success("a@x.io");
        assert!(t.blocked("a@x.io", None).is_none());
    }

    #[test]
    fn ip_limit_blocks_every_account_from_that_ip() {
        let t = LoginThrottle::new(Duration::from_secs(60), 100, 2);
        t.record_failure("a@x.io", Some("5.5.5.5"));
        t.record_failure("b@x.io", Some("5.5.5.5"));
        assert!(t.blocked("c@x.io", Some("5.5.5.5")).is_some());
        assert!(t.blocked("c@x.io", Some("6.6.6.6")).is_none());
    }
}
