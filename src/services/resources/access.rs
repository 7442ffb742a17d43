//! Who may read and change a resource, and why (the "who has access" explanation).
use crate::domain::ResourceId;
use crate::services::Services;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::db::repo::resources::{self as repo, ReaderFacts, Resource, ResourceKind};
use crate::db::scope::has_permission;
use crate::db::{Conn, OrgContext};
use crate::domain::{Permission, PermissionSet, Role, UserId, Visibility};
use crate::error::{AppError, Result};

/// Write access: the type's `manage`, or ownership with the type's `create`.
pub fn can_write(ctx: &OrgContext, r: &Resource) -> bool {
    may_write(ctx.permissions(), r.owner_id == Some(ctx.user_id()), r.kind)
}

/// The resource when the caller may read it (404 otherwise) and write it (403 otherwise,
/// saying what they may not do: "you may read this {noun} but not {what}").
pub(super) fn writable(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
    noun: &str,
    what: &str,
) -> Result<Resource> {
    let r = repo::find_visible(c, ctx, kind, id)?.ok_or_else(AppError::not_found)?;
    if !can_write(ctx, &r) {
        return Err(AppError::Forbidden {
            code: "permission_denied",
            message: format!("you may read this {noun} but not {what}"),
        });
    }
    Ok(r)
}

fn may_write(permissions: &PermissionSet, owner: bool, kind: ResourceKind) -> bool {
    permissions.contains(kind.manage_permission())
        || (owner && permissions.contains(kind.create_permission()))
}

/// One reason in an access explanation; sent as its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Owner,
    /// Organization or public visibility, for a member who is not a guest.
    Visibility(Visibility),
    /// Organization or public visibility does not reach guests.
    NotForGuests(Visibility),
    SharedDirectly,
    /// Shared with a team the member is in (the team's name).
    Team(String),
    Manages(Permission),
    /// Nothing grants reading.
    NoRule,
    NotAMember,
}

