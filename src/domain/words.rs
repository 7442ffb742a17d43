//! Values stored and sent as one of a fixed set of words (`"active"`, `"owner"`): each is
//! an enum in code, its word only at the edges (SQL, JSON, pages).
use serde::{Serialize, Serializer};

/// A value that is one word of a closed list. The repository reads columns of these
/// through `db::repo::word_at`, so a word outside the list is a read error, not a
/// silently chosen default.
pub trait Word: Sized + Copy + 'static {
    /// Every value, in the order the list is shown.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// Defines an enum whose values are words, serialized as the word.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl Word for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                Word::as_str(self)
            }
            pub fn parse(s: &str) -> Option<Self> {
                <Self as Word>::parse(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

words!(
    /// Whether an account may sign in and use its tokens.
    UserStatus {
        Active = "active",
        /// Disabled by an administrator: no sign-in, no API, no gateway.
        Disabled = "disabled",
    }
);

words!(
    /// Whether an organization is in use.
    OrgStatus {
        Active = "active",
        Suspended = "suspended",
    }
);

words!(
    /// Whether a membership counts: only active memberships give access.
    MemberStatus {
        Active = "active",
        Suspended = "suspended",
    }
);

words!(
    /// Where indexing of one document of a knowledge base stands.
    IndexStatus {
        Queued = "queued",
        /// Extracted and split; `embedded` of `chunks` have their vectors.
        Indexing = "indexing",
        Ready = "ready",
        /// Stopped, with the reason in `error`; adding the document again retries.
        Failed = "failed",
    }
);

words!(
    /// Where a workflow run stands.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        /// A step failed; `error` says which and why (a refused model call names its code).
        Failed = "failed",
        Cancelled = "cancelled",
        /// The server stopped during a step that was already retried once.
        Interrupted = "interrupted",
    }
);

impl RunStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

words!(
    /// Where one step of a run stands.
    StepStatus {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Jumped over by a condition.
        Skipped = "skipped",
        Interrupted = "interrupted",
        Cancelled = "cancelled",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_are_refused() {
        for s in UserStatus::ALL {
            assert_eq!(UserStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            MemberStatus::parse("suspended"),
            Some(MemberStatus::Suspended)
        );
        assert_eq!(OrgStatus::parse("Active"), None);
        assert_eq!(UserStatus::parse(""), None);
        assert_eq!(
            serde_json::to_string(&UserStatus::Disabled).unwrap(),
            "\"disabled\""
        );
        assert_eq!(OrgStatus::Suspended.to_string(), "suspended");
    }
}
