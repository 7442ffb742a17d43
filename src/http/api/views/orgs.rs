//! Organizations and the caller's memberships.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::repo::orgs::Org;
use crate::db::unscoped::Membership;
use crate::domain::{OrgId, OrgKind, OrgStatus, Role};

#[derive(Serialize)]
pub struct OrgOut<'a> {
    pub id: &'a OrgId,
    pub name: &'a str,
    pub slug: &'a str,
    pub kind: OrgKind,
    pub plan: &'a str,
    pub settings: &'a serde_json::Value,
    pub status: OrgStatus,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub updated_at: DateTime<Utc>,
}

impl<'a> From<&'a Org> for OrgOut<'a> {
    fn from(o: &'a Org) -> Self {
        OrgOut {
            id: &o.id,
            name: &o.name,
            slug: &o.slug,
            kind: o.kind,
            plan: &o.plan,
            settings: &o.settings,
            status: o.status,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// An organization with the caller's role in it.
#[derive(Serialize)]
pub struct OrgWithRole<'a> {
    #[serde(flatten)]
    pub organization: OrgOut<'a>,
    pub role: Role,
}

impl<'a> From<&'a Membership> for OrgWithRole<'a> {
    fn from(m: &'a Membership) -> Self {
        OrgWithRole {
            organization: OrgOut::from(&m.organization),
            role: m.role,
        }
    }
}

/// A membership as `/me` shows it: the organization nested, beside the role.
#[derive(Serialize)]
pub struct MembershipOut<'a> {
    pub organization: OrgOut<'a>,
    pub role: Role,
}

impl<'a> From<&'a Membership> for MembershipOut<'a> {
    fn from(m: &'a Membership) -> Self {
        MembershipOut {
            organization: OrgOut::from(&m.organization),
            role: m.role,
        }
    }
}
