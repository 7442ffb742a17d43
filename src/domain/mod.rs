//! Pure types and rules, parsed at the edge: ids, emails, slugs, roles, permissions.
mod ids;
pub mod period;
mod permissions;
mod settings;
mod values;

pub use ids::{ApiTokenId, OrgId, SessionId, UserId, new_id};
pub use permissions::{PERMISSIONS, Permission, PermissionSet, Role};
pub use settings::OrgSettings;
pub use values::{Email, OrgKind, OrgName, Password, PersonName, Slug, TokenName, Visibility};

/// A rule broken by input, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The time the gateway's periods, metering and alerts run on: the system clock plus an
/// offset that is zero in production. Tests move it forward to cross a billing period.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let offset = self.offset_secs.load(std::sync::atomic::Ordering::Relaxed);
        chrono::Utc::now() + chrono::Duration::seconds(offset)
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Micro-units of USD as dollars with all six decimals (`18` → `0.000018`).
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Now, as stored: RFC 3339 UTC with microseconds, so text order is time order.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn now_str() -> String {
    fmt_time(now())
}
