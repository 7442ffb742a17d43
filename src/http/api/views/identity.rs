//! The signed-in user: their account, sessions and API tokens. A session's user and CSRF
//! token, a revoked session, a token's owner and an account's current organization stay
//! out: the first are secrets or the caller's own, the last is answered on its own.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::repo::sessions::Session;
use crate::db::repo::tokens::ApiToken;
use crate::db::repo::users::User;
use crate::domain::{ApiTokenId, OrgId, SessionId, UserId, UserStatus};

#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserOut<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub name: &'a str,
    pub is_superuser: bool,
    pub status: UserStatus,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
}

impl<'a> From<&'a User> for UserOut<'a> {
    fn from(u: &'a User) -> Self {
        UserOut {
            id: u.id,
            email: &u.email,
            name: &u.name,
            is_superuser: u.is_superuser,
            status: u.status,
            created_at: u.created_at,
        }
    }
}

/// A session in the caller's list, `current` when it is the one making the request.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionOut<'a> {
    pub id: SessionId,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub last_seen_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub current: bool,
}

impl<'a> SessionOut<'a> {
    pub fn new(s: &'a Session, current: SessionId) -> Self {
        SessionOut {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            ip: s.ip.as_deref(),
            user_agent: s.user_agent.as_deref(),
            current: s.id == current,
        }
    }
}

/// An API token as listed: its hint, never its hash.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiToken)]
pub struct TokenOut<'a> {
    pub id: ApiTokenId,
    pub organization_id: OrgId,
    pub name: &'a str,
    pub token_hint: &'a str,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a ApiToken> for TokenOut<'a> {
    fn from(t: &'a ApiToken) -> Self {
        TokenOut {
            id: t.id,
            organization_id: t.organization_id,
            name: &t.name,
            token_hint: &t.token_hint,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `POST /auth/signup`.
#[derive(Serialize, ToSchema)]
#[schema(as = SignupResult)]
pub struct SignupResult<'a> {
    pub user: UserOut<'a>,
    pub personal_organization: super::OrgOut<'a>,
}

/// `POST /auth/login`.
#[derive(Serialize, ToSchema)]
#[schema(as = LoginResult)]
pub struct LoginResult<'a> {
    pub user: UserOut<'a>,
    pub organizations: Vec<super::OrgWithRole<'a>>,
    pub current_organization_id: Option<OrgId>,
    /// send as X-CSRF-Token on state-changing calls with this session
    pub csrf_token: &'a str,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub expires_at: DateTime<Utc>,
}

/// `GET /me`.
#[derive(Serialize, ToSchema)]
#[schema(as = Me)]
pub struct MeOut<'a> {
    pub user: UserOut<'a>,
    pub memberships: Vec<super::MembershipOut<'a>>,
    pub current_organization_id: Option<OrgId>,
}

/// `PUT /me/current-organization`.
#[derive(Serialize, ToSchema)]
#[schema(as = CurrentOrganization)]
pub struct CurrentOrganization<'a> {
    pub current_organization_id: OrgId,
    pub organization: super::OrgOut<'a>,
    pub role: crate::domain::Role,
}

/// A new API token with its secret, shown only in this answer.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiTokenCreated)]
pub struct TokenCreated<'a> {
    #[serde(flatten)]
    pub row: TokenOut<'a>,
    /// the secret, shown only in this response
    #[schema(pattern = "^xa_")]
    pub token: &'a str,
}
