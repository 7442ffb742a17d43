//! Workflows: an ordered list of steps.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cell, ColumnReader, ResourceFields, ResourceKind, Sent, json_cell};
use crate::domain::Invalid;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = WorkflowFields)]
pub struct Workflow {
    /// In order: agent, tool and condition steps (see `Step`).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
}

/// One step as a request sends it (the OpenAPI shape of [`StepSpec`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Step {
    /// `agent`: ask an agent (`agent_id`, `prompt`); `tool`: call a tool over HTTP
    /// (`tool_id`, `input`); `condition`: when `if` holds, go to step `goto`
    #[schema(value_type = String, pattern = "^(agent|tool|condition)$")]
    kind: String,
    /// shown in the run's history
    #[schema(max_length = 100, nullable = false)]
    name: Option<String>,
    #[schema(format = "uuid", nullable = false)]
    agent_id: Option<String>,
    /// a template over `{{input}}`, `{{input.field}}` and `{{steps.N.output}}` (N counts from 1)
    #[schema(max_length = 16384, nullable = false)]
    prompt: Option<String>,
    #[schema(format = "uuid", nullable = false)]
    tool_id: Option<String>,
    /// JSON whose strings are templates; checked against the tool's input schema
    #[schema(value_type = Object, nullable = false)]
    input: Option<Value>,
    /// `{left, op, right}`: op one of `equals`, `not_equals`, `contains`, `not_contains`,
    /// `empty`, `not_empty`; left and right are templates
    #[schema(rename = "if", value_type = Object, nullable = false)]
    condition: Option<Value>,
    /// a later step's number, or one past the last to end the run
    #[schema(nullable = false, minimum = 2)]
    goto: Option<usize>,
}

/// The most steps a workflow has.
pub const MAX_STEPS: usize = 200;
/// The longest prompt template.
pub const MAX_PROMPT: usize = 16 * 1024;

/// How a condition compares its two sides (after rendering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    Empty,
    NotEmpty,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Contains => "contains",
            Op::NotContains => "not_contains",
            Op::Empty => "empty",
            Op::NotEmpty => "not_empty",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "equals" => Op::Equals,
            "not_equals" => Op::NotEquals,
            "contains" => Op::Contains,
            "not_contains" => Op::NotContains,
            "empty" => Op::Empty,
            "not_empty" => Op::NotEmpty,
            _ => return None,
        })
    }

    /// Whether `left op right` holds; text compares after trimming, `contains` ignores case.
    pub fn holds(self, left: &str, right: &str) -> bool {
        let (l, r) = (left.trim(), right.trim());
        match self {
            Op::Equals => l == r,
            Op::NotEquals => l != r,
            Op::Contains => l.to_lowercase().contains(&r.to_lowercase()),
            Op::NotContains => !l.to_lowercase().contains(&r.to_lowercase()),
            Op::Empty => l.is_empty(),
            Op::NotEmpty => !l.is_empty(),
        }
    }
}

/// What a step does, read from its stored JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum StepSpec {
    Agent {
        agent_id: String,
        prompt: String,
    },
    Tool {
        tool_id: String,
        input: Value,
    },
    Condition {
        left: String,
        op: Op,
        right: String,
        /// The step (counting from 1) to go on with when the condition holds.
        goto: usize,
    },
}

impl StepSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::Agent { .. } => "agent",
            StepSpec::Tool { .. } => "tool",
            StepSpec::Condition { .. } => "condition",
        }
    }
}

/// A step's name: its own, or its kind.
pub fn step_name(step: &Value) -> String {
    step.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .or_else(|| step.get("kind").and_then(Value::as_str))
        .unwrap_or("step")
        .to_string()
}

fn id_field(o: &serde_json::Map<String, Value>, key: &str, n: usize) -> Result<String, String> {
    o.get(key)
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(|u| u.to_string())
        .ok_or_else(|| {
            format!(
                "Step {n} needs \"{key}\": the id of one of this organization's {}s.",
                &key[..key.len() - 3]
            )
        })
}

fn text_field(o: &serde_json::Map<String, Value>, key: &str, n: usize) -> Result<String, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(x)) => Ok(x.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(format!(
            "Step {n}: \"{key}\" of the condition must be text."
        )),
    }
}

