//! Workflows: an ordered list of steps.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cell, ColumnReader, ResourceFields, ResourceKind, Sent, json_cell};
use crate::domain::Invalid;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = WorkflowFields)]
pub struct Workflow {
    /// Each an object with at least a `name` and a `type`; the rest is the step's own.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
}

/// One step as a request sends it: a name and a type; the rest is the step's own.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Step {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    #[schema(
        rename = "type",
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    kind: String,
    /// unique among the steps
    #[schema(nullable = false)]
    id: Option<String>,
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
                "Send the steps as a list, e.g. [{\"name\": \"fetch\", \"type\": \"http\"}]."
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

/// At most 200 steps, each an object with a `name` and a `type`, and ids (when given)
/// unique. Reasons count steps from 1, as people do.
fn check_steps(steps: &[Value]) -> Result<(), String> {
    if steps.len() > 200 {
        return Err("Use at most 200 steps.".into());
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let o = s
            .as_object()
            .ok_or_else(|| format!("Step {n} must be an object with a name and a type."))?;
        for key in ["name", "type"] {
            match o.get(key).and_then(Value::as_str) {
                Some(x) if !x.trim().is_empty() && x.len() <= 100 => {}
                _ => {
                    return Err(format!(
                        "Step {n} needs a \"{key}\" of 1 to 100 characters."
                    ));
                }
            }
        }
        if let Some(id) = o.get("id") {
            let id = id
                .as_str()
                .ok_or_else(|| format!("Step {n} needs its id as text."))?;
            if !ids.insert(id) {
                return Err(format!(
                    "Step {n} has the id \"{id}\" of an earlier step; ids must differ."
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn steps_need_names_types_and_different_ids() {
        assert_eq!(
            reason(json!([{"name": "a", "type": "http", "id": "1"}])),
            None
        );
        assert_eq!(
            reason(json!({"name": "a"})).as_deref(),
            Some("Send the steps as a list, e.g. [{\"name\": \"fetch\", \"type\": \"http\"}].")
        );
        assert_eq!(
            reason(json!([{"name": "a", "type": "x"}, 3])).as_deref(),
            Some("Step 2 must be an object with a name and a type.")
        );
        assert_eq!(
            reason(json!([{"name": "a"}])).as_deref(),
            Some("Step 1 needs a \"type\" of 1 to 100 characters.")
        );
        assert_eq!(
            reason(json!([{"name": "a", "type": "x", "id": "s"}, {"name": "b", "type": "y", "id": "s"}]))
                .as_deref(),
            Some("Step 2 has the id \"s\" of an earlier step; ids must differ.")
        );
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
            "Send the steps as a list, e.g. [{\"name\": \"fetch\", \"type\": \"http\"}]."
        );
        assert_eq!(
            workflow(json!(vec![json!({"name": "a", "type": "b"}); 201])),
            "Use at most 200 steps."
        );
        assert_eq!(
            workflow(json!([{"name": "n".repeat(101), "type": "b"}])),
            "Step 1 needs a \"name\" of 1 to 100 characters."
        );
        assert_eq!(
            workflow(json!([{"name": "a", "type": "b", "id": 7}])),
            "Step 1 needs its id as text."
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
