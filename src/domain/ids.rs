//! Typed ids: UUIDv7 inside, so that a user id is never passed where an org id belongs.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A fresh UUIDv7 (time-ordered, so inserts append to indexes).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

macro_rules! id_type {
    ($name:ident) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(new_id())
            }
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

id_type!(UserId);
id_type!(OrgId);
id_type!(SessionId);
id_type!(ApiTokenId);
id_type!(TeamId);
id_type!(InvitationId);
id_type!(ResourceId);