/// Reads and checks the steps: at most 200, each of a known kind with its fields, names
/// of at most 100 characters, conditions going forward. Reasons count steps from 1.
pub fn parse_steps(steps: &[Value]) -> Result<Vec<StepSpec>, String> {
    if steps.len() > MAX_STEPS {
        return Err("Use at most 200 steps.".into());
    }
    let last = steps.len();
    let mut out = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let o = s.as_object().ok_or_else(|| {
            format!("Step {n} must be an object with a \"kind\": agent, tool or condition.")
        })?;
        if let Some(name) = o.get("name") {
            match name.as_str() {
                Some(x) if x.chars().count() <= 100 => {}
                _ => {
                    return Err(format!(
                        "Step {n} needs a \"name\" of at most 100 characters."
                    ));
                }
            }
        }
        let allowed: &[&str] = match o.get("kind").and_then(Value::as_str) {
            Some("agent") => &["kind", "name", "agent_id", "prompt"],
            Some("tool") => &["kind", "name", "tool_id", "input"],
            Some("condition") => &["kind", "name", "if", "goto"],
            _ => {
                return Err(format!(
                    "Step {n} needs a \"kind\": agent, tool or condition."
                ));
            }
        };
        if let Some(extra) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "Step {n}: \"{extra}\" is not a field of a {} step.",
                o["kind"].as_str().unwrap_or_default()
            ));
        }
        let spec = match o["kind"].as_str() {
            Some("agent") => {
                let agent_id = id_field(o, "agent_id", n)?;
                let prompt = match o.get("prompt").and_then(Value::as_str) {
                    Some(p) if !p.trim().is_empty() && p.len() <= MAX_PROMPT => p.to_string(),
                    _ => {
                        return Err(format!(
                            "Step {n} needs a \"prompt\" of 1 character to 16 KiB, e.g. \"Summarise: {{{{input}}}}\"."
                        ));
                    }
                };
                StepSpec::Agent { agent_id, prompt }
            }
            Some("tool") => StepSpec::Tool {
                tool_id: id_field(o, "tool_id", n)?,
                input: o
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Default::default())),
            },
            _ => {
                let c = o.get("if").and_then(Value::as_object).ok_or_else(|| {
                    format!("Step {n} needs \"if\": {{\"left\": \"{{{{steps.1.output}}}}\", \"op\": \"contains\", \"right\": \"yes\"}}.")
                })?;
                let op = c
                    .get("op")
                    .and_then(Value::as_str)
                    .and_then(Op::parse)
                    .ok_or_else(|| {
                        format!("Step {n}: \"op\" is one of equals, not_equals, contains, not_contains, empty, not_empty.")
                    })?;
                if let Some(extra) = c
                    .keys()
                    .find(|k| !["left", "op", "right"].contains(&k.as_str()))
                {
                    return Err(format!("Step {n}: \"{extra}\" is not part of a condition."));
                }
                let goto = o
                    .get("goto")
                    .and_then(Value::as_u64)
                    .and_then(|g| usize::try_from(g).ok())
                    .filter(|g| *g > n && *g <= last + 1)
                    .ok_or_else(|| {
                        format!(
                            "Step {n} needs a \"goto\": a later step, from {} to {} ({} ends the run).",
                            n + 1,
                            last + 1,
                            last + 1
                        )
                    })?;
                StepSpec::Condition {
                    left: text_field(c, "left", n)?,
                    op,
                    right: text_field(c, "right", n)?,
                    goto,
                }
            }
        };
        out.push(spec);
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WorkflowInput)]
pub struct WorkflowPatch {
    /// in order; ids (when given) unique
    #[serde(default)]
    #[schema(value_type = Vec<Step>, max_items = 200)]
    pub steps: Sent<Vec<Value>>,
}

impl ResourceFields for Workflow {
    const KIND: ResourceKind = ResourceKind::Workflow;
    const TABLE: &'static str = "workflows";
    const COLUMNS: &'static [&'static str] = &["steps"];
    const PUBLIC: &'static [&'static str] = &["steps"];
    type Patch = WorkflowPatch;

    fn validate(p: &WorkflowPatch, errors: &mut Vec<Invalid>) {
        let checked = match &p.steps {
            Sent::Absent => Ok(()),
            Sent::Given(steps) => check_steps(steps),
            Sent::Unreadable => Err(
                "Send the steps as a list, e.g. [{\"kind\": \"agent\", \"agent_id\": \"…\", \"prompt\": \"{{input}}\"}]."
                    .to_string(),
            ),
        };
        if let Err(why) = checked {
            errors.push(Invalid::new("steps", why));
        }
    }

    fn to_row(p: &WorkflowPatch) -> Vec<(&'static str, Cell)> {
        match &p.steps {
            Sent::Given(steps) => vec![("steps", json_cell(steps))],
            Sent::Absent | Sent::Unreadable => Vec::new(),
        }
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(Workflow { steps: r.json()? })
    }
}

