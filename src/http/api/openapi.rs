//! The OpenAPI description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types (utoipa), so a route, a field or a
//! status cannot change without the document changing with it.
//!
//! What JSON Schema says beyond a Rust type (lengths, patterns, the words of a closed list)
//! is written next to the field it describes; the schemas of values used in many places
//! (names, ids, the error envelope) are the functions below.
use std::sync::LazyLock;

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{PathItem, Ref, RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::{audit, auth, llm, me, members, orgs, resources, usage};
use crate::domain::audit::ORG_AUDIT_ACTIONS;
use crate::domain::resources::ResourceKind;

use crate::domain::{
    ApiTokenId, InvitationId, MemberStatus, OrgId, OrgStatus, Permission, ResourceId, Role,
    SessionId, TeamId, UserId, UserStatus, Visibility, Word,
};

/// The document, serialized once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&ApiDoc::openapi()).unwrap_or_else(|_| "{}".to_string())
});

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xagent API",
        description = "Organization layer of the xAgent platform. Authenticate with the session cookie `xagent_session` (state-changing calls then need the `X-CSRF-Token` header with the csrf_token from login) or with `Authorization: Bearer xa_...` (an API token acting in one organization). Errors are `{\"error\":{\"code\",\"message\",\"fields?\"}}`; another organization's objects are 404.",
    ),
    servers((url = "/")),
    security(("session" = [], "csrf" = []), ("token" = [])),
    paths(
        crate::http::healthz,
        crate::http::readyz,
        auth::signup,
        auth::login,
        auth::logout,
        me::me,
        me::set_current,
        me::list_tokens,
        me::create_token,
        me::revoke_token,
        me::list_sessions,
        me::revoke_session,
        orgs::list,
        orgs::create,
        orgs::show,
        orgs::update,
        orgs::delete_org,
        orgs::roles,
        members::list_members,
        members::get_member,
        members::update_member,
        members::remove_member,
        members::list_invitations,
        members::invite,
        members::cancel_invitation,
        members::accept,
        members::list_teams,
        members::create_team,
        members::get_team,
        members::update_team,
        members::delete_team,
        members::add_team_member,
        members::remove_team_member,
        audit::list,
        audit::export,
        llm::settings,
        llm::put_provider,
        llm::delete_provider,
        llm::test_org_provider,
        llm::patch_policy,
        llm::resolve,
        llm::my_keys,
        llm::put_my_key,
        llm::delete_my_key,
        llm::test_my_key,
        usage::usage,
        usage::usage_csv,
        usage::show,
        usage::update,
        usage::invoices,
        usage::invoice,
        usage::notifications,
        usage::webhook_deliveries,
        usage::read_notification,
        me::move_to_org,
        resources::list,
        resources::create,
        resources::show,
        resources::update,
        resources::remove,
        resources::access,
        resources::content,
        resources::list_messages,
        resources::add_message,
        resources::kb_add,
        resources::kb_remove,
        resources::limits,
        resources::summary,
        resources::accessible,
        resources::public,
    ),
    components(
        schemas(ErrorBody, Health, Role, Permission, Visibility, AuditActionWord),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            Unprocessable,
            TooManyRequests,
            InternalError
        )
    ),
    modifiers(&SecuritySchemes, &PerKind, &PathParametersRequired),
)]
struct ApiDoc;

/// The three ways to authenticate, named by every operation's `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::http::extract::SESSION_COOKIE,
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("xa_...")
                    .build(),
            ),
        );
    }
}

/// A path parameter is always required (OpenAPI says so); a parameter whose schema is a
/// function's comes out optional.
struct PathParametersRequired;

impl Modify for PathParametersRequired {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(p) = p
                        && p.parameter_in == ParameterIn::Path
                    {
                        p.required = utoipa::openapi::Required::True;
                    }
                }
            }
        }
    }
}

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
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(schema_with = health_words)]
    status: String,
}

fn health_words() -> Schema {
    words(["ok", "ready", "unavailable"])
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
    AuditActionWord as "AuditAction" = ORG_AUDIT_ACTIONS.iter().copied();
);

