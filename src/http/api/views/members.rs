//! Members, invitations and teams of an organization. An invitation's organization and
//! its accepted or cancelled marks stay out: the list holds pending ones of the path's
//! organization only.
use crate::domain::{InvitationId, TeamId};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::repo::invitations::Invitation;
use crate::db::repo::members::{Member, MemberUser};
use crate::db::repo::teams::Team;
use crate::domain::{MemberStatus, Role, UserId};

#[derive(Serialize, ToSchema)]
#[schema(as = MemberUser)]
pub struct MemberUserOut<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub name: &'a str,
}

impl<'a> From<&'a MemberUser> for MemberUserOut<'a> {
    fn from(u: &'a MemberUser) -> Self {
        MemberUserOut {
            id: u.id,
            email: &u.email,
            name: &u.name,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberOut<'a> {
    pub user: MemberUserOut<'a>,
    pub role: Role,
    /// The explicit overrides (`{"path": true|false}`), not the effective set.
    #[schema(schema_with = crate::http::api::openapi::overrides)]
    pub permissions: &'a BTreeMap<String, bool>,
    pub status: MemberStatus,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub joined_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub last_active_at: Option<DateTime<Utc>>,
    /// whether the member has two-factor authentication (shown to those with security.manage)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_factor_enabled: Option<bool>,
}

impl<'a> MemberOut<'a> {
    /// The member as `ctx` may see them: their two-factor state only for security.manage.
    pub fn seen_by(m: &'a Member, ctx: &crate::db::OrgContext) -> Self {
        let mut out = MemberOut::from(m);
        if crate::db::scope::has_permission(ctx, crate::domain::Permission::SecurityManage) {
            out.two_factor_enabled = Some(m.two_factor);
        }
        out
    }
}

impl<'a> From<&'a Member> for MemberOut<'a> {
    fn from(m: &'a Member) -> Self {
        MemberOut {
            user: MemberUserOut::from(&m.user),
            role: m.role,
            permissions: &m.permissions,
            status: m.status,
            joined_at: m.joined_at,
            last_active_at: m.last_active_at,
            two_factor_enabled: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Invitation)]
pub struct InvitationOut<'a> {
    pub id: InvitationId,
    pub email: &'a str,
    pub role: Role,
    pub invited_by: Option<UserId>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub expires_at: DateTime<Utc>,
}

impl<'a> From<&'a Invitation> for InvitationOut<'a> {
    fn from(i: &'a Invitation) -> Self {
        InvitationOut {
            id: i.id,
            email: &i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Team)]
pub struct TeamOut<'a> {
    pub id: TeamId,
    pub name: &'a str,
    pub description: &'a str,
    pub member_count: i64,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub updated_at: DateTime<Utc>,
}

impl<'a> From<&'a Team> for TeamOut<'a> {
    fn from(t: &'a Team) -> Self {
        TeamOut {
            id: t.id,
            name: &t.name,
            description: &t.description,
            member_count: t.member_count,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A new invitation with what is shown only once.
#[derive(Serialize, ToSchema)]
#[schema(as = InvitationCreated)]
pub struct InvitationCreated<'a> {
    #[serde(flatten)]
    pub invitation: InvitationOut<'a>,
    /// the invitation token, shown only in this response
    pub token: &'a str,
    /// the link to send to the invited person, shown only in this response
    pub accept_url: &'a str,
    /// whether the invitation email went out (SMTP configured and the send worked)
    pub email_sent: bool,
    /// true when a pending invitation for the same email was cancelled by this one: the link sent earlier no longer works
    pub replaced_invitation: bool,
}

/// `POST /invitations/accept`.
#[derive(Serialize, ToSchema)]
#[schema(as = InvitationAccepted)]
pub struct InvitationAccepted<'a> {
    pub organization: super::OrgOut<'a>,
    pub role: crate::domain::Role,
}

/// A team with its members.
#[derive(Serialize, ToSchema)]
#[schema(as = TeamWithMembers)]
pub struct TeamWithMembers<'a> {
    #[serde(flatten)]
    pub team: TeamOut<'a>,
    pub members: Vec<MemberUserOut<'a>>,
}

/// Whether a put added something.
#[derive(Serialize, ToSchema)]
pub struct Added {
    /// false when it was there already
    pub added: bool,
}
