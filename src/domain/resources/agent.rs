//! Agents: a model, a system prompt, tools and configuration in their row; personality
//! traits and skills in tables of their own, sent with the agent's patch.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Cell, ColumnReader, ResourceFields, ResourceKind, Sent, check_object, check_opt_text,
    check_text, json_cell, opt_text_cell,
};
use crate::domain::Invalid;

/// Fields in alphabetical order: the order of the JSON the API has always sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AgentFields)]
pub struct Agent {
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The knowledge bases replies retrieve passages from.
    #[schema(value_type = Vec<String>)]
    pub knowledge_base_ids: Vec<String>,
    pub memory: MemoryMode,
    /// After each reply, a second (metered) model call extracts facts to remember.
    pub memory_extraction: bool,
    pub model: Option<String>,
    pub system_prompt: String,
    pub tools: Vec<String>,
}

/// Whose facts an agent remembers between conversations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// None: replies see no facts.
    #[default]
    Off,
    /// Each member's own facts.
    PerUser,
    /// Facts shared by every member who may read the agent.
    Organization,
}

impl MemoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMode::Off => "off",
            MemoryMode::PerUser => "per_user",
            MemoryMode::Organization => "organization",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(MemoryMode::Off),
            "per_user" => Some(MemoryMode::PerUser),
            "organization" => Some(MemoryMode::Organization),
            _ => None,
        }
    }
}

/// The most knowledge bases one agent answers from.
pub const MAX_AGENT_KNOWLEDGE_BASES: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentInput)]
pub struct AgentPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub model: Sent<Option<String>>,
    #[serde(default)]
    #[schema(value_type = String, max_length = 100_000)]
    pub system_prompt: Sent<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schemas::ToolRef>, max_items = 100)]
    pub tools: Sent<Vec<String>>,
    /// at most 256 KiB as JSON
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Sent<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Vec<Trait>, max_items = 50)]
    pub personality_traits: Sent<Vec<Trait>>,
    #[serde(default)]
    #[schema(value_type = Vec<Skill>, max_items = 50)]
    pub skills: Sent<Vec<Skill>>,
    /// knowledge bases of this organization the caller can read
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schemas::IdRef>, max_items = 20)]
    pub knowledge_base_ids: Sent<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = MemoryMode)]
    pub memory: Sent<MemoryMode>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub memory_extraction: Sent<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Trait {
    #[serde(rename = "trait")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Skill {
    #[serde(rename = "skill")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub level: String,
}

impl ResourceFields for Agent {
    const KIND: ResourceKind = ResourceKind::Agent;
    const TABLE: &'static str = "agents";
    const COLUMNS: &'static [&'static str] = &[
        "model",
        "system_prompt",
        "tools",
        "config",
        "knowledge_base_ids",
        "memory",
        "memory_extraction",
    ];
    const PUBLIC: &'static [&'static str] = &["model", "system_prompt"];
    type Patch = AgentPatch;

    fn validate(p: &AgentPatch, errors: &mut Vec<Invalid>) {
        check_opt_text("model", &p.model, 200, errors);
        check_text("system_prompt", &p.system_prompt, 100_000, errors);
        let tools_ok = match &p.tools {
            Sent::Absent => true,
            Sent::Given(t) => t.len() <= 100 && t.iter().all(|s| !s.is_empty() && s.len() <= 200),
            Sent::Unreadable => false,
        };
        if !tools_ok {
            errors.push(Invalid::new(
                "tools",
                "List at most 100 tools, each a name or id of at most 200 characters.",
            ));
        }
        check_object("config", &p.config, errors);
        let kbs_ok = match &p.knowledge_base_ids {
            Sent::Absent => true,
            Sent::Given(k) => {
                k.len() <= MAX_AGENT_KNOWLEDGE_BASES
                    && k.iter()
                        .all(|id| crate::domain::ResourceId::parse(id).is_some())
            }
            Sent::Unreadable => false,
        };
        if !kbs_ok {
            errors.push(Invalid::new(
                "knowledge_base_ids",
                "List at most 20 knowledge base ids, each the id of one of this organization's knowledge bases.",
            ));
        }
        if p.memory == Sent::Unreadable {
            errors.push(Invalid::new(
                "memory",
                "Choose off, per_user or organization.",
            ));
        }
        if p.memory_extraction == Sent::Unreadable {
            errors.push(Invalid::new("memory_extraction", "Send true or false."));
        }
        match &p.personality_traits {
            Sent::Absent => {}
            Sent::Given(t) => {
                let named = t.iter().map(|t| (t.name.as_str(), t.value.as_str()));
                if let Err(why) = check_named("trait", named, 500) {
                    errors.push(Invalid::new("personality_traits", why));
                }
            }
            Sent::Unreadable => errors.push(Invalid::new(
                "personality_traits",
                "Send a list like [{\"trait\": \"curious\", \"value\": \"high\"}].",
            )),
        }
        match &p.skills {
            Sent::Absent => {}
            Sent::Given(s) => {
                let named = s.iter().map(|s| (s.name.as_str(), s.level.as_str()));
                if let Err(why) = check_named("skill", named, 100) {
                    errors.push(Invalid::new("skills", why));
                }
            }
            Sent::Unreadable => errors.push(Invalid::new(
                "skills",
                "Send a list like [{\"skill\": \"sql\", \"level\": \"expert\"}].",
            )),
        }
    }

    fn to_row(p: &AgentPatch) -> Vec<(&'static str, Cell)> {
        let mut row = Vec::new();
        if let Sent::Given(m) = &p.model {
            row.push(("model", opt_text_cell(m.as_deref())));
        }
        if let Sent::Given(s) = &p.system_prompt {
            row.push(("system_prompt", Cell::Text(s.clone())));
        }
        if let Sent::Given(t) = &p.tools {
            row.push(("tools", json_cell(t)));
        }
        if let Sent::Given(c) = &p.config {
            row.push(("config", json_cell(c)));
        }
        if let Sent::Given(k) = &p.knowledge_base_ids {
            let mut ids: Vec<String> = Vec::with_capacity(k.len());
            for id in k {
                let id = id.trim().to_ascii_lowercase();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            row.push(("knowledge_base_ids", json_cell(&ids)));
        }
        if let Sent::Given(m) = &p.memory {
            row.push(("memory", Cell::Text(m.as_str().to_string())));
        }
        if let Sent::Given(e) = &p.memory_extraction {
            row.push(("memory_extraction", Cell::Int(i64::from(*e))));
        }
        row
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(Agent {
            model: r.opt_text()?,
            system_prompt: r.text()?,
            tools: r.json()?,
            config: r.json()?,
            knowledge_base_ids: r.json()?,
            memory: MemoryMode::parse(&r.text()?).unwrap_or_default(),
            memory_extraction: r.int()? != 0,
        })
    }
}

