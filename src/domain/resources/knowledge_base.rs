//! Knowledge bases: an embedding model and configuration; their documents are links kept
//! in a table of their own.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Cell, ColumnReader, ResourceFields, ResourceKind, Sent, check_object, check_opt_text,
    json_cell, opt_text_cell,
};
use crate::domain::Invalid;

/// Fields in alphabetical order: the order of the JSON the API has always sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = KnowledgeBaseFields)]
pub struct KnowledgeBase {
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    pub embedding_model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KnowledgeBaseInput)]
pub struct KnowledgeBasePatch {
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub embedding_model: Sent<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Sent<Map<String, Value>>,
}

impl ResourceFields for KnowledgeBase {
    const KIND: ResourceKind = ResourceKind::KnowledgeBase;
    const TABLE: &'static str = "knowledge_bases";
    const COLUMNS: &'static [&'static str] = &["embedding_model", "config"];
    const PUBLIC: &'static [&'static str] = &["embedding_model"];
    type Patch = KnowledgeBasePatch;

    fn validate(p: &KnowledgeBasePatch, errors: &mut Vec<Invalid>) {
        check_opt_text("embedding_model", &p.embedding_model, 200, errors);
        check_object("config", &p.config, errors);
    }

    fn to_row(p: &KnowledgeBasePatch) -> Vec<(&'static str, Cell)> {
        let mut row = Vec::new();
        if let Sent::Given(m) = &p.embedding_model {
            row.push(("embedding_model", opt_text_cell(m.as_deref())));
        }
        if let Sent::Given(c) = &p.config {
            row.push(("config", json_cell(c)));
        }
        row
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(KnowledgeBase {
            embedding_model: r.opt_text()?,
            config: r.json()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problem, problems};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_knowledge_base_goes_to_its_row_and_back_and_checks_its_model() {
        let p = KnowledgeBasePatch {
            embedding_model: Sent::Given(Some("e".repeat(201))),
            config: Sent::Given(Map::new()),
        };
        let mut errors = Vec::new();
        KnowledgeBase::validate(&p, &mut errors);
        assert_eq!(
            errors,
            [Invalid::new(
                "embedding_model",
                "Use at most 200 characters."
            )]
        );
        let p = KnowledgeBasePatch {
            embedding_model: Sent::Given(Some(" small ".into())),
            ..p
        };
        let back = KnowledgeBase::from_row(&mut Cells::of(KnowledgeBase::to_row(&p))).unwrap();
        assert_eq!(
            back,
            KnowledgeBase {
                config: Map::new(),
                embedding_model: Some("small".into())
            }
        );
    }

    #[test]
    fn a_knowledge_base_patch_refuses_fields_it_does_not_have() {
        assert!(serde_json::from_value::<KnowledgeBasePatch>(json!({"documents": []})).is_err());
        assert_eq!(
            problem(ResourceKind::KnowledgeBase, json!({"documents": []})),
            "\"documents\" is not a field of knowledge-bases."
        );
    }

    #[test]
    fn every_field_of_a_knowledge_base_is_checked_at_once() {
        assert_eq!(
            problems(
                ResourceKind::KnowledgeBase,
                json!({"embedding_model": ["e"], "config": null})
            ),
            [
                ("config", "Send this as an object.".to_string()),
                ("embedding_model", "Send this as text.".into()),
            ]
        );
        assert!(
            problems(
                ResourceKind::KnowledgeBase,
                json!({"embedding_model": null, "config": {}})
            )
            .is_empty()
        );
    }
}
