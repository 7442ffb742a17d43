//! The `{type}` resource routes, written out once per kind.
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, Object, OneOfBuilder, Schema};
use utoipa::openapi::{PathItem, RefOr, content::ContentBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

use super::schemas::{schema_ref, words};
use crate::domain::resources::ResourceKind;

/// The resource routes are one handler for every kind (`/orgs/{org}/{type}/…`); the
/// document describes each kind's paths with that kind's fields. A `{type}` operation is
/// written once against the placeholders `Resource`, `ResourceCreate` and `ResourceChange`
/// and "{kinds}" in its summary; this expands it per kind, with schemas composed from the
/// kind's own types (its stored struct, its patch, and the view's extras for it).
pub(super) struct PerKind;

/// The kinds a `{type}` path serves: the kind-specific sub-resources belong to one kind.
fn kinds_of(path: &str) -> Vec<ResourceKind> {
    let only = if path.ends_with("/content") {
        Some(ResourceKind::Document)
    } else if path.ends_with("/messages") {
        Some(ResourceKind::Conversation)
    } else if path.contains("/documents") || path.ends_with("/search") {
        Some(ResourceKind::KnowledgeBase)
    } else if path.contains("/memory") {
        Some(ResourceKind::Agent)
    } else if path.contains("/runs") {
        Some(ResourceKind::Workflow)
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

/// The named schemas the composed ones refer to, registered with them (as utoipa does for
/// a path's bodies).
type Used = Vec<(String, RefOr<Schema>)>;

/// The object a derived schema is (a struct's properties and required fields, those of
/// flattened parts included); the schemas it refers to go to `used`.
fn object_of<T: ToSchema>(used: &mut Used) -> Object {
    T::schemas(used);
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

/// The kind's stored fields, as its answers carry them.
fn stored(k: ResourceKind, used: &mut Used) -> Object {
    use crate::domain::resources as r;
    match k {
        ResourceKind::Agent => object_of::<r::Agent>(used),
        ResourceKind::Workflow => object_of::<r::Workflow>(used),
        ResourceKind::Document => object_of::<r::Document>(used),
        ResourceKind::Tool => object_of::<r::Tool>(used),
        ResourceKind::KnowledgeBase => object_of::<r::KnowledgeBase>(used),
        ResourceKind::Conversation => object_of::<r::Conversation>(used),
    }
}

/// The kind's patch: what a create or change body may send of the kind's own.
fn patch(k: ResourceKind, used: &mut Used) -> Object {
    use crate::domain::resources as r;
    match k {
        ResourceKind::Agent => object_of::<r::AgentPatch>(used),
        ResourceKind::Workflow => object_of::<r::WorkflowPatch>(used),
        ResourceKind::Document => object_of::<r::DocumentPatch>(used),
        ResourceKind::Tool => object_of::<r::ToolPatch>(used),
        ResourceKind::KnowledgeBase => object_of::<r::KnowledgeBasePatch>(used),
        ResourceKind::Conversation => object_of::<r::ConversationPatch>(used),
    }
}

/// A resource of one kind as the API answers it.
fn resource_schema(k: ResourceKind, used: &mut Used) -> Schema {
    use crate::http::api::views::resources::{ResourceOut, ViewOut};
    let mut o = object_of::<ResourceOut>(used);
    o.properties
        .insert("type".into(), words([k.share_type()]).into());
    o.required.push("type".into());
    let extras: &[&str] = match k {
        ResourceKind::Agent => &["can_write", "personality_traits", "skills"],
        ResourceKind::KnowledgeBase => &["can_write", "documents"],
        _ => &["can_write"],
    };
    take(&mut o, object_of::<ViewOut>(used), extras);
    take(&mut o, stored(k, used), &[]);
    o.description = Some(format!("One of the organization's {}.", kind_words(k)));
    o.into()
}

/// A create (`creating`) or change body of one kind: the common fields and the kind's
/// own, nothing else.
fn input_schema(k: ResourceKind, creating: bool, used: &mut Used) -> Schema {
    use crate::http::api::resources::{ChangeCommon, CreateCommon};
    let mut o = if creating {
        object_of::<CreateCommon>(used)
    } else {
        object_of::<ChangeCommon>(used)
    };
    take(&mut o, patch(k, used), &[]);
    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    let what = if creating {
        "A new one of the"
    } else {
        "A change to one of the"
    };
    o.description = Some(format!("{what} organization's {}.", kind_words(k)));
    o.into()
}

impl Modify for PerKind {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut used = Used::new();
        for k in ResourceKind::ALL {
            let name = kind_name(k);
            components
                .schemas
                .insert(name.into(), resource_schema(k, &mut used).into());
            // A document is created by an upload (`document_upload`), not a JSON body.
            if k != ResourceKind::Document {
                components.schemas.insert(
                    format!("{name}Create"),
                    input_schema(k, true, &mut used).into(),
                );
            }
            components.schemas.insert(
                format!("{name}Change"),
                input_schema(k, false, &mut used).into(),
            );
        }
        let any = ResourceKind::ALL
            .into_iter()
            .fold(OneOfBuilder::new(), |b, k| b.item(schema_ref(kind_name(k))));
        components
            .schemas
            .insert("Resource".into(), RefOr::T(Schema::OneOf(any.build())));
        components
            .schemas
            .insert("PublicResource".into(), public_schema(&mut used).into());
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
        for (name, schema) in used {
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
fn public_schema(used: &mut Used) -> Schema {
    use crate::domain::resources::{self as r, ResourceFields};
    let mut o = object_of::<crate::services::resources::PublicItem>(used);
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
        let mut fields = stored(k, used);
        fields.required.clear();
        take(&mut o, fields, public);
    }
    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    o.description = Some(
        "What the gallery shows of a public item: never owners, shares, ids of other items \
         or configuration"
            .into(),
    );
    o.into()
}
