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
id_type!(MessageId);

/// Who a resource is shared with: a member or a team of its organization. Users sort
/// before teams, each by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(UserId),
    Team(TeamId),
}

impl Principal {
    /// The word a share stores for the kind of principal (`principal_type`).
    pub fn kind(self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Team(_) => "team",
        }
    }

    /// A stored kind and id; `None` when the kind is neither word or the id no id.
    pub fn parse(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "user" => UserId::parse(id).map(Principal::User),
            "team" => TeamId::parse(id).map(Principal::Team),
            _ => None,
        }
    }
}

/// The principal's id, as a share stores it (`principal_id`).
impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(u) => u.fmt(f),
            Principal::Team(t) => t.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_reads_back_from_its_kind_and_id() {
        let (u, t) = (UserId::new(), TeamId::new());
        for p in [Principal::User(u), Principal::Team(t)] {
            assert_eq!(Principal::parse(p.kind(), &p.to_string()), Some(p));
        }
        assert_eq!(
            Principal::parse("team", &u.to_string()),
            Some(Principal::Team(TeamId::from_uuid(u.as_uuid())))
        );
        assert_eq!(Principal::parse("user", "not-an-id"), None);
        assert_eq!(Principal::parse("group", &u.to_string()), None);
        assert!(Principal::User(u) < Principal::Team(t), "users sort first");
    }
}
