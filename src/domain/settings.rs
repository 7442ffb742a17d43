//! An organization's settings document: known keys only, each checked.
use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrgSettings {
    /// How long an invitation link stays valid.
    pub invitation_ttl_days: u32,
    /// Audit rows older than this are purged (the purge itself is audited); None keeps all.
    pub audit_retention_days: Option<u32>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            invitation_ttl_days: 7,
            audit_retention_days: None,
        }
    }
}

impl OrgSettings {
    /// The stored document; anything unreadable counts as the defaults.
    pub fn from_stored(v: &serde_json::Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    /// Applies a partial update (`{"invitation_ttl_days": 3}`) on top of `self`. Every
    /// problem is reported, each setting's under `settings.<key>`.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Self, Vec<Invalid>> {
        let Some(obj) = patch.as_object() else {
            return Err(vec![Invalid::new(
                "settings",
                "Send the settings as an object, e.g. {\"invitation_ttl_days\": 7}.",
            )]);
        };
        let mut merged = self.clone();
        let mut errors = Vec::new();
        for (key, v) in obj {
            match key.as_str() {
                "invitation_ttl_days" => match whole(v).filter(|d| (1..=90).contains(d)) {
                    Some(d) => merged.invitation_ttl_days = d,
                    None => errors.push(Invalid::new(
                        "settings.invitation_ttl_days",
                        "Choose an invitation lifetime between 1 and 90 days.",
                    )),
                },
                "audit_retention_days" => match v {
                    serde_json::Value::Null => merged.audit_retention_days = None,
                    _ => match whole(v).filter(|d| (1..=36_500).contains(d)) {
                        Some(d) => merged.audit_retention_days = Some(d),
                        None => errors.push(Invalid::new(
                            "settings.audit_retention_days",
                            "Keep the audit log between 1 and 36500 days, or without a limit.",
                        )),
                    },
                },
                other => errors.push(Invalid::new(
                    "settings",
                    format!("There is no setting called \"{other}\"."),
                )),
            }
        }
        if errors.is_empty() {
            Ok(merged)
        } else {
            Err(errors)
        }
    }
}

/// A whole number of days as JSON (`7`, not `7.0` or `"7"`).
fn whole(v: &serde_json::Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_updates_merge_and_bad_values_are_refused() {
        let s = OrgSettings::default();
        let m = s.merged(&json!({"invitation_ttl_days": 3})).unwrap();
        assert_eq!(m.invitation_ttl_days, 3);
        assert_eq!(m.audit_retention_days, None);
        let m = m.merged(&json!({"audit_retention_days": 30})).unwrap();
        assert_eq!(
            (m.invitation_ttl_days, m.audit_retention_days),
            (3, Some(30))
        );
        assert!(s.merged(&json!({"invitation_ttl_days": 0})).is_err());
        assert!(s.merged(&json!({"invitation_ttl_days": "x"})).is_err());
        assert!(s.merged(&json!({"colour": "red"})).is_err());
        assert!(s.merged(&json!([1])).is_err());
        assert!(s.merged(&json!({"invitation_ttl_days": 1.5})).is_err());
        assert!(s.merged(&json!({"invitation_ttl_days": null})).is_err());
        assert_eq!(
            m.merged(&json!({"audit_retention_days": null}))
                .unwrap()
                .audit_retention_days,
            None
        );
        let both = s
            .merged(&json!({"invitation_ttl_days": 0, "audit_retention_days": 0}))
            .unwrap_err();
        let mut fields: Vec<&str> = both.iter().map(|e| e.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "settings.audit_retention_days",
                "settings.invitation_ttl_days"
            ],
            "every bad setting is reported"
        );
        assert_eq!(OrgSettings::from_stored(&json!({})), OrgSettings::default());
    }
}
