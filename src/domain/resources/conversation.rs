//! Conversations: the agent they talk to (optional); their messages are kept in a table
//! of their own.
use serde::{Deserialize, Serialize};

use super::{
    Cell, ColumnReader, ResourceFields, ResourceKind, Sent, check_opt_text, opt_text_cell,
};
use crate::domain::Invalid;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ConversationFields)]
pub struct Conversation {
    #[schema(format = "uuid")]
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConversationInput)]
pub struct ConversationPatch {
    /// an agent of this organization the caller can read; null or blank: none
    #[serde(default)]
    #[schema(schema_with = crate::domain::schemas::agent_ref)]
    pub agent_id: Sent<Option<String>>,
}

impl ConversationPatch {
    /// The agent the patch points the conversation to, if any (blank clears it).
    pub fn agent(&self) -> Option<&str> {
        match &self.agent_id {
            Sent::Given(Some(a)) => Some(a.trim()).filter(|a| !a.is_empty()),
            _ => None,
        }
    }
}

impl ResourceFields for Conversation {
    const KIND: ResourceKind = ResourceKind::Conversation;
    const TABLE: &'static str = "conversations";
    const COLUMNS: &'static [&'static str] = &["agent_id"];
    /// Nothing: the agent is another item.
    const PUBLIC: &'static [&'static str] = &[];
    type Patch = ConversationPatch;

    fn validate(p: &ConversationPatch, errors: &mut Vec<Invalid>) {
        check_opt_text("agent_id", &p.agent_id, 64, errors);
    }

    fn to_row(p: &ConversationPatch) -> Vec<(&'static str, Cell)> {
        match &p.agent_id {
            Sent::Given(a) => vec![("agent_id", opt_text_cell(a.as_deref()))],
            Sent::Absent | Sent::Unreadable => Vec::new(),
        }
    }

    fn from_row<R: ColumnReader>(r: &mut R) -> Result<Self, R::Error> {
        Ok(Conversation {
            agent_id: r.opt_text()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cells, problem, problems};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_conversation_goes_to_its_row_and_back() {
        let p = ConversationPatch {
            agent_id: Sent::Given(Some(" a1 ".into())),
        };
        assert_eq!(p.agent(), Some("a1"));
        let back = Conversation::from_row(&mut Cells::of(Conversation::to_row(&p))).unwrap();
        assert_eq!(back.agent_id.as_deref(), Some("a1"));
        let mut errors = Vec::new();
        Conversation::validate(
            &ConversationPatch {
                agent_id: Sent::Given(Some("x".repeat(65))),
            },
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert!(
            Conversation {
                agent_id: back.agent_id
            }
            .public()
            .is_empty()
        );
    }

    #[test]
    fn a_conversation_patch_refuses_fields_it_does_not_have() {
        assert!(serde_json::from_value::<ConversationPatch>(json!({"messages": []})).is_err());
        assert_eq!(
            problems(
                ResourceKind::Conversation,
                json!({"agent_id": 5, "messages": []})
            ),
            [
                ("agent_id", "Send this as text.".to_string()),
                (
                    "body",
                    "\"messages\" is not a field of conversations.".into()
                ),
            ]
        );
    }

    #[test]
    fn a_conversations_agent_is_an_id_of_at_most_64_characters() {
        assert_eq!(
            problem(
                ResourceKind::Conversation,
                json!({"agent_id": "a".repeat(65)})
            ),
            "Use at most 64 characters."
        );
        assert!(problems(ResourceKind::Conversation, json!({"agent_id": null})).is_empty());
        assert_eq!(
            ConversationPatch {
                agent_id: Sent::Given(Some("  ".into()))
            }
            .agent(),
            None
        );
    }
}
