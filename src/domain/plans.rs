//! Plan limits: what a plan allows, and an organization's overrides of single limits.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Invalid;

/// A plan's limits; `None` is "unlimited".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    #[serde(default)]
    #[schema(minimum = 0)]
    pub agents: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub workflows: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub members: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub documents: Option<i64>,
    /// Everything the organization's documents may take together.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub storage_bytes: Option<i64>,
    /// The largest single document.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub document_bytes: Option<i64>,
    /// AI credits per billing period, in micro-dollars.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub monthly_credits_micros: Option<i64>,
    /// Gateway requests per minute for the whole organization.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub rate_limit_rpm: Option<i64>,
}

/// The names of the limits, as the API and the override object spell them.
pub const LIMIT_NAMES: [&str; 8] = [
    "agents",
    "workflows",
    "members",
    "documents",
    "storage_bytes",
    "document_bytes",
    "monthly_credits_micros",
    "rate_limit_rpm",
];

impl PlanLimits {
    /// The monthly credits in dollars as a form shows them; empty when unlimited.
    pub fn credits_usd(&self) -> String {
        self.monthly_credits_micros
            .map(|m| super::Micros::new(m).usd())
            .unwrap_or_default()
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<i64>> {
        Some(match name {
            "agents" => &mut self.agents,
            "workflows" => &mut self.workflows,
            "members" => &mut self.members,
            "documents" => &mut self.documents,
            "storage_bytes" => &mut self.storage_bytes,
            "document_bytes" => &mut self.document_bytes,
            "monthly_credits_micros" => &mut self.monthly_credits_micros,
            "rate_limit_rpm" => &mut self.rate_limit_rpm,
            _ => return None,
        })
    }

    /// These limits with the stored overrides (a JSON object) applied; names it does not
    /// know and values that are not whole numbers are ignored.
    pub fn overridden_by(mut self, stored: &str) -> PlanLimits {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(stored) else {
            return self;
        };
        for (name, value) in map {
            let parsed = match value {
                Value::Null => Some(None),
                Value::Number(n) => n.as_i64().filter(|n| *n >= 0).map(Some),
                _ => None,
            };
            if let (Some(slot), Some(v)) = (self.slot(&name), parsed) {
                *slot = v;
            }
        }
        self
    }

    /// Every limit is absent or a number ≥ 0.
    pub fn check(&self) -> Vec<Invalid> {
        let l = self;
        let all = [
            l.agents,
            l.workflows,
            l.members,
            l.documents,
            l.storage_bytes,
            l.document_bytes,
            l.monthly_credits_micros,
            l.rate_limit_rpm,
        ];
        if all.iter().flatten().any(|v| *v < 0) {
            vec![Invalid::new(
                "limits",
                "Limits are whole numbers, 0 or more (or null: unlimited).",
            )]
        } else {
            Vec::new()
        }
    }
}

/// Overrides as sent: an object of limit name to a number ≥ 0 or null ("unlimited"),
/// merged over `current` (stored); a name mapped to the string "plan" removes the
/// override. Returns the object to store.
pub fn merge_overrides(current: &str, sent: &Map<String, Value>) -> Result<Value, Vec<Invalid>> {
    let mut out = match serde_json::from_str::<Value>(current) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut errors = Vec::new();
    for (name, value) in sent {
        if !LIMIT_NAMES.contains(&name.as_str()) {
            errors.push(Invalid::new(
                "limits",
                format!(
                    "There is no limit named {name:?}; limits are {}.",
                    LIMIT_NAMES.join(", ")
                ),
            ));
            continue;
        }
        match value {
            Value::String(s) if s == "plan" => {
                out.remove(name);
            }
            Value::Null => {
                out.insert(name.clone(), Value::Null);
            }
            Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => {
                out.insert(name.clone(), value.clone());
            }
            _ => errors.push(Invalid::new(
                "limits",
                format!("{name} must be a whole number ≥ 0, null (unlimited) or \"plan\"."),
            )),
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_single_limits_and_null_means_unlimited() {
        let plan = PlanLimits {
            agents: Some(10),
            members: Some(5),
            ..Default::default()
        };
        let got =
            plan.overridden_by(r#"{"agents": 50, "members": null, "bogus": 1, "documents": "x"}"#);
        assert_eq!(got.agents, Some(50));
        assert_eq!(got.members, None);
        assert_eq!(got.documents, None);
    }

    #[test]
    fn merging_keeps_earlier_overrides_and_plan_removes_one() {
        let sent: Map<String, Value> =
            serde_json::from_str(r#"{"agents": "plan", "workflows": 3}"#).unwrap();
        let merged = merge_overrides(r#"{"agents": 50, "members": 7}"#, &sent).unwrap();
        assert_eq!(merged, serde_json::json!({"members": 7, "workflows": 3}));
        let bad: Map<String, Value> = serde_json::from_str(r#"{"agents": -1, "nope": 1}"#).unwrap();
        assert_eq!(merge_overrides("{}", &bad).unwrap_err().len(), 2);
    }
}