/// What an audit entry records (one word of the vocabulary).
pub struct AuditActionWord;

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

inline_words!(UserStatus, OrgStatus, MemberStatus);

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

placeholder!(AnyResource as "Resource", ResourceCreate as "ResourceCreate", ResourceChange as "ResourceChange");

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

/// Where a webhook delivery stands.
pub fn delivery_status() -> Schema {
    words(["pending", "delivered", "failed"])
}

/// A percentage of a limit at which an alert goes out.
pub struct Percent;

impl PartialSchema for Percent {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(100))
            .build()
            .into()
    }
}
impl ToSchema for Percent {}

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

/// A list of ids.
pub fn uuids() -> Schema {
    ArrayBuilder::new().items(RefOr::T(uuid())).build().into()
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

/// Blank (no filter) as a query parameter: only white space.
fn blank() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            "^[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$",
        ))
        .description(Some("blank: no filter"))
}

/// An audit action, or blank for every action.
pub fn audit_action_or_blank() -> Schema {
    AnyOfBuilder::new()
        .item(schema_ref("AuditAction"))
        .item(blank())
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
        .item(blank())
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
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
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

/// What the handlers' annotations name.
pub mod prelude {
    pub use super::{
        AnyResource, BadRequest, Binary, Conflict, ExportFormatQuery, Forbidden, IfMatch,
        InternalError, InvoicePath, KindPath, MethodNotAllowed, NotFound, OrgPath, PayloadTooLarge,
        ProviderPath, PublicResource, ResourceChange, ResourceCreate, TooManyRequests,
        Unauthorized, Unprocessable,
    };
    pub use crate::http::api::pagination::Page as PageQuery;
    pub use crate::http::api::{ItemsOnly, Page as ListPage};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let text = DOCUMENT.as_str();
        let mut missing = Vec::new();
        for part in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = part.split('"').next().unwrap();
            let mut node = &doc["components"];
            for key in target.split('/') {
                node = &node[key];
            }
            if node.is_null() {
                missing.push(target.to_string());
            }
        }
        assert!(missing.is_empty(), "dangling references: {missing:?}");
    }
}

/// The resource routes are one handler for every kind (`/orgs/{org}/{type}/…`); the
/// document describes each kind's paths with that kind's fields. A `{type}` operation is
/// written once against the placeholders `Resource`, `ResourceCreate` and `ResourceChange`
/// and "{kinds}" in its summary; this expands it per kind, with schemas composed from the
/// kind's own types (its stored struct, its patch, and the view's extras for it).
struct PerKind;

/// The kinds a `{type}` path serves: the kind-specific sub-resources belong to one kind.
fn kinds_of(path: &str) -> Vec<ResourceKind> {
    let only = if path.ends_with("/content") {
        Some(ResourceKind::Document)
    } else if path.ends_with("/messages") {
        Some(ResourceKind::Conversation)
    } else if path.contains("/documents/{doc_id}") {
        Some(ResourceKind::KnowledgeBase)
    } else {
        None
    };
    only.map_or_else(|| ResourceKind::ALL.to_vec(), |k| vec![k])
}

/// The schema name of a kind (`Agent`, `KnowledgeBase`).
fn kind_name(k: ResourceKind) -> &'static str {
    match k {
        ResourceKind::Agent => "Agent",
        ResourceKind::Workflow => "Workflow",
        ResourceKind::Document => "Document",
        ResourceKind::Tool => "Tool",
        ResourceKind::KnowledgeBase => "KnowledgeBase",
        ResourceKind::Conversation => "Conversation",
    }
}

/// The kind's name in a sentence ("knowledge bases").
fn kind_words(k: ResourceKind) -> String {
    k.path().replace('-', " ")
}

/// The object a derived schema is (a struct's properties and required fields, those of
/// flattened parts included). The schemas it refers to are registered as it is read, as
/// utoipa does for a path's bodies.
fn object_of<T: ToSchema>() -> Object {
    let mut used = Vec::new();
    T::schemas(&mut used);
    NEEDED.with(|n| n.borrow_mut().extend(used));
    flat(T::schema())
}

