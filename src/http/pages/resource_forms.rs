//! The resource forms of the pages, both ways: typed text (tools as a list, traits as
//! `name=value` lines, steps as JSON) into the kinds' patch structs of the service's
//! `Input`, and a stored resource back into the text of its edit form and the facts of its
//! page.
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::db::repo::resources::ResourceKind;
use crate::domain::Invalid;
use crate::domain::resources::{
    AgentPatch, ConversationPatch, Fields, KnowledgeBasePatch, MemoryMode, Patch, Sent, Skill,
    ToolPatch, Trait, WorkflowPatch,
};
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
    "knowledge_base_ids",
    "memory",
    "memory_extraction",
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
fn list_of(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `name=value` lines (a line without `=` is a name with an empty value).
fn pairs_of(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap_or((l, ""));
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// A JSON text field: blank is `empty`; text that does not parse is reported and left out.
fn json_field<T: DeserializeOwned>(
    text: &str,
    field: &'static str,
    errors: &mut Vec<Invalid>,
    empty: Sent<T>,
) -> Sent<T> {
    if text.trim().is_empty() {
        return empty;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Sent::from_value(&v),
        Err(e) => {
            errors.push(Invalid::new(
                field,
                format!("This is not valid JSON ({e})."),
            ));
            Sent::Absent
        }
    }
}

/// The form as the service's input, in the same patch structs the API reads. `creating`
/// decides what an empty field means: on create it is left out (the default applies), on
/// edit it clears where that makes sense. Visibility is set on create only (the share
/// dialog changes it afterwards). What cannot be read (JSON that does not parse) goes to
/// the service as `unreadable`, which reports it with everything else that is wrong.
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
    let fields = match kind {
        ResourceKind::Agent => Patch::Agent(AgentPatch {
            model: Sent::Given(Some(f.model.clone())),
            system_prompt: Sent::Given(f.system_prompt.clone()),
            tools: Sent::Given(list_of(&f.tools)),
            personality_traits: Sent::Given(
                pairs_of(&f.personality_traits)
                    .into_iter()
                    .map(|(name, value)| Trait { name, value })
                    .collect(),
            ),
            skills: Sent::Given(
                pairs_of(&f.skills)
                    .into_iter()
                    .map(|(name, level)| Skill { name, level })
                    .collect(),
            ),
            config: Sent::Absent,
            knowledge_base_ids: Sent::Given(list_of(&f.knowledge_base_ids)),
            memory: match f.memory.trim() {
                "" => Sent::Absent,
                m => MemoryMode::parse(m).map_or(Sent::Unreadable, Sent::Given),
            },
            memory_extraction: Sent::Given(f.memory_extraction == "on"),
        }),
        ResourceKind::Workflow => Patch::Workflow(WorkflowPatch {
            steps: json_field(&f.steps, "steps", &mut errors, Sent::Given(Vec::new())),
        }),
        // Empty keeps what is stored (a new tool starts without a schema).
        ResourceKind::Tool => Patch::Tool(ToolPatch {
            input_schema: json_field(&f.input_schema, "input_schema", &mut errors, Sent::Absent),
            config: Sent::Absent,
        }),
        ResourceKind::KnowledgeBase => Patch::KnowledgeBase(KnowledgeBasePatch {
            embedding_model: Sent::Given(Some(f.embedding_model.clone())),
            config: Sent::Absent,
        }),
        ResourceKind::Conversation => {
            let agent = f.agent_id.trim();
            Patch::Conversation(ConversationPatch {
                agent_id: if !agent.is_empty() {
                    Sent::Given(Some(agent.to_string()))
                } else if creating {
                    Sent::Absent
                } else {
                    Sent::Given(None)
                },
            })
        }
        ResourceKind::Document => Patch::empty(kind),
    };
    let mut input = Input::new(fields);
    input.name = Some(f.name.clone());
    input.description = Some(f.description.clone());
    input.visibility = visibility;
    input.version = version;
    input.unreadable = errors;
    input
}

fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn names(list: &[String]) -> String {
    list.join(", ")
}

/// The edit form of a stored resource.
pub(super) fn form_of(view: &View) -> ResourceFormValues {
    let r = &view.resource;
    let lines = |items: Vec<(&str, &str)>| {
        items
            .into_iter()
            .map(|(n, v)| {
                if v.is_empty() {
                    n.to_string()
                } else {
                    format!("{n}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut form = ResourceFormValues {
        name: r.name.clone(),
        description: r.description.clone(),
        visibility: r.visibility.as_str().to_string(),
        version: r.version.to_string(),
        ..Default::default()
    };
    match &r.fields {
        Fields::Agent(a) => {
            form.model = a.model.clone().unwrap_or_default();
            form.system_prompt.clone_from(&a.system_prompt);
            form.tools = names(&a.tools);
            form.knowledge_base_ids = names(&a.knowledge_base_ids);
            form.memory = a.memory.as_str().to_string();
            if a.memory_extraction {
                form.memory_extraction = "on".into();
            }
            form.personality_traits = view
                .personality_traits
                .as_ref()
                .map(|t| {
                    lines(
                        t.iter()
                            .map(|t| (t.name.as_str(), t.value.as_str()))
                            .collect(),
                    )
                })
                .unwrap_or_default();
            form.skills = view
                .skills
                .as_ref()
                .map(|s| {
                    lines(
                        s.iter()
                            .map(|s| (s.name.as_str(), s.level.as_str()))
                            .collect(),
                    )
                })
                .unwrap_or_default();
        }
        Fields::Workflow(w) if !w.steps.is_empty() => form.steps = pretty(&w.steps),
        Fields::Tool(t) if !t.input_schema.is_empty() => {
            form.input_schema = pretty(&t.input_schema);
        }
        Fields::KnowledgeBase(k) => {
            form.embedding_model = k.embedding_model.clone().unwrap_or_default();
        }
        Fields::Conversation(c) => form.agent_id = c.agent_id.clone().unwrap_or_default(),
        Fields::Workflow(_) | Fields::Tool(_) | Fields::Document(_) => {}
    }
    form
}

/// The type's own fields as shown on its page; `agent_name` names a conversation's agent.
pub(super) fn facts_of(view: &View, agent_name: Option<String>) -> Vec<Fact> {
    let fact = |label: &str, value: String, block: bool| Fact {
        label: label.to_string(),
        value,
        block,
    };
    let none = || "none".to_string();
    match &view.resource.fields {
        Fields::Agent(a) => {
            let tools = Some(names(&a.tools))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(none);
            let model = a
                .model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the organization's default".into());
            vec![
                fact("Model", model, false),
                if a.system_prompt.is_empty() {
                    fact("System prompt", none(), false)
                } else {
                    fact("System prompt", a.system_prompt.clone(), true)
                },
                fact("Tools", tools, false),
            ]
        }
        Fields::Workflow(w) => {
            let n = w.steps.len();
            vec![
                fact(
                    "Steps",
                    format!("{n} step{}", if n == 1 { "" } else { "s" }),
                    false,
                ),
                if n == 0 {
                    fact("Definition", none(), false)
                } else {
                    fact("Definition", pretty(&w.steps), true)
                },
            ]
        }
        Fields::Document(d) => vec![
            fact("File", d.filename.clone(), false),
            fact("Type", d.content_type.clone(), false),
            fact("Size", format::bytes(d.size_bytes), false),
            fact("SHA-256", d.sha256.clone(), false),
        ],
        Fields::Tool(t) => vec![if t.input_schema.is_empty() {
            fact("Input schema", none(), false)
        } else {
            fact("Input schema", pretty(&t.input_schema), true)
        }],
        Fields::KnowledgeBase(k) => vec![fact(
            "Embedding model",
            k.embedding_model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(none),
            false,
        )],
        Fields::Conversation(c) => {
            let agent = match c.agent_id.clone().filter(|id| !id.is_empty()) {
                None => none(),
                Some(id) => agent_name.unwrap_or(id),
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
        let Patch::Agent(a) = &input.fields else {
            panic!("an agent patch");
        };
        assert_eq!(
            a.tools,
            Sent::Given(vec!["search".into(), "calc".into(), "web".into()])
        );
        let t = |name: &str, value: &str| Trait {
            name: name.into(),
            value: value.into(),
        };
        assert_eq!(
            a.personality_traits,
            Sent::Given(vec![
                t("curious", "high"),
                t("patient", "very"),
                t("terse", "")
            ])
        );
        assert_eq!(
            a.skills,
            Sent::Given(vec![Skill {
                name: "sql".into(),
                level: "expert".into()
            }])
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
        assert_eq!(
            input.fields,
            Patch::Workflow(WorkflowPatch::default()),
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
            input.fields,
            Patch::Conversation(ConversationPatch {
                agent_id: Sent::Given(None)
            }),
            "empty clears on edit"
        );
        let input = input_from_form(ResourceKind::Conversation, &f, true);
        assert_eq!(input.fields, Patch::empty(ResourceKind::Conversation));
        let input = input_from_form(ResourceKind::Tool, &f, false);
        assert_eq!(
            input.fields,
            Patch::empty(ResourceKind::Tool),
            "empty keeps"
        );
        let input = input_from_form(ResourceKind::Workflow, &f, false);
        assert_eq!(
            input.fields,
            Patch::Workflow(WorkflowPatch {
                steps: Sent::Given(Vec::new())
            })
        );
        f.steps = "{\"a\": 1}".into();
        let input = input_from_form(ResourceKind::Workflow, &f, false);
        assert_eq!(
            input.fields,
            Patch::Workflow(WorkflowPatch {
                steps: Sent::Unreadable
            }),
            "JSON of the wrong shape is for the service to refuse"
        );
    }
}
