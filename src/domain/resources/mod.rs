//! The six kinds of shareable resource. Each kind is one module with its stored fields (a
//! struct read from its row) and its patch (a `deny_unknown_fields` struct of what a client
//! may send), tied together by `ResourceFields`: table, columns, checks, to and from a row.
mod agent;
mod conversation;
mod document;
mod knowledge_base;
mod tool;
mod workflow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{Invalid, Permission};

pub use agent::{Agent, AgentPatch, MAX_AGENT_KNOWLEDGE_BASES, MemoryMode, Skill, Trait};
pub use conversation::{Conversation, ConversationPatch};
pub use document::{Document, DocumentPatch};
pub use knowledge_base::{KnowledgeBase, KnowledgeBasePatch};
pub use tool::{Tool, ToolPatch};
pub use workflow::Step;
pub use workflow::{MAX_STEPS, Op, StepSpec, parse_steps, step_name};
pub use workflow::{Workflow, WorkflowPatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Agent,
    Workflow,
    Document,
    Tool,
    KnowledgeBase,
    Conversation,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::Agent,
        ResourceKind::Workflow,
        ResourceKind::Document,
        ResourceKind::Tool,
        ResourceKind::KnowledgeBase,
        ResourceKind::Conversation,
    ];

    /// The `{type}` segment of API paths.
    pub fn from_path(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.path() == s)
    }

    pub fn path(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agents",
            ResourceKind::Workflow => "workflows",
            ResourceKind::Document => "documents",
            ResourceKind::Tool => "tools",
            ResourceKind::KnowledgeBase => "knowledge-bases",
            ResourceKind::Conversation => "conversations",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            ResourceKind::Agent => Agent::TABLE,
            ResourceKind::Workflow => Workflow::TABLE,
            ResourceKind::Document => Document::TABLE,
            ResourceKind::Tool => Tool::TABLE,
            ResourceKind::KnowledgeBase => KnowledgeBase::TABLE,
            ResourceKind::Conversation => Conversation::TABLE,
        }
    }

    /// The kind's own columns, in the order `Fields::read` takes them; the only
    /// identifiers besides table names ever put in SQL text.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            ResourceKind::Agent => Agent::COLUMNS,
            ResourceKind::Workflow => Workflow::COLUMNS,
            ResourceKind::Document => Document::COLUMNS,
            ResourceKind::Tool => Tool::COLUMNS,
            ResourceKind::KnowledgeBase => KnowledgeBase::COLUMNS,
            ResourceKind::Conversation => Conversation::COLUMNS,
        }
    }

    /// The name used in `resource_shares.resource_type` and in audit rows.
    pub fn share_type(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agent",
            ResourceKind::Workflow => "workflow",
            ResourceKind::Document => "document",
            ResourceKind::Tool => "tool",
            ResourceKind::KnowledgeBase => "knowledge_base",
            ResourceKind::Conversation => "conversation",
        }
    }

    /// May create items of this kind (and edit their own).
    pub fn create_permission(self) -> Permission {
        match self {
            ResourceKind::Agent => Permission::AgentsCreate,
            ResourceKind::Workflow => Permission::WorkflowsCreate,
            ResourceKind::Document => Permission::DocumentsCreate,
            ResourceKind::Tool => Permission::ToolsCreate,
            ResourceKind::KnowledgeBase => Permission::KnowledgeBasesCreate,
            ResourceKind::Conversation => Permission::ConversationsCreate,
        }
    }

    /// May edit and delete every item of this kind it can read.
    pub fn manage_permission(self) -> Permission {
        match self {
            ResourceKind::Agent => Permission::AgentsManage,
            ResourceKind::Workflow => Permission::WorkflowsManage,
            ResourceKind::Document => Permission::DocumentsManage,
            ResourceKind::Tool => Permission::ToolsManage,
            ResourceKind::KnowledgeBase => Permission::KnowledgeBasesManage,
            ResourceKind::Conversation => Permission::ConversationsManage,
        }
    }
}

