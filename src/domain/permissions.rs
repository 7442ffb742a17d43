//! The six roles, the permission paths, and the one table of role defaults.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Member,
    Viewer,
    Guest,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::Manager,
        Role::Member,
        Role::Viewer,
        Role::Guest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Member => "member",
            Role::Viewer => "viewer",
            Role::Guest => "guest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Higher is more powerful; used for "nobody grants above their own role".
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 6,
            Role::Admin => 5,
            Role::Manager => 4,
            Role::Member => 3,
            Role::Viewer => 2,
            Role::Guest => 1,
        }
    }

    /// The default permissions of the role: the one table every check starts from.
    pub fn default_permissions(self) -> &'static [&'static str] {
        match self {
            Role::Owner => PERMISSIONS,
            Role::Admin => ADMIN,
            Role::Manager => MANAGER,
            Role::Member => MEMBER,
            Role::Viewer => VIEWER,
            Role::Guest => GUEST,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every permission path that exists. Overrides naming anything else are refused.
pub const PERMISSIONS: &[&str] = &[
    "org.view",
    "org.update",
    "org.delete",
    "members.view",
    "members.invite",
    "members.manage",
    "teams.view",
    "teams.manage",
    "audit.view",
    "llm.use",
    "llm.keys.manage",
    "llm.policy.manage",
    "usage.view",
    "billing.view",
    "billing.manage",
    "quota.manage",
    "agents.create",
    "agents.manage",
    "workflows.create",
    "workflows.manage",
    "documents.create",
    "documents.manage",
    "tools.create",
    "tools.manage",
    "knowledge_bases.create",
    "knowledge_bases.manage",
    "conversations.create",
    "conversations.manage",
];

const ADMIN: &[&str] = &[
    "org.view",
    "org.update",
    "members.view",
    "members.invite",
    "members.manage",
    "teams.view",
    "teams.manage",
    "audit.view",
    "llm.use",
    "llm.keys.manage",
    "llm.policy.manage",
    "usage.view",
    "billing.view",
    "agents.create",
    "agents.manage",
    "workflows.create",
    "workflows.manage",
    "documents.create",
    "documents.manage",
    "tools.create",
    "tools.manage",
    "knowledge_bases.create",
    "knowledge_bases.manage",
    "conversations.create",
    "conversations.manage",
];

const MANAGER: &[&str] = &[
    "org.view",
    "members.view",
    "members.invite",
    "teams.view",
    "teams.manage",
    "llm.use",
    "usage.view",
    "agents.create",
    "agents.manage",
    "workflows.create",
    "workflows.manage",
    "documents.create",
    "documents.manage",
    "tools.create",
    "tools.manage",
    "knowledge_bases.create",
    "knowledge_bases.manage",
    "conversations.create",
    "conversations.manage",
];

const MEMBER: &[&str] = &[
    "org.view",
    "members.view",
    "teams.view",
    "llm.use",
    "agents.create",
    "workflows.create",
    "documents.create",
    "tools.create",
    "knowledge_bases.create",
    "conversations.create",
];

const VIEWER: &[&str] = &["org.view", "members.view", "teams.view"];

const GUEST: &[&str] = &["org.view"];

/// A known permission path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission(&'static str);

impl Permission {
    pub fn parse(s: &str) -> Option<Permission> {
        PERMISSIONS.iter().find(|p| **p == s).map(|p| Permission(p))
    }
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// The effective permissions of one member: role defaults with their overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionSet(BTreeSet<&'static str>);

impl PermissionSet {
    /// `overrides` maps a path to grant (`true`) or deny (`false`); unknown paths are ignored
    /// here because they were refused when the override was written.
    pub fn effective(role: Role, overrides: &BTreeMap<String, bool>) -> Self {
        let mut set: BTreeSet<&'static str> = role.default_permissions().iter().copied().collect();
        for (path, grant) in overrides {
            if let Some(p) = Permission::parse(path) {
                if *grant {
                    set.insert(p.0);
                } else {
                    set.remove(p.0);
                }
            }
        }
        Self(set)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.0.contains(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_default_is_a_known_permission_and_roles_nest() {
        for role in Role::ALL {
            for p in role.default_permissions() {
                assert!(Permission::parse(p).is_some(), "{role}: unknown {p}");
            }
        }
        // A lower role never has a default that a higher role lacks.
        for pair in Role::ALL.windows(2) {
            let (hi, lo) = (pair[0], pair[1]);
            for p in lo.default_permissions() {
                assert!(
                    hi.default_permissions().contains(p),
                    "{lo} has {p} but {hi} does not"
                );
            }
        }
    }

    #[test]
    fn overrides_grant_and_deny_single_paths() {
        let mut o = BTreeMap::new();
        o.insert("audit.view".to_string(), true);
        o.insert("agents.create".to_string(), false);
        o.insert("no.such".to_string(), true);
        let set = PermissionSet::effective(Role::Member, &o);
        assert!(set.contains("audit.view"));
        assert!(!set.contains("agents.create"));
        assert!(!set.contains("no.such"));
        assert!(set.contains("llm.use"));
    }
}