/// An agent's traits or skills: at most 50, each named (at most 100 characters) with a
/// value of at most `max_value` characters. The reason names what is wrong in words.
fn check_named<'a>(
    what: &str,
    items: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    max_value: usize,
) -> Result<(), String> {
    if items.len() > 50 {
        return Err(format!("Give at most 50 {what}s."));
    }
    for (name, value) in items {
        if name.trim().is_empty() {
            return Err(format!("Give every {what} a name."));
        }
        if name.chars().count() > 100 {
            return Err(format!("Keep each {what}'s name under 100 characters."));
        }
        if value.chars().count() > max_value {
            return Err(format!(
                "Keep the value of the {what} \"{name}\" under {max_value} characters."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problem, problems};
    use super::*;
    use serde_json::json;

    fn reasons(p: &AgentPatch) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        Agent::validate(p, &mut errors);
        errors.into_iter().map(|e| (e.field, e.reason)).collect()
    }

    #[test]
    fn a_patch_reads_any_value_and_keeps_null_apart_from_absent() {
        let p: AgentPatch =
            serde_json::from_value(json!({"model": null, "system_prompt": null, "tools": "x"}))
                .unwrap();
        assert_eq!(p.model, Sent::Given(None));
        assert_eq!(p.system_prompt, Sent::Unreadable);
        assert_eq!(p.tools, Sent::Unreadable);
        assert_eq!(p.config, Sent::Absent);
        assert!(serde_json::from_value::<AgentPatch>(json!({"steps": []})).is_err());
    }

    #[test]
    fn every_bad_field_of_an_agent_gets_its_reason() {
        let p = AgentPatch {
            model: Sent::Given(Some("m".repeat(201))),
            system_prompt: Sent::Unreadable,
            tools: Sent::Given(vec![String::new()]),
            config: Sent::Unreadable,
            personality_traits: Sent::Given(vec![Trait {
                name: " ".into(),
                value: String::new(),
            }]),
            skills: Sent::Given(vec![Skill {
                name: "sql".into(),
                level: "x".repeat(101),
            }]),
            ..Default::default()
        };
        assert_eq!(
            reasons(&p),
            [
                ("model", "Use at most 200 characters.".to_string()),
                ("system_prompt", "Send this as text.".into()),
                (
                    "tools",
                    "List at most 100 tools, each a name or id of at most 200 characters.".into()
                ),
                ("config", "Send this as an object.".into()),
                ("personality_traits", "Give every trait a name.".into()),
                (
                    "skills",
                    "Keep the value of the skill \"sql\" under 100 characters.".into()
                ),
            ]
        );
        assert!(reasons(&AgentPatch::default()).is_empty());
    }

    const KB: &str = "0b8e7a52-3c1d-4f6e-9a2b-5d4c3b2a1f00";

    #[test]
    fn an_agent_goes_to_its_row_and_back() {
        let p = AgentPatch {
            model: Sent::Given(Some("  gpt-4o ".into())),
            system_prompt: Sent::Given(" Be kind ".into()),
            tools: Sent::Given(vec!["search".into()]),
            config: Sent::Given(Map::from_iter([("t".to_string(), json!(1))])),
            knowledge_base_ids: Sent::Given(vec![KB.to_uppercase(), format!(" {KB} ")]),
            memory: Sent::Given(MemoryMode::PerUser),
            memory_extraction: Sent::Given(true),
            ..Default::default()
        };
        let row = Agent::to_row(&p);
        let names: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
        assert_eq!(names, Agent::COLUMNS);
        assert_eq!(row[2].1, Cell::Text("[\"search\"]".into()));
        let back = Agent::from_row(&mut Cells::of(row)).unwrap();
        assert_eq!(
            back,
            Agent {
                model: Some("gpt-4o".into()),
                system_prompt: " Be kind ".into(),
                tools: vec!["search".into()],
                config: Map::from_iter([("t".to_string(), json!(1))]),
                knowledge_base_ids: vec![KB.into()],
                memory: MemoryMode::PerUser,
                memory_extraction: true,
            }
        );
        let blank = AgentPatch {
            model: Sent::Given(Some("  ".into())),
            ..Default::default()
        };
        assert_eq!(Agent::to_row(&blank), [("model", Cell::Null)]);
    }

    #[test]
    fn the_gallery_shows_model_and_prompt_only() {
        let a = Agent {
            model: Some("m".into()),
            system_prompt: "p".into(),
            tools: vec!["secret-tool".into()],
            ..Default::default()
        };
        assert_eq!(
            Value::Object(a.public()),
            json!({"model": "m", "system_prompt": "p"})
        );
    }

    #[test]
    fn an_agent_patch_refuses_fields_it_does_not_have() {
        assert!(serde_json::from_value::<AgentPatch>(json!({"input_schema": {}})).is_err());
        assert_eq!(
            problems(ResourceKind::Agent, json!({"model": "m", "filename": "x"})),
            [("body", "\"filename\" is not a field of agents.".to_string())]
        );
    }

    #[test]
    fn each_field_of_an_agent_says_what_is_wrong_with_it() {
        let agent = |v: Value| problem(ResourceKind::Agent, v);
        assert_eq!(agent(json!({"model": 3})), "Send this as text.");
        assert_eq!(
            agent(json!({"model": "m".repeat(201)})),
            "Use at most 200 characters."
        );
        assert_eq!(agent(json!({"system_prompt": null})), "Send this as text.");
        assert_eq!(
            agent(json!({"system_prompt": "p".repeat(100_001)})),
            "Use at most 100000 characters."
        );
        let tools = "List at most 100 tools, each a name or id of at most 200 characters.";
        assert_eq!(agent(json!({"tools": "search"})), tools);
        assert_eq!(agent(json!({"tools": [1]})), tools);
        assert_eq!(agent(json!({"tools": [""]})), tools);
        assert_eq!(agent(json!({"tools": ["t".repeat(201)]})), tools);
        assert_eq!(agent(json!({"tools": vec!["t"; 101]})), tools);
        assert_eq!(agent(json!({"config": []})), "Send this as an object.");
        assert_eq!(
            agent(json!({"config": {"big": "x".repeat(256 * 1024)}})),
            "Keep this under 256 KiB."
        );
        assert_eq!(
            agent(json!({"personality_traits": {"trait": "curious"}})),
            "Send a list like [{\"trait\": \"curious\", \"value\": \"high\"}]."
        );
        assert_eq!(
            agent(json!({"personality_traits": vec![json!({"trait": "t"}); 51]})),
            "Give at most 50 traits."
        );
        assert_eq!(
            agent(json!({"personality_traits": [{"trait": " "}]})),
            "Give every trait a name."
        );
        assert_eq!(
            agent(json!({"personality_traits": [{"trait": "t".repeat(101)}]})),
            "Keep each trait's name under 100 characters."
        );
        assert_eq!(
            agent(json!({"personality_traits": [{"trait": "calm", "value": "v".repeat(501)}]})),
            "Keep the value of the trait \"calm\" under 500 characters."
        );
        assert_eq!(
            agent(json!({"skills": [{"level": "expert"}]})),
            "Send a list like [{\"skill\": \"sql\", \"level\": \"expert\"}]."
        );
        assert_eq!(
            agent(json!({"skills": [{"skill": "sql", "level": "l".repeat(101)}]})),
            "Keep the value of the skill \"sql\" under 100 characters."
        );
    }

    #[test]
    fn every_field_of_an_agent_is_checked_at_once() {
        let all = problems(
            ResourceKind::Agent,
            json!({
                "model": 1, "system_prompt": 2, "tools": 3, "config": 4,
                "personality_traits": 5, "skills": 6, "steps": []
            }),
        );
        let fields: Vec<&str> = all.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "config",
                "model",
                "personality_traits",
                "skills",
                "body",
                "system_prompt",
                "tools"
            ]
        );
        assert!(
            problems(
                ResourceKind::Agent,
                json!({"model": null, "system_prompt": "", "tools": [], "config": {},
                       "personality_traits": [], "skills": []})
            )
            .is_empty()
        );
    }
}
