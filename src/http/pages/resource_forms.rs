//! The resource forms of the pages, both ways: typed text (tools as a list, traits as
//! `name=value` lines, steps as JSON) into the service's `Input`, and a stored resource
//! back into the text of its edit form and the facts of its page.
use serde_json::{Map, Value, json};

use crate::db::repo::resources::ResourceKind;
use crate::domain::Invalid;
use crate::domain::{Visibility, format};
use crate::http::views::{Fact, NamedValue, ResourceFormValues};
use crate::services::resources::{Input, View};

/// Every field name a resource form may show an error next to.
pub(super) const FORM_FIELDS: &[&str] = &[
    "name",
    "description",
    "visibility",
    "model",
    "system_prompt",
    "tools",
    "personality_traits",
    "skills",
    "steps",
    "input_schema",
    "embedding_model",
    "agent_id",
    "file",
];

pub(super) fn parse_visibility(s: &str) -> Option<Visibility> {
    match s.trim() {
        "private" => Some(Visibility::Private),
        "team" => Some(Visibility::Team),
        "organization" => Some(Visibility::Organization),
        "public" => Some(Visibility::Public),
        _ => None,
    }
}

/// `a, b` or one per line: the non-empty names.
fn list_of(text: &str) -> Vec<Value> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()))
        .collect()
}

/// `name=value` lines (a line without `=` is a name with an empty value) as objects with
/// the keys the service expects.
fn pairs_of(text: &str, name_key: &str, value_key: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap_or((l, ""));
            json!({ name_key: n.trim(), value_key: v.trim() })
        })
        .collect()
}

fn json_field(
    text: &str,
    field: &'static str,
    errors: &mut Vec<Invalid>,
    empty: Option<Value>,
) -> Option<Value> {
    if text.trim().is_empty() {
        return empty;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(Invalid::new(
                field,
                format!("This is not valid JSON ({e})."),
            ));
            None
        }
    }
}

/// The form as the service's input. `creating` decides what an empty field means: on
/// create it is left out (the default applies), on edit it clears where that makes sense.
/// Visibility is set on create only (the share dialog changes it afterwards). What cannot
/// be read (JSON that does not parse) goes to the service as `unreadable`, which reports it
/// with everything else that is wrong.
pub(super) fn input_from_form(kind: ResourceKind, f: &ResourceFormValues, creating: bool) -> Input {
    let mut errors: Vec<Invalid> = Vec::new();
    let visibility = if creating && !f.visibility.trim().is_empty() {
        let v = parse_visibility(&f.visibility);
        if v.is_none() {
            errors.push(Invalid::new(
                "visibility",
                "Choose private, team, organization or public.",
            ));
        }
        v
    } else {
        None
    };
    let version = if creating {
        None
    } else {
        f.version.trim().parse::<i64>().ok()
    };
    let mut fields = Map::new();
    let mut put = |k: &str, v: Value| {
        fields.insert(k.to_string(), v);
    };
    match kind {
        ResourceKind::Agent => {
            put("model", Value::String(f.model.clone()));
            put("system_prompt", Value::String(f.system_prompt.clone()));
            put("tools", Value::Array(list_of(&f.tools)));
            put(
                "personality_traits",
                Value::Array(pairs_of(&f.personality_traits, "trait", "value")),
            );
            put(
                "skills",
                Value::Array(pairs_of(&f.skills, "skill", "level")),
            );
        }
        ResourceKind::Workflow => {
            if let Some(v) = json_field(&f.steps, "steps", &mut errors, Some(json!([]))) {
                put("steps", v);
            }
        }
        ResourceKind::Tool => {
            // Empty keeps what is stored (a new tool starts without a schema).
            if let Some(v) = json_field(&f.input_schema, "input_schema", &mut errors, None) {
                put("input_schema", v);
            }
        }
        ResourceKind::KnowledgeBase => {
            put("embedding_model", Value::String(f.embedding_model.clone()));
        }
        ResourceKind::Conversation => {
            let agent = f.agent_id.trim();
            if !agent.is_empty() {
                put("agent_id", Value::String(agent.to_string()));
            } else if !creating {
                put("agent_id", Value::Null);
            }
        }
        ResourceKind::Document => {}
    }
    Input {
        name: Some(f.name.clone()),
        description: Some(f.description.clone()),
        visibility,
        shared_with: None,
        fields,
        version,
        unreadable: errors,
    }
}

