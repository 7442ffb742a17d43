//! Pure types and rules, parsed at the edge: ids, emails, slugs, roles, permissions, money.
pub mod audit;
pub mod format;
mod ids;
mod money;
pub mod period;
mod permissions;
pub mod plans;
pub mod resources;
pub mod schemas;
pub mod security;
mod settings;
pub mod sso;
pub mod usage;
mod values;
mod words;

pub use ids::{
    ApiTokenId, InvitationId, MessageId, OrgId, Principal, ResourceId, SessionId, TeamId, UserId,
    new_id,
};
pub use money::Micros;
pub use permissions::{PERMISSIONS, Permission, PermissionSet, Role};
pub use plans::PlanLimits;
pub use settings::OrgSettings;
pub use values::{
    CreditReason, Email, OrgKind, OrgName, Password, PersonName, Slug, TokenName, Visibility,
};
pub use words::{IndexStatus, MemberStatus, OrgStatus, RunStatus, StepStatus, UserStatus, Word};

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

/// Now, as stored: RFC 3339 UTC with microseconds, so text order is time order.
pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `t` as it reads back once stored: `fmt_time` keeps microseconds, the clock has more.
/// For a row a use case answers with right after writing it, without reading it again.
pub fn as_stored(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(t, 6)
}

/// `serialize_with` for a time: written as it is stored (`fmt_time`), whatever chrono's
/// own format would be.
pub fn ser_time<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_time(*t))
}

/// `ser_time` for an optional time (`null` when absent).
pub fn ser_opt_time<S: serde::Serializer>(
    t: &Option<chrono::DateTime<chrono::Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&fmt_time(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_as_stored_reads_back_equal_and_serializes_as_stored() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 14, 5, 9)
            .unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let stored = fmt_time(t);
        assert_eq!(stored, "2026-11-28T14:05:09.123456Z");
        let read = chrono::DateTime::parse_from_rfc3339(&stored).unwrap();
        assert_eq!(as_stored(t), read);
        assert_eq!(fmt_time(as_stored(t)), stored);
        // A whole second keeps its six zeros (chrono's own format would drop them).
        let whole = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(serialize_with = "ser_time")]
            at: chrono::DateTime<chrono::Utc>,
            #[serde(serialize_with = "ser_opt_time")]
            never: Option<chrono::DateTime<chrono::Utc>>,
        }
        assert_eq!(
            serde_json::to_string(&Out {
                at: whole,
                never: None
            })
            .unwrap(),
            r#"{"at":"2026-12-01T00:00:00.000000Z","never":null}"#
        );
    }
}