fn flat(schema: RefOr<Schema>) -> Object {
    match schema {
        RefOr::T(Schema::Object(o)) => o,
        RefOr::T(Schema::AllOf(all)) => {
            let mut o = Object::new();
            for part in all.items {
                take(&mut o, flat(part), &[]);
            }
            o
        }
        _ => Object::new(),
    }
}

thread_local! {
    /// The schemas the composed ones refer to, collected while `PerKind` composes them.
    static NEEDED: std::cell::RefCell<Vec<(String, RefOr<Schema>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn take(into: &mut Object, from: Object, only: &[&str]) {
    for (name, schema) in from.properties {
        if only.is_empty() || only.contains(&name.as_str()) {
            if from.required.contains(&name) && !into.required.contains(&name) {
                into.required.push(name.clone());
            }
            into.properties.insert(name, schema);
        }
    }
}

/// The kind's stored fields and its patch.
fn fields_of(k: ResourceKind) -> (Object, Object) {
    use crate::domain::resources as r;
    match k {
        ResourceKind::Agent => (object_of::<r::Agent>(), object_of::<r::AgentPatch>()),
        ResourceKind::Workflow => (object_of::<r::Workflow>(), object_of::<r::WorkflowPatch>()),
        ResourceKind::Document => (object_of::<r::Document>(), object_of::<r::DocumentPatch>()),
        ResourceKind::Tool => (object_of::<r::Tool>(), object_of::<r::ToolPatch>()),
        ResourceKind::KnowledgeBase => (
            object_of::<r::KnowledgeBase>(),
            object_of::<r::KnowledgeBasePatch>(),
        ),
        ResourceKind::Conversation => (
            object_of::<r::Conversation>(),
            object_of::<r::ConversationPatch>(),
        ),
    }
}

/// A resource of one kind as the API answers it.
fn resource_schema(k: ResourceKind) -> Schema {
    use crate::http::api::views::resources::{ResourceOut, ViewOut};
    let mut o = object_of::<ResourceOut>();
    o.properties
        .insert("type".into(), words([k.share_type()]).into());
    o.required.push("type".into());
    let extras: &[&str] = match k {
        ResourceKind::Agent => &["can_write", "personality_traits", "skills"],
        ResourceKind::KnowledgeBase => &["can_write", "documents"],
        _ => &["can_write"],
    };
    take(&mut o, object_of::<ViewOut>(), extras);
    take(&mut o, fields_of(k).0, &[]);
    o.into()
}

/// A create (`creating`) or change body of one kind: the common fields and the kind's
/// own, nothing else.
fn input_schema(k: ResourceKind, creating: bool) -> Schema {
    use crate::http::api::resources::{ChangeCommon, CreateCommon};
    let mut o = if creating {
        object_of::<CreateCommon>()
    } else {
        object_of::<ChangeCommon>()
    };
    take(&mut o, fields_of(k).1, &[]);
    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    o.into()
}

impl Modify for PerKind {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for k in ResourceKind::ALL {
            let name = kind_name(k);
            components
                .schemas
                .insert(name.into(), resource_schema(k).into());
            components
                .schemas
                .insert(format!("{name}Create"), input_schema(k, true).into());
            components
                .schemas
                .insert(format!("{name}Change"), input_schema(k, false).into());
        }
        let any = ResourceKind::ALL
            .into_iter()
            .fold(OneOfBuilder::new(), |b, k| b.item(schema_ref(kind_name(k))));
        components
            .schemas
            .insert("Resource".into(), RefOr::T(Schema::OneOf(any.build())));
        components
            .schemas
            .insert("PublicResource".into(), public_schema().into());
        if let Some(page) = components.schemas.get_mut("Page_PublicResource") {
            point_items_at(page, "PublicResource");
        }
        // The placeholders' own entries give way to the composed ones above.
        let page = components.schemas.remove("Page_Resource");
        for k in ResourceKind::ALL {
            let name = kind_name(k);
            let Some(Ok(text)) = page.as_ref().map(serde_json::to_string) else {
                continue;
            };
            if let Ok(mut schema) = serde_json::from_str(&text) {
                point_items_at(&mut schema, name);
                components.schemas.insert(format!("Page_{name}"), schema);
            }
        }
        for placeholder in ["ResourceCreate", "ResourceChange"] {
            components.schemas.remove(placeholder);
        }
        for (name, schema) in NEEDED.with(std::cell::RefCell::take) {
            components.schemas.entry(name).or_insert(schema);
        }
        let paths = std::mem::take(&mut doc.paths.paths);
        for (path, item) in paths {
            if !path.starts_with("/api/v1/orgs/{org}/{type}") {
                doc.paths.paths.insert(path, item);
                continue;
            }
            let Ok(text) = serde_json::to_string(&item) else {
                continue;
            };
            for k in kinds_of(&path) {
                let name = kind_name(k);
                let text = text
                    .replace(
                        "#/components/schemas/Resource\"",
                        &format!("#/components/schemas/{name}\""),
                    )
                    .replace(
                        "#/components/schemas/Page_Resource\"",
                        &format!("#/components/schemas/Page_{name}\""),
                    )
                    .replace(
                        "#/components/schemas/ResourceCreate\"",
                        &format!("#/components/schemas/{name}Create\""),
                    )
                    .replace(
                        "#/components/schemas/ResourceChange\"",
                        &format!("#/components/schemas/{name}Change\""),
                    )
                    .replace("{kinds}", &kind_words(k));
                let Ok(mut item) = serde_json::from_str::<PathItem>(&text) else {
                    continue;
                };
                if k == ResourceKind::Document {
                    document_upload(&mut item);
                }
                doc.paths
                    .paths
                    .insert(path.replace("{type}", k.path()), item);
            }
        }
    }
}

/// A generic page inlines its item type; a placeholder's page is pointed at the schema
/// that replaces the placeholder.
fn point_items_at(page: &mut RefOr<Schema>, name: &str) {
    if let RefOr::T(Schema::Object(o)) = page {
        o.properties.insert(
            "items".into(),
            ArrayBuilder::new().items(schema_ref(name)).build().into(),
        );
    }
}

/// A document is created by an upload, not a JSON body.
fn document_upload(item: &mut PathItem) {
    let Some(op) = item.post.as_mut() else {
        return;
    };
    if op.request_body.is_none() {
        return;
    }
    op.summary =
        Some("Upload a document (multipart/form-data); its type is decided by its bytes".into());
    op.description = Some(
        "422 plan_limit when the plan's document size or storage is reached; 422 \
         unsupported_content_type for other files."
            .into(),
    );
    op.request_body = Some(RefOr::T(
        utoipa::openapi::request_body::RequestBodyBuilder::new()
            .required(Some(utoipa::openapi::Required::True))
            .content(
                "multipart/form-data",
                ContentBuilder::new()
                    .schema(Some({
                        let mut form = flat(crate::http::api::resources::DocumentUpload::schema());
                        form.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                        RefOr::T(Schema::Object(form))
                    }))
                    .build(),
            )
            .build(),
    ));
}

/// What the gallery shows of a public item: the common part and the `PUBLIC` fields of
/// its kind, nothing else.
fn public_schema() -> Schema {
    use crate::domain::resources::{self as r, ResourceFields};
    let mut o = object_of::<crate::services::resources::PublicItem>();
    for (k, public) in [
        (ResourceKind::Agent, r::Agent::PUBLIC),
        (ResourceKind::Workflow, r::Workflow::PUBLIC),
        (ResourceKind::Document, r::Document::PUBLIC),
        (ResourceKind::Tool, r::Tool::PUBLIC),
        (ResourceKind::KnowledgeBase, r::KnowledgeBase::PUBLIC),
        (ResourceKind::Conversation, r::Conversation::PUBLIC),
    ] {
        if public.is_empty() {
            continue;
        }
        let mut stored = fields_of(k).0;
        stored.required.clear();
        take(&mut o, stored, public);
    }
    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    o.description = Some(
        "What the gallery shows of a public item: never owners, shares, ids of other items \
         or configuration"
            .into(),
    );
    o.into()
}

/// Where a gallery item stands in the gallery's operation.
pub struct PublicResource;
placeholder!(PublicResource as "PublicResource");
