//! Tools: the JSON Schema of their input, and configuration.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Cell, ColumnReader, ResourceFields, ResourceKind, Sent, check_object, json_cell};
use crate::domain::Invalid;

/// Fields in alphabetical order: the order of the JSON the API has always sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ToolFields)]
pub struct Tool {
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(value_type = Object)]
    pub input_schema: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ToolInput)]
pub struct ToolPatch {
    /// a JSON Schema with "type": "object" (or {} while undescribed)
    #[serde(default)]
    #[schema(schema_with = crate::domain::schemas::input_schema)]
    pub input_schema: Sent<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Sent<Map<String, Value>>,
}

impl ResourceFields for Tool {
    const KIND: ResourceKind = ResourceKind::Tool;
    const TABLE: &'static str = "tools";
    const COLUMNS: &'static [&'static str] = &["input_schema", "config"];
    const PUBLIC: &'static [&'static str] = &["input_schema"];
    type Patch = ToolPatch;

    fn validate(p: &ToolPatch, errors: &mut Vec<Invalid>) {
        let checked = match &p.input_schema {
            Sent::Absent => Ok(()),
            Sent::Given(schema) => check_schema(schema),
            Sent::Unreadable => Err("Send the schema as a JSON Schema object.".to_string()),
        };
        if let Err(why) = checked {
            errors.push(Invalid::new("input_schema", why));
        }
        check_object("config", &p.config, errors);
    }

    fn to_row(p: &ToolPatch) -> Vec<(&'static str, Cell)> {
        let mut row = Vec::new();
        if let Sent::Given(s) = &p.input_schema {
            row.push(("input_schema", json_cell(s)));
        }
        if let Sent::Given(c) = &p.config {
            row.push(("config", json_cell(c)));
        }
        row
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(Tool {
            input_schema: r.json()?,
            config: r.json()?,
        })
    }
}

/// A valid JSON Schema describing an object (tool inputs are named arguments); `{}` is
/// what a tool has before anyone describes its inputs.
fn check_schema(schema: &Map<String, Value>) -> Result<(), String> {
    if schema.is_empty() {
        return Ok(());
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(
            "Describe an object: the schema needs \"type\": \"object\" (tool inputs are named arguments)."
                .into(),
        );
    }
    jsonschema::meta::validate(&Value::Object(schema.clone()))
        .map_err(|e| format!("This is not a valid JSON Schema: {e}."))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problem, problems};
    use super::*;
    use serde_json::json;

    fn reasons(v: Value) -> Vec<String> {
        let p: ToolPatch = serde_json::from_value(v).unwrap();
        let mut errors = Vec::new();
        Tool::validate(&p, &mut errors);
        errors.into_iter().map(|e| e.reason).collect()
    }

    #[test]
    fn a_tools_schema_describes_an_object() {
        assert!(reasons(json!({"input_schema": {}})).is_empty());
        assert!(reasons(json!({"input_schema": {"type": "object", "properties": {}}})).is_empty());
        assert_eq!(
            reasons(json!({"input_schema": null, "config": 1})),
            [
                "Send the schema as a JSON Schema object.",
                "Send this as an object."
            ]
        );
        assert!(
            reasons(json!({"input_schema": {"type": "string"}}))[0]
                .starts_with("Describe an object")
        );
        assert!(
            reasons(json!({"input_schema": {"type": "object", "properties": 3}}))[0]
                .starts_with("This is not a valid JSON Schema")
        );
    }

    #[test]
    fn a_tool_goes_to_its_row_and_back() {
        let schema = Map::from_iter([("type".to_string(), json!("object"))]);
        let p = ToolPatch {
            input_schema: Sent::Given(schema.clone()),
            config: Sent::Given(Map::new()),
        };
        let row = Tool::to_row(&p);
        assert_eq!(row[1], ("config", Cell::Text("{}".into())));
        let back = Tool::from_row(&mut Cells::of(row)).unwrap();
        assert_eq!(
            back,
            Tool {
                config: Map::new(),
                input_schema: schema
            }
        );
    }

    #[test]
    fn a_tool_patch_refuses_fields_it_does_not_have() {
        assert!(serde_json::from_value::<ToolPatch>(json!({"steps": []})).is_err());
        assert_eq!(
            problem(ResourceKind::Tool, json!({"model": "m"})),
            "\"model\" is not a field of tools."
        );
    }

    #[test]
    fn every_field_of_a_tool_is_checked_at_once() {
        assert_eq!(
            problems(
                ResourceKind::Tool,
                json!({"input_schema": [], "config": "x", "tools": []})
            ),
            [
                ("config", "Send this as an object.".to_string()),
                (
                    "input_schema",
                    "Send the schema as a JSON Schema object.".into()
                ),
                ("body", "\"tools\" is not a field of tools.".into()),
            ]
        );
        assert_eq!(
            problem(
                ResourceKind::Tool,
                json!({"config": {"big": "x".repeat(256 * 1024)}})
            ),
            "Keep this under 256 KiB."
        );
    }
}