impl Reason {
    /// Whether the reason lets the member read the resource.
    pub fn grants(&self) -> bool {
        matches!(
            self,
            Reason::Owner
                | Reason::Visibility(_)
                | Reason::SharedDirectly
                | Reason::Team(_)
                | Reason::Manages(_)
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Owner => f.write_str("owner of the resource"),
            Reason::Visibility(v) => write!(f, "{} visibility", v.as_str()),
            Reason::NotForGuests(v) => write!(
                f,
                "not by {} visibility: guests see only what is shared with them",
                v.as_str()
            ),
            Reason::SharedDirectly => f.write_str("shared directly"),
            Reason::Team(name) => write!(f, "member of team {name}"),
            Reason::Manages(p) => write!(f, "holds {p}"),
            Reason::NoRule => f.write_str("no owner, visibility, share or manage rule applies"),
            Reason::NotAMember => f.write_str("not a member of this organization"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a user can or cannot read and write a resource.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Access {
    pub user_id: UserId,
    pub role: Option<Role>,
    pub can_read: bool,
    pub can_write: bool,
    #[schema(value_type = Vec<String>)]
    pub reasons: Vec<Reason>,
}

/// A member's access from what the read predicate and each of its rules say about them, in
/// the order the explanation has always given: owner, visibility, direct share, teams,
/// manage. Whether they read is the predicate's verdict; the reasons only explain it, so
/// when it says no, only reasons that grant nothing (a guest and visibility) remain.
fn access_of(kind: ResourceKind, visibility: Visibility, m: ReaderFacts) -> Access {
    let can_read = m.can_read(kind);
    let mut reasons = Vec::new();
    if m.owner {
        reasons.push(Reason::Owner);
    }
    if m.organization_visible {
        reasons.push(if m.role == Role::Guest {
            Reason::NotForGuests(visibility)
        } else {
            Reason::Visibility(visibility)
        });
    }
    if m.shared_directly {
        reasons.push(Reason::SharedDirectly);
    }
    reasons.extend(m.via_teams.iter().cloned().map(Reason::Team));
    if m.manages(kind) {
        reasons.push(Reason::Manages(kind.manage_permission()));
    }
    if !can_read {
        reasons.retain(|r| !r.grants());
        reasons.push(Reason::NoRule);
    }
    Access {
        user_id: m.user_id,
        role: Some(m.role),
        can_read,
        can_write: can_read && may_write(&m.permissions, m.owner, kind),
        reasons,
    }
}

/// Explains access to a resource for every member (or one): owner, visibility, teams,
/// direct shares, manage permission. For admins (members.manage) and the owner.
pub async fn explain_access(
    svc: &Services,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
    only: Option<UserId>,
) -> Result<Vec<Access>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let r = repo::find_visible(tx, &ctx, kind, id)?.ok_or_else(AppError::not_found)?;
            if !(r.owner_id == Some(ctx.user_id())
                || has_permission(&ctx, Permission::MembersManage))
            {
                return Err(AppError::Forbidden {
                    code: "permission_denied",
                    message: "only the owner and administrators can see who has access".into(),
                });
            }
            let mut out: Vec<Access> = repo::reader_facts(tx, &ctx, kind, r.id, only)?
                .into_iter()
                .map(|m| access_of(kind, r.visibility, m))
                .collect();
            if let Some(u) = only
                && out.is_empty()
            {
                out.push(Access {
                    user_id: u,
                    role: None,
                    can_read: false,
                    can_write: false,
                    reasons: vec![Reason::NotAMember],
                });
            }
            Ok(out)
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A member the predicate's rules say nothing about.
    fn facts(role: Role) -> ReaderFacts {
        ReaderFacts {
            user_id: UserId::new(),
            role,
            permissions: PermissionSet::effective(role, &BTreeMap::new()),
            readable_by_rules: false,
            owner: false,
            organization_visible: false,
            shared_directly: false,
            via_teams: Vec::new(),
        }
    }

    fn sentences(a: &Access) -> Vec<String> {
        a.reasons.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_owner_reads_and_writes_and_every_grant_is_listed_in_order() {
        let mut m = facts(Role::Member);
        m.readable_by_rules = true;
        m.owner = true;
        m.organization_visible = true;
        m.shared_directly = true;
        m.via_teams = vec!["Core".into(), "Ops".into()];
        let a = access_of(ResourceKind::Agent, Visibility::Organization, m);
        assert!(a.can_read && a.can_write);
        assert_eq!(
            a.reasons,
            [
                Reason::Owner,
                Reason::Visibility(Visibility::Organization),
                Reason::SharedDirectly,
                Reason::Team("Core".into()),
                Reason::Team("Ops".into()),
            ]
        );
        assert_eq!(
            sentences(&a),
            [
                "owner of the resource",
                "organization visibility",
                "shared directly",
                "member of team Core",
                "member of team Ops"
            ]
        );
    }

    #[test]
    fn a_guest_is_told_visibility_does_not_reach_them() {
        let mut m = facts(Role::Guest);
        m.organization_visible = true;
        let a = access_of(ResourceKind::Tool, Visibility::Public, m);
        assert!(!a.can_read && !a.can_write);
        assert_eq!(
            a.reasons,
            [Reason::NotForGuests(Visibility::Public), Reason::NoRule]
        );
        assert_eq!(
            sentences(&a)[0],
            "not by public visibility: guests see only what is shared with them"
        );
    }

    #[test]
    fn a_guest_reads_what_is_shared_with_their_team() {
        let mut m = facts(Role::Guest);
        m.readable_by_rules = true;
        m.organization_visible = true;
        m.via_teams = vec!["Partners".into()];
        let a = access_of(ResourceKind::Document, Visibility::Organization, m);
        assert!(a.can_read && !a.can_write);
        assert_eq!(
            a.reasons,
            [
                Reason::NotForGuests(Visibility::Organization),
                Reason::Team("Partners".into())
            ]
        );
    }

    #[test]
    fn manage_grants_reading_and_writing_without_ownership() {
        let a = access_of(ResourceKind::Agent, Visibility::Private, facts(Role::Admin));
        assert!(a.can_read && a.can_write);
        assert_eq!(a.reasons, [Reason::Manages(Permission::AgentsManage)]);
        assert_eq!(sentences(&a), ["holds agents.manage"]);
    }

    #[test]
    fn manage_taken_away_by_an_override_grants_nothing() {
        let mut m = facts(Role::Admin);
        m.permissions = PermissionSet::effective(
            Role::Admin,
            &BTreeMap::from([(Permission::AgentsManage.to_string(), false)]),
        );
        let a = access_of(ResourceKind::Agent, Visibility::Private, m);
        assert!(!a.can_read && !a.can_write);
        assert_eq!(a.reasons, [Reason::NoRule]);
    }

    #[test]
    fn a_share_lets_a_viewer_read_but_not_write() {
        let mut m = facts(Role::Viewer);
        m.readable_by_rules = true;
        m.shared_directly = true;
        let a = access_of(ResourceKind::Workflow, Visibility::Private, m);
        assert!(a.can_read && !a.can_write);
        assert_eq!(a.reasons, [Reason::SharedDirectly]);
    }

    #[test]
    fn the_predicates_verdict_decides_and_reasons_that_grant_go_when_it_says_no() {
        let mut m = facts(Role::Member);
        m.shared_directly = true;
        m.organization_visible = true;
        let a = access_of(ResourceKind::Agent, Visibility::Public, m);
        assert!(!a.can_read && !a.can_write);
        assert_eq!(a.reasons, [Reason::NoRule]);
    }

    #[test]
    fn nothing_that_applies_means_no_access() {
        let a = access_of(
            ResourceKind::Document,
            Visibility::Team,
            facts(Role::Member),
        );
        assert!(!a.can_read);
        assert_eq!(
            sentences(&a),
            ["no owner, visibility, share or manage rule applies"]
        );
        assert_eq!(
            serde_json::to_value(&a.reasons).unwrap(),
            serde_json::json!(["no owner, visibility, share or manage rule applies"])
        );
    }

    #[test]
    fn only_owner_visibility_shares_teams_and_manage_grant() {
        let granting = [
            Reason::Owner,
            Reason::Visibility(Visibility::Organization),
            Reason::SharedDirectly,
            Reason::Team("T".into()),
            Reason::Manages(Permission::ToolsManage),
        ];
        assert!(granting.iter().all(Reason::grants));
        let not = [
            Reason::NotForGuests(Visibility::Public),
            Reason::NoRule,
            Reason::NotAMember,
        ];
        assert!(!not.iter().any(Reason::grants));
        assert_eq!(
            Reason::NotAMember.to_string(),
            "not a member of this organization"
        );
    }
}
