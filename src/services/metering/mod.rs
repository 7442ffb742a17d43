//! Metering, the one way a model call is counted: token counting (`tokens`), admission
//! against quotas and rate limits before a call (`admission`), writing each call's usage
//! in batches (`meter`) and the credit alerts that writing triggers (`alerts`). Callers
//! (the gateway today) map `Denied` to their own wire format.
pub mod admission;
pub mod alerts;
pub mod meter;
pub mod tokens;

pub use admission::{Gate, Limits, Reservation};
pub use meter::{Meter, Metered};
pub use tokens::Tokens;

use super::quota::LimitKind;
use crate::domain::Micros;

/// Why admission refused a call: the limit that was hit, with what the message names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "the organization's monthly AI credits are used up ({} of {} micro-USD in {period})",
        .used.get(),
        .limit.get()
    )]
    OrgCredits {
        used: Micros,
        limit: Micros,
        period: String,
    },
    #[error("the organization's monthly requests are used up ({used} of {limit} in {period})")]
    OrgRequests {
        used: i64,
        limit: i64,
        period: String,
    },
    #[error(
        "your monthly AI credits in this organization are used up ({} of {} micro-USD in {period})",
        .used.get(),
        .limit.get()
    )]
    MemberCredits {
        used: Micros,
        limit: Micros,
        period: String,
    },
    #[error("the organization's limit of {limit} requests per minute is reached")]
    RequestsPerMinute { limit: i64, retry_after_secs: u64 },
    #[error("the organization's limit of {limit} tokens per minute is reached")]
    TokensPerMinute { limit: i64, retry_after_secs: u64 },
    #[error(
        "this call (about {tokens} tokens) is larger than the organization's limit of {limit} tokens per minute"
    )]
    LargerThanTokensPerMinute { tokens: i64, limit: i64 },
}

impl Denied {
    /// The limit that was hit.
    pub fn limit(&self) -> LimitKind {
        match self {
            Denied::OrgCredits { .. } => LimitKind::OrgCredits,
            Denied::OrgRequests { .. } => LimitKind::OrgRequests,
            Denied::MemberCredits { .. } => LimitKind::MemberCredits,
            Denied::RequestsPerMinute { .. } => LimitKind::RateRpm,
            Denied::TokensPerMinute { .. } | Denied::LargerThanTokensPerMinute { .. } => {
                LimitKind::RateTpm
            }
        }
    }

    /// For a rate limit, when the call may be tried again; a call larger than the
    /// tokens-per-minute limit never fits, so it is told to wait the whole minute.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Denied::RequestsPerMinute {
                retry_after_secs, ..
            }
            | Denied::TokensPerMinute {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Denied::LargerThanTokensPerMinute { .. } => Some(60),
            Denied::OrgCredits { .. }
            | Denied::OrgRequests { .. }
            | Denied::MemberCredits { .. } => None,
        }
    }

    /// A monthly allowance is used up (as opposed to a per-minute rate being reached).
    pub fn is_exhausted(&self) -> bool {
        self.retry_after_secs().is_none()
    }
}

/// A member of a fresh organization in a temporary database, for the tests of metering.
#[cfg(test)]
pub(crate) async fn test_member() -> (tempfile::TempDir, crate::db::Db, crate::db::OrgContext) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::Db::open(&dir.path().join("metering-test.db")).unwrap();
    let svc = crate::services::Services::for_tests(db.clone(), dir.path());
    let (user, org) = crate::services::identity::create_user(
        &svc,
        "meter@example.com",
        "Meter Test",
        "correct horse battery",
        false,
        &crate::services::ClientMeta::default(),
    )
    .await
    .unwrap();
    let ctx = crate::services::orgs::context(&svc, user.id, org.id.to_string())
        .await
        .unwrap();
    (dir, db, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_denial_names_its_limit_and_says_whether_to_wait() {
        let credits = Denied::OrgCredits {
            used: Micros::new(900),
            limit: Micros::new(1000),
            period: "2026-11".into(),
        };
        assert_eq!(credits.limit(), LimitKind::OrgCredits);
        assert!(credits.is_exhausted());
        assert_eq!(
            credits.to_string(),
            "the organization's monthly AI credits are used up (900 of 1000 micro-USD in 2026-11)"
        );
        let member = Denied::MemberCredits {
            used: Micros::new(5),
            limit: Micros::new(5),
            period: "2026-11".into(),
        };
        assert_eq!(member.limit(), LimitKind::MemberCredits);
        assert!(member.to_string().starts_with("your monthly AI credits"));
        let rpm = Denied::RequestsPerMinute {
            limit: 60,
            retry_after_secs: 3,
        };
        assert_eq!(
            (rpm.limit(), rpm.retry_after_secs(), rpm.is_exhausted()),
            (LimitKind::RateRpm, Some(3), false)
        );
        let large = Denied::LargerThanTokensPerMinute {
            tokens: 5000,
            limit: 100,
        };
        assert_eq!(
            (large.limit(), large.retry_after_secs()),
            (LimitKind::RateTpm, Some(60))
        );
        assert_eq!(
            large.to_string(),
            "this call (about 5000 tokens) is larger than the organization's limit of 100 tokens per minute"
        );
    }
}
