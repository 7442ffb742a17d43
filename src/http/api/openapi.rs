//! The OpenAPI description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types (utoipa), so a route, a field or a
//! status cannot change without the document changing with it.
//!
//! What JSON Schema says beyond a Rust type (lengths, patterns, the words of a closed list)
//! is written next to the field it describes; the schemas of values used in many places
//! (names, ids, the error envelope) are the functions below.
use std::sync::LazyLock;

use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::{audit, auth, llm, me, members, orgs, usage};
use crate::domain::audit::ORG_AUDIT_ACTIONS;

use crate::domain::{
    ApiTokenId, InvitationId, MemberStatus, OrgId, OrgStatus, Permission, ResourceId, Role,
    SessionId, TeamId, UserId, UserStatus, Visibility, Word,
};

/// The document, serialized once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    fill_from(&mut doc, &written());
    serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_string())
});

/// The operations not annotated yet (the resources), with the
/// schemas only they use, as a written document that the generated one is merged over.
fn written() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../assets/openapi.json")).unwrap_or_default()
}

/// Operations and schemas not generated yet, from the written document.
fn fill_from(doc: &mut serde_json::Value, legacy: &serde_json::Value) {
    for (section, inner) in [("paths", None), ("components", Some("schemas"))] {
        let (Some(from), Some(to)) = (legacy.get(section), doc.get_mut(section)) else {
            continue;
        };
        let (from, to) = match inner {
            Some(k) => match (from.get(k), to.get_mut(k)) {
                (Some(f), Some(t)) => (f, t),
                _ => continue,
            },
            None => (from, to),
        };
        let (Some(from), Some(to)) = (from.as_object(), to.as_object_mut()) else {
            continue;
        };
        for (key, value) in from {
            match (to.get_mut(key), inner) {
                (None, _) => {
                    to.insert(key.clone(), value.clone());
                }
                (Some(item), None) => {
                    if let (Some(item), Some(ops)) = (item.as_object_mut(), value.as_object()) {
                        for (method, op) in ops {
                            item.entry(method.clone()).or_insert_with(|| op.clone());
                        }
                    }
                }
                (Some(_), Some(_)) => {}
            }
        }
    }
}

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
    modifiers(&SecuritySchemes),
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
    ResourceId
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
        BadRequest, Conflict, ExportFormatQuery, Forbidden, IfMatch, InternalError, InvoicePath,
        KindPath, MethodNotAllowed, NotFound, OrgPath, PayloadTooLarge, ProviderPath,
        TooManyRequests, Unauthorized, Unprocessable,
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
    #[param(rename = "If-Match", pattern = "^(W/)?\"?[0-9]{1,18}\"?$")]
    if_match: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operation or schema is described once: by the code when it is annotated, or
    /// else by the written document, never by both (the written copy would go stale).
    #[test]
    fn the_written_document_holds_nothing_the_code_describes() {
        let generated = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let written = written();
        let mut twice = Vec::new();
        for (path, item) in written["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if generated["paths"][path].get(method).is_some() {
                    twice.push(format!("{method} {path}"));
                }
            }
        }
        for name in written["components"]["schemas"].as_object().unwrap().keys() {
            if generated["components"]["schemas"].get(name).is_some() {
                twice.push(format!("schema {name}"));
            }
        }
        assert!(twice.is_empty(), "described twice: {twice:?}");
    }

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