/// One field of a patch as the client sent it. Any value deserializes, so a patch struct
/// refuses only keys it does not have, and its checks can say what is wrong with each
/// field in words, all fields at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Sent<T> {
    #[default]
    Absent,
    Given(T),
    /// Sent, but not of the field's shape (text where a list belongs, `null` where
    /// nothing may be cleared).
    Unreadable,
}

impl<T: DeserializeOwned> Sent<T> {
    pub fn from_value(v: &Value) -> Self {
        T::deserialize(v).map_or(Sent::Unreadable, Sent::Given)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Sent<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Self::from_value(&v))
    }
}

/// A value for a column, as the repository binds it. JSON columns hold their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
}

/// The kind's columns of a row, taken in `COLUMNS` order (the repository reads them from
/// its statement; tests from a list of cells).
pub trait ColumnReader {
    type Error;
    fn text(&mut self) -> Result<String, Self::Error>;
    fn opt_text(&mut self) -> Result<Option<String>, Self::Error>;
    fn int(&mut self) -> Result<i64, Self::Error>;
    fn json<T: DeserializeOwned>(&mut self) -> Result<T, Self::Error>;
}

/// One kind's own fields: where they are stored, how a patch is checked and written, and
/// how a stored row is read back.
pub trait ResourceFields: Serialize + Sized {
    const KIND: ResourceKind;
    const TABLE: &'static str;
    /// The kind's own columns, in the order `from_row` reads them.
    const COLUMNS: &'static [&'static str];
    /// What a client may send to create or change one; every field optional.
    type Patch: DeserializeOwned + Default;

    /// Adds a reason for every field of the patch that breaks a rule.
    fn validate(patch: &Self::Patch, errors: &mut Vec<Invalid>);
    /// The columns a checked patch sets, in `COLUMNS` order.
    fn to_row(patch: &Self::Patch) -> Vec<(&'static str, Cell)>;
    fn from_row<R: ColumnReader>(row: &mut R) -> Result<Self, R::Error>;
    /// The fields the public gallery shows: only what describes the item itself, never
    /// ids of other items, owners, shares or configuration.
    const PUBLIC: &'static [&'static str];

    /// The `PUBLIC` fields, as the gallery shows them.
    fn public(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(all)) => all
                .into_iter()
                .filter(|(k, _)| Self::PUBLIC.contains(&k.as_str()))
                .collect(),
            _ => Map::new(),
        }
    }
}

/// A resource's own fields as stored, flattened into its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Fields {
    Agent(Agent),
    Workflow(Workflow),
    Document(Document),
    Tool(Tool),
    KnowledgeBase(KnowledgeBase),
    Conversation(Conversation),
}

impl Fields {
    pub fn read<R: ColumnReader>(kind: ResourceKind, row: &mut R) -> Result<Self, R::Error> {
        Ok(match kind {
            ResourceKind::Agent => Fields::Agent(Agent::from_row(row)?),
            ResourceKind::Workflow => Fields::Workflow(Workflow::from_row(row)?),
            ResourceKind::Document => Fields::Document(Document::from_row(row)?),
            ResourceKind::Tool => Fields::Tool(Tool::from_row(row)?),
            ResourceKind::KnowledgeBase => Fields::KnowledgeBase(KnowledgeBase::from_row(row)?),
            ResourceKind::Conversation => Fields::Conversation(Conversation::from_row(row)?),
        })
    }

    pub fn public(&self) -> Map<String, Value> {
        match self {
            Fields::Agent(f) => f.public(),
            Fields::Workflow(f) => f.public(),
            Fields::Document(f) => f.public(),
            Fields::Tool(f) => f.public(),
            Fields::KnowledgeBase(f) => f.public(),
            Fields::Conversation(f) => f.public(),
        }
    }
}

/// A create or update request's own fields for one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    Agent(AgentPatch),
    Workflow(WorkflowPatch),
    Document(DocumentPatch),
    Tool(ToolPatch),
    KnowledgeBase(KnowledgeBasePatch),
    Conversation(ConversationPatch),
}

