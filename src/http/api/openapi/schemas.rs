//! Schemas of values used in many places: the error envelope and the error answers, words
//! of closed lists, ids, money, the path and header parameters, and the fields whose rule
//! is more than their type.
use std::collections::BTreeMap;

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::domain::resources::ResourceKind;

use crate::domain::{
    ApiTokenId, IndexStatus, InvitationId, MemberStatus, OrgId, OrgStatus, Permission, ResourceId,
    Role, SessionId, TeamId, UserId, UserStatus, Visibility, Word,
};

/// The error envelope of every 4xx and 5xx answer under /api.
#[derive(ToSchema)]
#[schema(as = Error)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ErrorDetail {
    /// machine-readable, e.g. validation_failed, not_found, plan_limit
    #[schema(pattern = "^[a-z][a-z0-9_]*$")]
    code: String,
    /// for people; never internals
    message: String,
    /// validation_failed only: the reason for each field
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>, nullable = false)]
    fields: Option<()>,
}

/// Liveness and readiness.
#[derive(serde::Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

/// `ok` (alive), `ready` (the database answers) or `unavailable` (it does not).
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Ready,
    Unavailable,
}

/// A string that is one of `list`.
pub fn words<I, S>(list: I) -> Schema
where
    I: IntoIterator<Item = S>,
    S: Into<serde_json::Value>,
{
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(list))
        .build()
        .into()
}

fn word_list<W: Word>() -> Schema {
    words(W::ALL.iter().map(|w| w.as_str()))
}

/// A type sent as one word of a list, named in `components/schemas`.
macro_rules! word_schema {
    ($($ty:ty as $as:literal = $words:expr;)+) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                words($words).into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                $as.into()
            }
        }
    )+};
}

word_schema!(
    Role as "Role" = Role::ALL.iter().map(|r| r.as_str());
    Permission as "Permission" = crate::domain::PERMISSIONS.iter().map(|p| p.as_str());
    Visibility as "Visibility" = [
        Visibility::Private,
        Visibility::Team,
        Visibility::Organization,
        Visibility::Public
    ]
    .map(Visibility::as_str);
);

/// A type sent as one word of a list, shown in place (statuses).
macro_rules! inline_words {
    ($($ty:ty),+) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                word_list::<$ty>().into()
            }
        }
        impl ToSchema for $ty {}
    )+};
}

inline_words!(UserStatus, OrgStatus, MemberStatus, IndexStatus);

/// A resource's kind, as its `type` says it (`agent`, `knowledge_base`).
impl PartialSchema for ResourceKind {
    fn schema() -> RefOr<Schema> {
        words(ResourceKind::ALL.map(ResourceKind::share_type)).into()
    }
}
impl ToSchema for ResourceKind {}

/// Money: a count of micro-dollars.
impl PartialSchema for crate::domain::Micros {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .build()
            .into()
    }
}
impl ToSchema for crate::domain::Micros {}

impl PartialSchema for crate::domain::OrgKind {
    fn schema() -> RefOr<Schema> {
        words(["personal", "team"]).into()
    }
}
impl ToSchema for crate::domain::OrgKind {}

/// A limit of a quota (micro-dollars, requests or tokens per minute), or null.
pub fn limit_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(4_294_967_295_000_000_i64))
        .build()
        .into()
}

/// Bytes of any type.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .build()
            .into()
    }
}
impl ToSchema for Binary {}

/// Where a resource of any kind stands in a `{type}` operation (expanded per kind).
pub struct AnyResource;
/// Where a kind's create body stands in a `{type}` operation.
pub struct ResourceCreate;
/// Where a kind's change body stands in a `{type}` operation.
pub struct ResourceChange;

macro_rules! placeholder {
    ($($ty:ident as $name:literal),+) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new().schema_type(Type::Object).build().into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
        }
    )+};
}

/// Where a gallery item stands in the gallery's operation.
pub struct PublicResource;

placeholder!(
    AnyResource as "Resource",
    ResourceCreate as "ResourceCreate",
    ResourceChange as "ResourceChange",
    PublicResource as "PublicResource"
);

