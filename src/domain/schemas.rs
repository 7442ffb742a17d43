//! The API description's schemas of domain values whose rule is more than their type
//! (a percentage, a tool reference, an audit action), beside the rules they describe.
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use super::audit::ORG_AUDIT_ACTIONS;

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

/// What an audit entry records: one word of the organization's audit vocabulary.
pub struct AuditAction;

impl PartialSchema for AuditAction {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ORG_AUDIT_ACTIONS.iter().copied()))
            .build()
            .into()
    }
}
impl ToSchema for AuditAction {
    fn name() -> std::borrow::Cow<'static, str> {
        "AuditAction".into()
    }
}

/// What an entry of the instance chain records: one word of the instance vocabulary.
pub struct InstanceAuditAction;

impl PartialSchema for InstanceAuditAction {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(super::audit::INSTANCE_AUDIT_ACTIONS.iter().copied()))
            .build()
            .into()
    }
}
impl ToSchema for InstanceAuditAction {
    fn name() -> std::borrow::Cow<'static, str> {
        "InstanceAuditAction".into()
    }
}

/// Blank, as a form or client sends "none": only white space; `meaning` says what it
/// stands for.
pub fn blank(meaning: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            "^[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$",
        ))
        .description(Some(meaning))
}

/// The id of another object of the organization: a UUID.
pub struct IdRef;

impl PartialSchema for IdRef {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".into())))
            .build()
            .into()
    }
}
impl ToSchema for IdRef {}

/// A tool an agent may call: its name or id.
pub struct ToolRef;

impl PartialSchema for ToolRef {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(200))
            .build()
            .into()
    }
}
impl ToSchema for ToolRef {}

/// A tool's input schema: a JSON Schema of an object, or `{}` while undescribed.
pub fn input_schema() -> Schema {
    let empty = ObjectBuilder::new().max_properties(Some(0));
    let object = ObjectBuilder::new()
        .property("type", ObjectBuilder::new().enum_values(Some(["object"])))
        .required("type");
    let mut any = AnyOfBuilder::new().item(empty).item(object).build();
    any.schema_type = Type::Object.into();
    any.description =
        Some("a JSON Schema with \"type\": \"object\" (or {} while undescribed)".into());
    any.into()
}

/// A conversation's agent: an id, blank or null for none.
pub fn agent_ref() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom("uuid".into()))),
        )
        .item(blank("blank: none"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "an agent of this organization the caller can read; null or blank: none",
        ))
        .build()
        .into()
}