impl Patch {
    /// A patch that changes none of the kind's own fields.
    pub fn empty(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Agent => Patch::Agent(AgentPatch::default()),
            ResourceKind::Workflow => Patch::Workflow(WorkflowPatch::default()),
            ResourceKind::Document => Patch::Document(DocumentPatch::default()),
            ResourceKind::Tool => Patch::Tool(ToolPatch::default()),
            ResourceKind::KnowledgeBase => Patch::KnowledgeBase(KnowledgeBasePatch::default()),
            ResourceKind::Conversation => Patch::Conversation(ConversationPatch::default()),
        }
    }

    /// The kind's fields of a JSON body, and apart the keys that are no field of it.
    pub fn from_json(kind: ResourceKind, body: Map<String, Value>) -> (Self, Vec<String>) {
        match kind {
            ResourceKind::Agent => from_json_as(body, Patch::Agent),
            ResourceKind::Workflow => from_json_as(body, Patch::Workflow),
            ResourceKind::Document => from_json_as(body, Patch::Document),
            ResourceKind::Tool => from_json_as(body, Patch::Tool),
            ResourceKind::KnowledgeBase => from_json_as(body, Patch::KnowledgeBase),
            ResourceKind::Conversation => from_json_as(body, Patch::Conversation),
        }
    }

    pub fn kind(&self) -> ResourceKind {
        match self {
            Patch::Agent(_) => ResourceKind::Agent,
            Patch::Workflow(_) => ResourceKind::Workflow,
            Patch::Document(_) => ResourceKind::Document,
            Patch::Tool(_) => ResourceKind::Tool,
            Patch::KnowledgeBase(_) => ResourceKind::KnowledgeBase,
            Patch::Conversation(_) => ResourceKind::Conversation,
        }
    }

    /// The patch once every field passed its kind's checks. Each bad field, and each key
    /// in `unknown`, adds its reason to `errors`, in the order of the keys as sent.
    pub fn check(self, unknown: &[String], errors: &mut Vec<Invalid>) -> Option<Checked> {
        let mut own = Vec::new();
        match &self {
            Patch::Agent(p) => Agent::validate(p, &mut own),
            Patch::Workflow(p) => Workflow::validate(p, &mut own),
            Patch::Document(p) => Document::validate(p, &mut own),
            Patch::Tool(p) => Tool::validate(p, &mut own),
            Patch::KnowledgeBase(p) => KnowledgeBase::validate(p, &mut own),
            Patch::Conversation(p) => Conversation::validate(p, &mut own),
        }
        let path = self.kind().path();
        let mut by_key: Vec<(&str, Invalid)> = own
            .into_iter()
            .map(|e| (e.field, e))
            .chain(unknown.iter().map(|key| {
                let why = format!("\"{key}\" is not a field of {path}.");
                (key.as_str(), Invalid::new("body", why))
            }))
            .collect();
        by_key.sort_by(|a, b| a.0.cmp(b.0));
        let valid = by_key.is_empty();
        errors.extend(by_key.into_iter().map(|(_, e)| e));
        valid.then_some(Checked(self))
    }
}

