//! Organizations and the caller's memberships.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::repo::orgs::Org;
use crate::db::unscoped::Membership;
use crate::domain::{OrgId, OrgKind, OrgStatus, Role};

#[derive(Serialize, ToSchema)]
#[schema(as = Organization)]
pub struct OrgOut<'a> {
    pub id: &'a OrgId,
    pub name: &'a str,
    pub slug: &'a str,
    pub kind: OrgKind,
    pub plan: &'a str,
    #[schema(schema_with = crate::http::api::openapi::org_settings)]
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
#[derive(Serialize, ToSchema)]
#[schema(as = OrganizationWithRole)]
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
#[derive(Serialize, ToSchema)]
#[schema(as = Membership)]
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

/// An organization with the caller's role and effective permissions in it.
#[derive(Serialize, ToSchema)]
#[schema(as = OrganizationDetail)]
pub struct OrgDetail<'a> {
    #[serde(flatten)]
    pub organization: OrgOut<'a>,
    pub role: Role,
    /// the caller's effective permissions
    pub permissions: Vec<crate::domain::Permission>,
}

/// A role and its default permissions.
#[derive(Serialize, ToSchema)]
pub struct RoleDefaults {
    pub role: Role,
    pub permissions: &'static [crate::domain::Permission],
}

/// `GET /roles`: every role, and every permission there is.
#[derive(Serialize, ToSchema)]
#[schema(as = Roles)]
pub struct Roles {
    pub items: Vec<RoleDefaults>,
    pub permissions: &'static [crate::domain::Permission],
}
