//! Resources of every kind, with what the caller may do to them, and conversation
//! messages. A kind's own fields are its `Fields` (domain/resources), which each kind's
//! module writes out itself.
use crate::domain::{MessageId, ResourceId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::repo::resources::{
    Fields, Message, Resource, ResourceKind, SharedWith, Skill, Trait,
};
use crate::domain::{OrgId, TeamId, UserId, Visibility};
use crate::services::resources::{Accessible, View};

use super::orgs::OrgOut;

#[derive(Serialize, ToSchema)]
pub struct SharedWithOut {
    pub users: Vec<UserId>,
    pub teams: Vec<TeamId>,
}

impl From<&SharedWith> for SharedWithOut {
    fn from(s: &SharedWith) -> Self {
        SharedWithOut {
            users: s.users().collect(),
            teams: s.teams().collect(),
        }
    }
}

// The OpenAPI document adds each kind's own fields and its `type` (openapi/kinds.rs).
/// A resource.
#[derive(Serialize, ToSchema)]
pub struct ResourceOut<'a> {
    pub id: ResourceId,
    #[serde(rename = "type")]
    #[schema(ignore)]
    pub kind: ResourceKind,
    pub organization_id: OrgId,
    pub owner_id: Option<UserId>,
    pub name: &'a str,
    pub description: &'a str,
    pub visibility: Visibility,
    pub shared_with: SharedWithOut,
    /// also the ETag
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub updated_at: DateTime<Utc>,
    /// The type's own fields (`model`, `steps`, ...), flattened into the JSON.
    #[serde(flatten)]
    #[schema(ignore)]
    pub fields: &'a Fields,
}

impl<'a> From<&'a Resource> for ResourceOut<'a> {
    fn from(r: &'a Resource) -> Self {
        ResourceOut {
            id: r.id,
            kind: r.kind,
            organization_id: r.organization_id,
            owner_id: r.owner_id,
            name: &r.name,
            description: &r.description,
            visibility: r.visibility,
            shared_with: SharedWithOut::from(&r.shared_with),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: &r.fields,
        }
    }
}

/// A resource with, per type, its parts and whether the caller may change it.
#[derive(Serialize, ToSchema)]
pub struct ViewOut<'a> {
    #[serde(flatten)]
    pub resource: ResourceOut<'a>,
    /// not in lists
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub personality_traits: Option<&'a [Trait]>,
    /// not in lists
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub skills: Option<&'a [Skill]>,
    /// ids of its documents; not in lists
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Vec<ResourceId>>)]
    pub documents: Option<&'a [String]>,
    /// whether the caller may change it
    pub can_write: bool,
}

impl<'a> From<&'a View> for ViewOut<'a> {
    fn from(v: &'a View) -> Self {
        ViewOut {
            resource: ResourceOut::from(&v.resource),
            personality_traits: v.personality_traits.as_deref(),
            skills: v.skills.as_deref(),
            documents: v.documents.as_deref(),
            can_write: v.can_write,
        }
    }
}

/// One item of "accessible to me": the resource and the organization it lives in.
#[derive(Serialize, ToSchema)]
#[schema(as = AccessibleResource)]
pub struct AccessibleOut<'a> {
    #[serde(flatten)]
    #[schema(value_type = crate::http::api::openapi::AnyResource)]
    pub view: ViewOut<'a>,
    pub organization: OrgOut<'a>,
}

impl<'a> From<&'a Accessible> for AccessibleOut<'a> {
    fn from(a: &'a Accessible) -> Self {
        AccessibleOut {
            view: ViewOut::from(&a.view),
            organization: OrgOut::from(&a.organization),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageOut<'a> {
    pub id: MessageId,
    #[schema(schema_with = crate::http::api::openapi::message_role)]
    pub role: &'a str,
    pub content: &'a str,
    pub user_id: Option<UserId>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[schema(minimum = 0)]
    pub input_tokens: i64,
    #[schema(minimum = 0)]
    pub output_tokens: i64,
    pub cost_micros: crate::domain::Micros,
    /// the model that wrote a reply
    pub model: Option<&'a str>,
    /// the passages a reply was given
    pub citations: &'a [crate::db::repo::resources::Citation],
    /// false for a reply cut short (its reader went away or the provider broke off)
    pub complete: bool,
}

impl<'a> From<&'a Message> for MessageOut<'a> {
    fn from(m: &'a Message) -> Self {
        MessageOut {
            id: m.id,
            role: &m.role,
            content: &m.content,
            user_id: m.user_id,
            created_at: m.created_at,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            cost_micros: m.cost_micros,
            model: m.model.as_deref(),
            citations: &m.citations,
            complete: m.complete,
        }
    }
}