/// Reads a patch struct out of a JSON body. Its fields take any value, so it refuses only
/// keys it does not have: those are found one by one and left out.
fn from_json_as<P: DeserializeOwned + Default>(
    mut body: Map<String, Value>,
    wrap: fn(P) -> Patch,
) -> (Patch, Vec<String>) {
    let whole = Value::Object(body);
    if let Ok(p) = P::deserialize(&whole) {
        return (wrap(p), Vec::new());
    }
    let Value::Object(all) = whole else {
        return (wrap(P::default()), Vec::new());
    };
    body = all;
    let unknown: Vec<String> = body
        .iter()
        .filter(|(key, value)| {
            let one = Map::from_iter([((*key).clone(), (*value).clone())]);
            P::deserialize(&Value::Object(one)).is_err()
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in &unknown {
        body.remove(key);
    }
    let known = P::deserialize(&Value::Object(body)).unwrap_or_default();
    (wrap(known), unknown)
}

/// A patch whose every field passed its kind's checks: the only kind of patch the
/// repository writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked(Patch);

impl Checked {
    /// An upload's fields: the server measured the file itself, so there is nothing to check.
    pub fn document(file: Document) -> Self {
        Checked(Patch::Document(DocumentPatch { file: Some(file) }))
    }

    pub fn patch(&self) -> &Patch {
        &self.0
    }

    pub fn kind(&self) -> ResourceKind {
        self.0.kind()
    }

    /// The columns the patch sets, in the kind's column order.
    pub fn to_row(&self) -> Vec<(&'static str, Cell)> {
        match &self.0 {
            Patch::Agent(p) => Agent::to_row(p),
            Patch::Workflow(p) => Workflow::to_row(p),
            Patch::Document(p) => Document::to_row(p),
            Patch::Tool(p) => Tool::to_row(p),
            Patch::KnowledgeBase(p) => KnowledgeBase::to_row(p),
            Patch::Conversation(p) => Conversation::to_row(p),
        }
    }
}

/// Text of at most `max` characters.
fn check_text(field: &'static str, v: &Sent<String>, max: usize, errors: &mut Vec<Invalid>) {
    match v {
        Sent::Absent => {}
        Sent::Given(s) => check_length(field, s, max, errors),
        Sent::Unreadable => errors.push(Invalid::new(field, "Send this as text.")),
    }
}

/// Text of at most `max` characters, or `null` (which clears it, as blank text does).
fn check_opt_text(
    field: &'static str,
    v: &Sent<Option<String>>,
    max: usize,
    errors: &mut Vec<Invalid>,
) {
    match v {
        Sent::Absent | Sent::Given(None) => {}
        Sent::Given(Some(s)) => check_length(field, s, max, errors),
        Sent::Unreadable => errors.push(Invalid::new(field, "Send this as text.")),
    }
}

fn check_length(field: &'static str, s: &str, max: usize, errors: &mut Vec<Invalid>) {
    if s.chars().count() > max {
        errors.push(Invalid::new(
            field,
            format!("Use at most {max} characters."),
        ));
    }
}

/// Configuration: a JSON object of at most 256 KiB.
fn check_object(field: &'static str, v: &Sent<Map<String, Value>>, errors: &mut Vec<Invalid>) {
    match v {
        Sent::Absent => {}
        Sent::Given(o) if json_text(o).len() > 256 * 1024 => {
            errors.push(Invalid::new(field, "Keep this under 256 KiB."));
        }
        Sent::Given(_) => {}
        Sent::Unreadable => errors.push(Invalid::new(field, "Send this as an object.")),
    }
}

/// Optional text is stored trimmed, and blank as NULL.
fn opt_text_cell(v: Option<&str>) -> Cell {
    match v.map(str::trim) {
        Some(s) if !s.is_empty() => Cell::Text(s.to_string()),
        _ => Cell::Null,
    }
}

fn json_text<T: Serialize>(v: &T) -> String {
    // Lists and string-keyed maps of JSON always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

fn json_cell<T: Serialize>(v: &T) -> Cell {
    Cell::Text(json_text(v))
}

#[cfg(test)]
pub(super) mod testing {
    //! A row as a list of cells, to read kinds back from what `to_row` wrote; a JSON body
    //! checked as a request's is.
    use super::{Cell, ColumnReader, Patch, ResourceKind};
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// Every problem with a body of `kind`'s own fields, as (field, reason), in the order
    /// a refused request lists them.
    pub fn problems(kind: ResourceKind, body: Value) -> Vec<(&'static str, String)> {
        let Value::Object(body) = body else {
            return vec![("test", "the body must be an object".into())];
        };
        let (patch, unknown) = Patch::from_json(kind, body);
        let mut errors = Vec::new();
        let checked = patch.check(&unknown, &mut errors);
        assert_eq!(checked.is_some(), errors.is_empty());
        errors.into_iter().map(|e| (e.field, e.reason)).collect()
    }

    /// The one problem of a body with one bad field.
    pub fn problem(kind: ResourceKind, body: Value) -> String {
        let mut all = problems(kind, body);
        assert_eq!(all.len(), 1, "{all:?}");
        all.pop().map(|(_, why)| why).unwrap_or_default()
    }

    pub struct Cells(pub std::vec::IntoIter<Cell>);

    impl Cells {
        pub fn of(row: Vec<(&'static str, Cell)>) -> Self {
            Cells(
                row.into_iter()
                    .map(|(_, c)| c)
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        }
    }

    impl ColumnReader for Cells {
        type Error = String;
        fn text(&mut self) -> Result<String, String> {
            match self.0.next() {
                Some(Cell::Text(s)) => Ok(s),
                other => Err(format!("expected text, got {other:?}")),
            }
        }
        fn opt_text(&mut self) -> Result<Option<String>, String> {
            match self.0.next() {
                Some(Cell::Text(s)) => Ok(Some(s)),
                Some(Cell::Null) => Ok(None),
                other => Err(format!("expected text or null, got {other:?}")),
            }
        }
        fn int(&mut self) -> Result<i64, String> {
            match self.0.next() {
                Some(Cell::Int(n)) => Ok(n),
                other => Err(format!("expected an integer, got {other:?}")),
            }
        }
        fn json<T: DeserializeOwned>(&mut self) -> Result<T, String> {
            serde_json::from_str(&self.text()?).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A name in `PUBLIC` that is no field would drop out of the gallery and its
    /// description without a word.
    #[test]
    fn every_public_field_is_a_field_of_its_kind() {
        fn fields<F: ResourceFields + Default>() -> (Vec<String>, &'static [&'static str]) {
            let v = serde_json::to_value(F::default()).unwrap_or_default();
            let keys = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            (keys, F::PUBLIC)
        }
        for (keys, public) in [
            fields::<Agent>(),
            fields::<Workflow>(),
            fields::<Document>(),
            fields::<Tool>(),
            fields::<KnowledgeBase>(),
            fields::<Conversation>(),
        ] {
            for name in public {
                assert!(
                    keys.iter().any(|k| k == name),
                    "{name} is not one of {keys:?}"
                );
            }
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn keys_that_are_no_field_of_the_kind_are_set_apart_and_the_rest_is_read() {
        let (patch, unknown) = Patch::from_json(
            ResourceKind::Workflow,
            body(json!({"steps": [], "model": "x", "zzz": 1})),
        );
        assert_eq!(unknown, ["model", "zzz"]);
        let Patch::Workflow(w) = &patch else {
            panic!("a workflow patch")
        };
        assert_eq!(w.steps, Sent::Given(Vec::new()));
    }

    #[test]
    fn every_bad_field_and_unknown_key_is_reported_in_the_order_of_the_keys() {
        let (patch, unknown) = Patch::from_json(
            ResourceKind::Agent,
            body(json!({"tools": "x", "steps": [], "model": 5, "config": []})),
        );
        let mut errors = Vec::new();
        assert!(patch.check(&unknown, &mut errors).is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["config", "model", "body", "tools"]);
        assert_eq!(errors[2].reason, "\"steps\" is not a field of agents.");
        assert_eq!(errors[1].reason, "Send this as text.");
        assert_eq!(errors[0].reason, "Send this as an object.");
    }

    #[test]
    fn a_valid_patch_is_checked_without_errors() {
        let (patch, unknown) =
            Patch::from_json(ResourceKind::Conversation, body(json!({"agent_id": null})));
        let mut errors = Vec::new();
        let checked = patch.check(&unknown, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(
            checked.map(|c| c.to_row()),
            Some(vec![("agent_id", Cell::Null)])
        );
    }

    #[test]
    fn kinds_name_their_tables_and_columns() {
        assert_eq!(ResourceKind::Document.table(), "uploaded_documents");
        assert_eq!(
            ResourceKind::Agent.columns(),
            [
                "model",
                "system_prompt",
                "tools",
                "config",
                "knowledge_base_ids",
                "memory",
                "memory_extraction"
            ]
        );
        for kind in ResourceKind::ALL {
            assert_eq!(ResourceKind::from_path(kind.path()), Some(kind));
            assert_eq!(Patch::empty(kind).kind(), kind);
        }
    }
}
