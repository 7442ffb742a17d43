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

    /// Applies a partial update (`{"invitation_ttl_days": 3}`) on top of `self`.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Self, Invalid> {
        let obj = patch
            .as_object()
            .ok_or_else(|| Invalid::new("settings", "must be an object"))?;
        let mut base =
            serde_json::to_value(self).map_err(|e| Invalid::new("settings", e.to_string()))?;
        if let Some(b) = base.as_object_mut() {
            for (k, v) in obj {
                b.insert(k.clone(), v.clone());
            }
        }
        let merged: OrgSettings =
            serde_json::from_value(base).map_err(|e| Invalid::new("settings", e.to_string()))?;
        if !(1..=90).contains(&merged.invitation_ttl_days) {
            return Err(Invalid::new(
                "settings",
                "invitation_ttl_days must be between 1 and 90",
            ));
        }
        if merged
            .audit_retention_days
            .is_some_and(|d| !(1..=36_500).contains(&d))
        {
            return Err(Invalid::new(
                "settings",
                "audit_retention_days must be between 1 and 36500, or null",
            ));
        }
        Ok(merged)
    }
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
        assert_eq!(OrgSettings::from_stored(&json!({})), OrgSettings::default());
    }
}