fn text_of(fields: &Map<String, Value>, key: &str) -> String {
    fields
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn is_empty_json(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// The edit form of a stored resource.
pub(super) fn form_of(view: &View) -> ResourceFormValues {
    let r = &view.resource;
    let f = &r.fields;
    let tools = f
        .get("tools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let lines = |items: Vec<(String, String)>| {
        items
            .into_iter()
            .map(|(n, v)| if v.is_empty() { n } else { format!("{n}={v}") })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let traits = view
        .personality_traits
        .as_ref()
        .map(|t| {
            lines(
                t.iter()
                    .map(|t| (t.name.clone(), t.value.clone()))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let skills = view
        .skills
        .as_ref()
        .map(|s| {
            lines(
                s.iter()
                    .map(|s| (s.name.clone(), s.level.clone()))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let json_text = |key: &str| {
        f.get(key)
            .filter(|v| !is_empty_json(Some(v)))
            .map(pretty)
            .unwrap_or_default()
    };
    ResourceFormValues {
        name: r.name.clone(),
        description: r.description.clone(),
        visibility: r.visibility.as_str().to_string(),
        model: text_of(f, "model"),
        system_prompt: text_of(f, "system_prompt"),
        tools,
        personality_traits: traits,
        skills,
        steps: json_text("steps"),
        input_schema: json_text("input_schema"),
        embedding_model: text_of(f, "embedding_model"),
        agent_id: text_of(f, "agent_id"),
        version: r.version.to_string(),
    }
}

/// The type's own fields as shown on its page; `agent_name` names a conversation's agent.
pub(super) fn facts_of(view: &View, agent_name: Option<String>) -> Vec<Fact> {
    let f = &view.resource.fields;
    let fact = |label: &str, value: String, block: bool| Fact {
        label: label.to_string(),
        value,
        block,
    };
    let none = || "none".to_string();
    let json_block = |key: &str, label: &str| {
        let v = f.get(key);
        if is_empty_json(v) {
            fact(label, none(), false)
        } else {
            fact(label, v.map(pretty).unwrap_or_default(), true)
        }
    };
    match view.resource.kind {
        ResourceKind::Agent => {
            let tools = f
                .get("tools")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(none);
            let model = Some(text_of(f, "model"))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the organization's default".into());
            let prompt = text_of(f, "system_prompt");
            vec![
                fact("Model", model, false),
                if prompt.is_empty() {
                    fact("System prompt", none(), false)
                } else {
                    fact("System prompt", prompt, true)
                },
                fact("Tools", tools, false),
            ]
        }
        ResourceKind::Workflow => {
            let n = f.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
            vec![
                fact(
                    "Steps",
                    format!("{n} step{}", if n == 1 { "" } else { "s" }),
                    false,
                ),
                json_block("steps", "Definition"),
            ]
        }
        ResourceKind::Document => {
            let size = f.get("size_bytes").and_then(Value::as_i64).unwrap_or(0);
            vec![
                fact("File", text_of(f, "filename"), false),
                fact("Type", text_of(f, "content_type"), false),
                fact("Size", format::bytes(size), false),
                fact("SHA-256", text_of(f, "sha256"), false),
            ]
        }
        ResourceKind::Tool => vec![json_block("input_schema", "Input schema")],
        ResourceKind::KnowledgeBase => {
            let m = text_of(f, "embedding_model");
            vec![fact(
                "Embedding model",
                if m.is_empty() { none() } else { m },
                false,
            )]
        }
        ResourceKind::Conversation => {
            let id = text_of(f, "agent_id");
            let agent = if id.is_empty() {
                none()
            } else {
                agent_name.unwrap_or(id)
            };
            vec![fact("Agent", agent, false)]
        }
    }
}

pub(super) fn traits_of(view: &View) -> (Vec<NamedValue>, Vec<NamedValue>) {
    let traits = view
        .personality_traits
        .iter()
        .flatten()
        .map(|t| NamedValue {
            name: t.name.clone(),
            value: t.value.clone(),
        })
        .collect();
    let skills = view
        .skills
        .iter()
        .flatten()
        .map(|s| NamedValue {
            name: s.name.clone(),
            value: s.level.clone(),
        })
        .collect();
    (traits, skills)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ResourceFormValues {
        ResourceFormValues {
            name: "Helper".into(),
            description: "helps".into(),
            visibility: "organization".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_agent_form_becomes_lists_and_pairs() {
        let mut f = form();
        f.model = "gpt-4o".into();
        f.tools = "search, calc,\n  web ,".into();
        f.personality_traits = "curious=high\n\n  patient = very \nterse".into();
        f.skills = "sql=expert".into();
        let input = input_from_form(ResourceKind::Agent, &f, true);
        assert_eq!(input.visibility, Some(Visibility::Organization));
        assert_eq!(input.fields["tools"], json!(["search", "calc", "web"]));
        assert_eq!(
            input.fields["personality_traits"],
            json!([
                {"trait": "curious", "value": "high"},
                {"trait": "patient", "value": "very"},
                {"trait": "terse", "value": ""}
            ])
        );
        assert_eq!(
            input.fields["skills"],
            json!([{"skill": "sql", "level": "expert"}])
        );
        assert_eq!(input.version, None);
    }

    #[test]
    fn bad_json_and_bad_visibility_are_field_errors() {
        let mut f = form();
        f.visibility = "everyone".into();
        f.steps = "[{".into();
        let input = input_from_form(ResourceKind::Workflow, &f, true);
        let fields: Vec<&str> = input.unreadable.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["visibility", "steps"]);
        assert!(
            input.unreadable[1]
                .reason
                .starts_with("This is not valid JSON")
        );
        assert!(
            !input.fields.contains_key("steps"),
            "what is unreadable is left out"
        );
        assert_eq!(
            input.name.as_deref(),
            Some("Helper"),
            "the rest is checked as usual"
        );
    }

    #[test]
    fn an_edit_carries_the_version_and_not_the_visibility() {
        let mut f = form();
        f.version = "7".into();
        let input = input_from_form(ResourceKind::Conversation, &f, false);
        assert_eq!(input.version, Some(7));
        assert_eq!(input.visibility, None);
        assert_eq!(
            input.fields["agent_id"],
            Value::Null,
            "empty clears on edit"
        );
        let input = input_from_form(ResourceKind::Conversation, &f, true);
        assert!(!input.fields.contains_key("agent_id"));
        let input = input_from_form(ResourceKind::Tool, &f, false);
        assert!(!input.fields.contains_key("input_schema"), "empty keeps");
        let input = input_from_form(ResourceKind::Workflow, &f, false);
        assert_eq!(input.fields["steps"], json!([]));
    }
}
