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

impl super::Word for Role {
    const ALL: &'static [Self] = &Role::ALL;
    fn as_str(self) -> &'static str {
        Role::as_str(self)
    }
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
    pub fn default_permissions(self) -> &'static [Permission] {
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

/// A permission path. The string form (`teams.manage`) exists only at the edges: JSON,
/// overrides stored in the database, the permission matrix page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    OrgView,
    OrgUpdate,
    OrgDelete,
    MembersView,
    MembersInvite,
    MembersManage,
    TeamsView,
    TeamsManage,
    AuditView,
    LlmUse,
    LlmKeysManage,
    LlmPolicyManage,
    UsageView,
    BillingView,
    BillingManage,
    QuotaManage,
    SecurityManage,
    AgentsCreate,
    AgentsManage,
    WorkflowsCreate,
    WorkflowsManage,
    DocumentsCreate,
    DocumentsManage,
    ToolsCreate,
    ToolsManage,
    KnowledgeBasesCreate,
    KnowledgeBasesManage,
    ConversationsCreate,
    ConversationsManage,
}

/// Every permission that exists, in the order pages and the API list them. Overrides
/// naming anything else are refused.
pub const PERMISSIONS: &[Permission] = &[
    Permission::OrgView,
    Permission::OrgUpdate,
    Permission::OrgDelete,
    Permission::MembersView,
    Permission::MembersInvite,
    Permission::MembersManage,
    Permission::TeamsView,
    Permission::TeamsManage,
    Permission::AuditView,
    Permission::LlmUse,
    Permission::LlmKeysManage,
    Permission::LlmPolicyManage,
    Permission::UsageView,
    Permission::BillingView,
    Permission::BillingManage,
    Permission::QuotaManage,
    Permission::SecurityManage,
    Permission::AgentsCreate,
    Permission::AgentsManage,
    Permission::WorkflowsCreate,
    Permission::WorkflowsManage,
    Permission::DocumentsCreate,
    Permission::DocumentsManage,
    Permission::ToolsCreate,
    Permission::ToolsManage,
    Permission::KnowledgeBasesCreate,
    Permission::KnowledgeBasesManage,
    Permission::ConversationsCreate,
    Permission::ConversationsManage,
];

const ADMIN: &[Permission] = &[
    Permission::OrgView,
    Permission::OrgUpdate,
    Permission::MembersView,
    Permission::MembersInvite,
    Permission::MembersManage,
    Permission::TeamsView,
    Permission::TeamsManage,
    Permission::AuditView,
    Permission::LlmUse,
    Permission::LlmKeysManage,
    Permission::LlmPolicyManage,
    Permission::UsageView,
    Permission::BillingView,
    Permission::AgentsCreate,
    Permission::AgentsManage,
    Permission::WorkflowsCreate,
    Permission::WorkflowsManage,
    Permission::DocumentsCreate,
    Permission::DocumentsManage,
    Permission::ToolsCreate,
    Permission::ToolsManage,
    Permission::KnowledgeBasesCreate,
    Permission::KnowledgeBasesManage,
    Permission::ConversationsCreate,
    Permission::ConversationsManage,
];

const MANAGER: &[Permission] = &[
    Permission::OrgView,
    Permission::MembersView,
    Permission::MembersInvite,
    Permission::TeamsView,
    Permission::TeamsManage,
    Permission::LlmUse,
    Permission::UsageView,
    Permission::AgentsCreate,
    Permission::AgentsManage,
    Permission::WorkflowsCreate,
    Permission::WorkflowsManage,
    Permission::DocumentsCreate,
    Permission::DocumentsManage,
    Permission::ToolsCreate,
    Permission::ToolsManage,
    Permission::KnowledgeBasesCreate,
    Permission::KnowledgeBasesManage,
    Permission::ConversationsCreate,
    Permission::ConversationsManage,
];

const MEMBER: &[Permission] = &[
    Permission::OrgView,
    Permission::MembersView,
    Permission::TeamsView,
    Permission::LlmUse,
    Permission::AgentsCreate,
    Permission::WorkflowsCreate,
    Permission::DocumentsCreate,
    Permission::ToolsCreate,
    Permission::KnowledgeBasesCreate,
    Permission::ConversationsCreate,
];

const VIEWER: &[Permission] = &[
    Permission::OrgView,
    Permission::MembersView,
    Permission::TeamsView,
];

const GUEST: &[Permission] = &[Permission::OrgView];

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrgView => "org.view",
            Permission::OrgUpdate => "org.update",
            Permission::OrgDelete => "org.delete",
            Permission::MembersView => "members.view",
            Permission::MembersInvite => "members.invite",
            Permission::MembersManage => "members.manage",
            Permission::TeamsView => "teams.view",
            Permission::TeamsManage => "teams.manage",
            Permission::AuditView => "audit.view",
            Permission::LlmUse => "llm.use",
            Permission::LlmKeysManage => "llm.keys.manage",
            Permission::LlmPolicyManage => "llm.policy.manage",
            Permission::UsageView => "usage.view",
            Permission::BillingView => "billing.view",
            Permission::BillingManage => "billing.manage",
            Permission::QuotaManage => "quota.manage",
            Permission::SecurityManage => "security.manage",
            Permission::AgentsCreate => "agents.create",
            Permission::AgentsManage => "agents.manage",
            Permission::WorkflowsCreate => "workflows.create",
            Permission::WorkflowsManage => "workflows.manage",
            Permission::DocumentsCreate => "documents.create",
            Permission::DocumentsManage => "documents.manage",
            Permission::ToolsCreate => "tools.create",
            Permission::ToolsManage => "tools.manage",
            Permission::KnowledgeBasesCreate => "knowledge_bases.create",
            Permission::KnowledgeBasesManage => "knowledge_bases.manage",
            Permission::ConversationsCreate => "conversations.create",
            Permission::ConversationsManage => "conversations.manage",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        PERMISSIONS.iter().copied().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The effective permissions of one member: role defaults with their overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// `overrides` maps a path to grant (`true`) or deny (`false`); unknown paths are ignored
    /// here because they were refused when the override was written.
    pub fn effective(role: Role, overrides: &BTreeMap<String, bool>) -> Self {
        let mut set: BTreeSet<Permission> = role.default_permissions().iter().copied().collect();
        for (path, grant) in overrides {
            if let Some(p) = Permission::parse(path) {
                if *grant {
                    set.insert(p);
                } else {
                    set.remove(&p);
                }
            }
        }
        Self(set)
    }

    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
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
                assert_eq!(Permission::parse(p.as_str()), Some(*p), "{role}: {p}");
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
    fn every_permission_is_listed_once_and_reads_back_from_its_string() {
        let names: BTreeSet<&str> = PERMISSIONS.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), PERMISSIONS.len());
        for p in PERMISSIONS {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Role::Owner.default_permissions(), PERMISSIONS);
    }

    #[test]
    fn overrides_grant_and_deny_single_paths() {
        let mut o = BTreeMap::new();
        o.insert("audit.view".to_string(), true);
        o.insert("agents.create".to_string(), false);
        o.insert("no.such".to_string(), true);
        let set = PermissionSet::effective(Role::Member, &o);
        assert!(set.contains(Permission::AuditView));
        assert!(!set.contains(Permission::AgentsCreate));
        assert_eq!(Permission::parse("no.such"), None);
        assert_eq!(set.iter().count(), MEMBER.len());
        assert!(set.contains(Permission::LlmUse));
    }
}