fn check_steps(steps: &[Value]) -> Result<(), String> {
    parse_steps(steps).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problem, problems};
    use super::*;
    use serde_json::json;

    fn reason(steps: Value) -> Option<String> {
        let p = WorkflowPatch {
            steps: Sent::from_value(&steps),
        };
        let mut errors = Vec::new();
        Workflow::validate(&p, &mut errors);
        errors.pop().map(|e| e.reason)
    }

    const AGENT: &str = "0190f0a0-0000-7000-8000-000000000001";
    const TOOL: &str = "0190f0a0-0000-7000-8000-000000000002";

    #[test]
    fn steps_are_agent_tool_or_condition_with_their_fields() {
        let ok = json!([
            {"kind": "agent", "name": "draft", "agent_id": AGENT, "prompt": "Answer {{input}}"},
            {"kind": "condition", "if": {"left": "{{steps.1.output}}", "op": "contains", "right": "refund"}, "goto": 4},
            {"kind": "tool", "tool_id": TOOL, "input": {"text": "{{steps.1.output}}"}},
        ]);
        assert_eq!(reason(ok.clone()), None);
        let parsed = parse_steps(ok.as_array().unwrap()).unwrap();
        assert_eq!(
            parsed[1],
            StepSpec::Condition {
                left: "{{steps.1.output}}".into(),
                op: Op::Contains,
                right: "refund".into(),
                goto: 4
            }
        );
        assert_eq!(
            reason(json!({"name": "a"})).as_deref(),
            Some(
                "Send the steps as a list, e.g. [{\"kind\": \"agent\", \"agent_id\": \"…\", \"prompt\": \"{{input}}\"}]."
            )
        );
        assert_eq!(
            reason(json!([3])).as_deref(),
            Some("Step 1 must be an object with a \"kind\": agent, tool or condition.")
        );
        assert_eq!(
            reason(json!([{"name": "a", "type": "x"}])).as_deref(),
            Some("Step 1 needs a \"kind\": agent, tool or condition.")
        );
        assert_eq!(
            reason(json!([{"kind": "agent", "agent_id": "nope", "prompt": "p"}])).as_deref(),
            Some("Step 1 needs \"agent_id\": the id of one of this organization's agents.")
        );
        assert_eq!(
            reason(json!([{"kind": "agent", "agent_id": AGENT}])).as_deref(),
            Some(
                "Step 1 needs a \"prompt\" of 1 character to 16 KiB, e.g. \"Summarise: {{input}}\"."
            )
        );
        assert_eq!(
            reason(json!([{"kind": "tool", "tool_id": TOOL, "url": "x"}])).as_deref(),
            Some("Step 1: \"url\" is not a field of a tool step.")
        );
        // A condition only goes forward, at most to one past the end.
        let cond = |goto: u64| json!([{"kind": "condition", "if": {"left": "a", "op": "empty"}, "goto": goto}, {"kind": "tool", "tool_id": TOOL}]);
        assert_eq!(reason(cond(3)), None);
        assert_eq!(
            reason(cond(1)).as_deref(),
            Some("Step 1 needs a \"goto\": a later step, from 2 to 3 (3 ends the run).")
        );
        assert_eq!(
            reason(json!([{"kind": "condition", "if": {"left": "a", "op": "like"}, "goto": 2}]))
                .as_deref(),
            Some(
                "Step 1: \"op\" is one of equals, not_equals, contains, not_contains, empty, not_empty."
            )
        );
    }

    #[test]
    fn conditions_compare_rendered_text() {
        assert!(Op::Contains.holds("We REFUND it", "refund"));
        assert!(Op::NotContains.holds("no", "refund"));
        assert!(Op::Equals.holds(" yes\n", "yes"));
        assert!(Op::NotEquals.holds("yes", "no"));
        assert!(Op::Empty.holds("  ", ""));
        assert!(Op::NotEmpty.holds("x", ""));
    }

    #[test]
    fn a_workflow_goes_to_its_row_and_back() {
        let steps = vec![json!({"name": "fetch", "type": "http", "url": "u"})];
        let p = WorkflowPatch {
            steps: Sent::Given(steps.clone()),
        };
        let back = Workflow::from_row(&mut Cells::of(Workflow::to_row(&p))).unwrap();
        assert_eq!(back, Workflow { steps });
        assert!(Workflow::to_row(&WorkflowPatch::default()).is_empty());
    }

    #[test]
    fn a_workflow_patch_refuses_fields_it_does_not_have() {
        assert!(serde_json::from_value::<WorkflowPatch>(json!({"model": "m"})).is_err());
        assert_eq!(
            problems(ResourceKind::Workflow, json!({"steps": [], "config": {}})),
            [(
                "body",
                "\"config\" is not a field of workflows.".to_string()
            )]
        );
    }

    #[test]
    fn each_rule_of_the_steps_says_what_is_wrong() {
        let workflow = |v: Value| problem(ResourceKind::Workflow, json!({ "steps": v }));
        assert_eq!(
            workflow(json!(null)),
            "Send the steps as a list, e.g. [{\"kind\": \"agent\", \"agent_id\": \"…\", \"prompt\": \"{{input}}\"}]."
        );
        assert_eq!(
            workflow(json!(vec![json!({"kind": "tool", "tool_id": TOOL}); 201])),
            "Use at most 200 steps."
        );
        assert_eq!(
            workflow(json!([{"kind": "tool", "tool_id": TOOL, "name": "n".repeat(101)}])),
            "Step 1 needs a \"name\" of at most 100 characters."
        );
    }

    #[test]
    fn a_workflows_problems_come_with_every_unknown_key() {
        let all = problems(
            ResourceKind::Workflow,
            json!({"a": 1, "steps": "x", "z": 2}),
        );
        let fields: Vec<&str> = all.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["body", "steps", "body"]);
    }
}