/// A model's name: 1-200 characters, not only white space, no control characters.
pub struct ModelName;

impl PartialSchema for ModelName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(200))
            .pattern(Some(
                "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
            ))
            .description(Some("a model name, 1-200 characters"))
            .build()
            .into()
    }
}
impl ToSchema for ModelName {}

/// Who wrote a message.
pub fn message_role() -> Schema {
    words(["system", "user", "assistant", "tool"])
}

/// Whose a remembered fact is.
pub fn memory_scope() -> Schema {
    words(["member", "organization"])
}

/// Where a webhook delivery stands.
pub fn delivery_status() -> Schema {
    words(["pending", "delivered", "failed"])
}

/// Ids are UUIDs in text.
macro_rules! id_schema {
    ($($ty:ty),+) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                uuid().into()
            }
        }
        impl ToSchema for $ty {}
    )+};
}

id_schema!(
    UserId,
    OrgId,
    SessionId,
    ApiTokenId,
    TeamId,
    InvitationId,
    ResourceId,
    crate::domain::MessageId
);

/// A reference to a schema of `components/schemas`.
pub fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// An id: a UUID.
pub fn uuid() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uuid".into())))
        .build()
        .into()
}

/// A UUID or the empty string ("none").
pub fn uuid_or_empty() -> Schema {
    AnyOfBuilder::new()
        .item(uuid())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0))
                .description(Some("empty: none")),
        )
        .build()
        .into()
}

fn overrides_object(null: bool) -> Schema {
    let names = crate::domain::PERMISSIONS.iter().map(|p| p.as_str());
    let mut object = ObjectBuilder::new()
        .schema_type(if null {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        })
        .property_names(Some(words(names)))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
        .build();
    object.description = Some(
        "the explicit overrides: permission → granted (true) or denied (false), not the \
         effective set"
            .into(),
    );
    object.into()
}

/// A member's permission overrides.
pub fn overrides() -> Schema {
    overrides_object(false)
}

/// The overrides to keep, or null.
pub fn overrides_or_null() -> Schema {
    overrides_object(true)
}

/// An audit action, or blank for every action.
pub fn audit_action_or_blank() -> Schema {
    AnyOfBuilder::new()
        .item(schema_ref("AuditAction"))
        .item(crate::domain::schemas::blank("blank: no filter"))
        .build()
        .into()
}

/// An instance audit action, or blank for every action.
pub fn instance_audit_action_or_blank() -> Schema {
    AnyOfBuilder::new()
        .item(schema_ref("InstanceAuditAction"))
        .item(crate::domain::schemas::blank("blank: no filter"))
        .build()
        .into()
}

/// An RFC 3339 time or a date, or blank for no bound.
pub fn time_or_date_or_blank() -> Schema {
    let string = |format: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom(format.into())))
    };
    AnyOfBuilder::new()
        .item(string("date-time"))
        .item(string("date"))
        .item(crate::domain::schemas::blank("blank: no filter"))
        .build()
        .into()
}

/// The audit export's `?format=`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportFormatQuery {
    #[param(schema_with = export_format)]
    format: Option<String>,
}

fn export_format() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["ndjson", "csv"]))
        .default(Some("ndjson".into()))
        .build()
        .into()
}

/// An RFC 3339 time, a date, or null.
pub fn time_or_date_or_null() -> Schema {
    let string = |format: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom(format.into())))
    };
    AnyOfBuilder::new()
        .item(string("date-time"))
        .item(string("date"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// A plan's name, or null for the default.
pub fn plan_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            ["free", "team", "enterprise"]
                .map(serde_json::Value::from)
                .into_iter()
                .chain([serde_json::Value::Null]),
        ))
        .build()
        .into()
}

fn settings_object(null: bool) -> ObjectBuilder {
    let int = |min: i64, max: i64| ObjectBuilder::new().minimum(Some(min)).maximum(Some(max));
    ObjectBuilder::new()
        .schema_type(if null {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        })
        .property("invitation_ttl_days", int(1, 90).schema_type(Type::Integer))
        .property(
            "audit_retention_days",
            int(1, 36_500).schema_type(SchemaType::from_iter([Type::Integer, Type::Null])),
        )
}

/// An organization's settings: known keys only; a missing key has its default.
pub fn org_settings() -> Schema {
    settings_object(false)
        .description(Some(
            "Known keys only; a missing key has its default (7 days; keep every audit row)",
        ))
        .build()
        .into()
}

/// A change of settings: the keys to set (null: the default).
pub fn org_settings_patch() -> Schema {
    settings_object(true)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
        .into()
}

macro_rules! error_responses {
    ($($name:ident: $description:literal),+ $(,)?) => {$(
        #[doc = $description]
        pub struct $name;
        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
                (
                    stringify!($name),
                    ResponseBuilder::new()
                        .description($description)
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(schema_ref("Error"))).build(),
                        )
                        .build()
                        .into(),
                )
            }
        }
    )+};
}

error_responses!(
    BadRequest: "Bad input: malformed JSON, wrong types, failed validation (`fields` names each field), bad query",
    Unauthorized: "Not signed in (no or an unknown session or token)",
    Forbidden: "Not allowed: a missing permission, a missing or wrong X-CSRF-Token, an API token where a session is needed",
    NotFound: "Not found, or not visible to the caller (another organization's objects are always 404)",
    MethodNotAllowed: "Method not allowed on this path",
    Conflict: "Conflict with the current state (taken names, the last owner, a version conflict)",
    PayloadTooLarge: "The request body is larger than the limit",
    Unprocessable: "Understood but refused by a rule (a plan limit, an unsupported document type)",
    InternalError: "An internal error (logged with the request id; no details shown)",
);

/// Too many attempts; retry after Retry-After seconds.
pub struct TooManyRequests;

impl<'s> utoipa::ToResponse<'s> for TooManyRequests {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        let seconds = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0));
        (
            "TooManyRequests",
            ResponseBuilder::new()
                .description("Too many attempts; retry after Retry-After seconds")
                .header("Retry-After", utoipa::openapi::Header::new(seconds))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema_ref("Error")))
                        .build(),
                )
                .build()
                .into(),
        )
    }
}

/// The `{org}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OrgPath {
    /// organization id or slug
    #[param(min_length = 1)]
    org: String,
}

/// The `{provider}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ProviderPath {
    /// provider name: 1-32 lower-case letters, digits and '-' (e.g. openai, azure-openai, ollama)
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,31}$")]
    provider: String,
}

/// The `{type}` of a path: a kind of resource.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct KindPath {
    #[param(schema_with = resource_kinds)]
    r#type: String,
}

fn resource_kinds() -> Schema {
    words(crate::domain::resources::ResourceKind::ALL.map(|k| k.path()))
}

/// The `{id}` of a path: an object's UUID.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdPath {
    #[param(format = "uuid")]
    id: String,
}

/// An invoice's `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct InvoicePath {
    /// invoice id; with .csv appended, the invoice as CSV
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(\\.csv)?$"
    )]
    id: String,
}

/// The If-Match header of a change.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatch {
    /// the ETag you read
    #[param(
        rename = "If-Match",
        pattern = "^(W/)?\"?[0-9]{1,18}\"?$",
        nullable = false
    )]
    if_match: Option<String>,
}

/// The error answers every organization-guarded operation can give: not signed in (or
/// signed in too long ago for the organization's session policy), not allowed (including
/// an address off its IP allowlist), not found (or another organization's), its API rate
/// limit, internal error.
pub struct Guarded;

/// The error answers of an operation that reads a JSON body: malformed or refused input,
/// a body over the size limit.
pub struct Sent;

fn error_refs(named: &[(&str, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    named
        .iter()
        .map(|(status, name)| {
            (
                (*status).to_string(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

impl utoipa::IntoResponses for Guarded {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_refs(&[
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("404", "NotFound"),
            ("429", "TooManyRequests"),
            ("500", "InternalError"),
        ])
    }
}

impl utoipa::IntoResponses for Sent {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_refs(&[("400", "BadRequest"), ("413", "PayloadTooLarge")])
    }
}
