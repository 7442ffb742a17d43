//! Agent memory (the seed's MemoryService): the facts an agent keeps between
//! conversations. A member's own facts, or, for an agent with organization-wide memory,
//! facts shared by every member who may read the agent. Nobody reaches the facts of an
//! agent they cannot read, of another member, or of another organization.
use std::sync::Arc;

use serde_json::{Value, json};

use super::Services;
use super::models::{self, Models};
use crate::db::OrgContext;
use crate::db::repo::memory::{self as repo, Fact, Owner};
use crate::db::repo::resources::{self as resources, Fields, ResourceKind};
use crate::domain::resources::{Agent, MemoryMode};
use crate::domain::{Invalid, ResourceId};
use crate::error::{AppError, Result};

/// The most facts one owner keeps for one agent.
pub const MAX_FACTS: i64 = 200;
const MAX_KEY: usize = 100;
const MAX_VALUE: usize = 2000;

/// Whose facts a member works with for an agent in this mode.
pub fn owner_for(ctx: &OrgContext, mode: MemoryMode) -> Owner {
    match mode {
        MemoryMode::Organization => Owner::Organization,
        MemoryMode::Off | MemoryMode::PerUser => Owner::Member(ctx.user_id()),
    }
}

/// The agent, when the member may read it (404 otherwise).
pub(crate) fn readable_agent(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
) -> Result<Agent> {
    match resources::find_visible(c, ctx, ResourceKind::Agent, agent)? {
        Some(r) => match r.fields {
            Fields::Agent(a) => Ok(a),
            _ => Err(AppError::not_found()),
        },
        None => Err(AppError::not_found()),
    }
}

fn check(key: &str, value: &str) -> Result<(String, String)> {
    let mut errors = Vec::new();
    let key = key.trim();
    if key.is_empty() {
        errors.push(Invalid::new("key", "Name the fact."));
    } else if key.chars().count() > MAX_KEY {
        errors.push(Invalid::new("key", "Keep the key under 100 characters."));
    }
    let value = value.trim();
    if value.is_empty() {
        errors.push(Invalid::new("value", "Say what to remember."));
    } else if value.chars().count() > MAX_VALUE {
        errors.push(Invalid::new(
            "value",
            "Keep the value under 2000 characters.",
        ));
    }
    if errors.is_empty() {
        Ok((key.to_string(), value.to_string()))
    } else {
        Err(AppError::invalid(errors))
    }
}

/// The facts the member sees for an agent they may read.
pub async fn list(svc: &Services, ctx: &OrgContext, agent: ResourceId) -> Result<Vec<Fact>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let a = readable_agent(tx, &ctx, agent)?;
            Ok(repo::list(
                tx,
                &ctx,
                agent,
                owner_for(&ctx, a.memory),
                MAX_FACTS,
            )?)
        })
        .await
}

/// Remembers a fact (the same key replaces its value).
pub async fn put(
    svc: &Services,
    ctx: &OrgContext,
    agent: ResourceId,
    key: &str,
    value: &str,
) -> Result<Fact> {
    let (key, value) = check(key, value)?;
    let (ctx, now) = (ctx.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let a = readable_agent(tx, &ctx, agent)?;
            let owner = owner_for(&ctx, a.memory);
            let known = repo::list(tx, &ctx, agent, owner, MAX_FACTS)?;
            if known.len() as i64 >= MAX_FACTS && !known.iter().any(|f| f.key == key) {
                return Err(AppError::Unprocessable {
                    code: "memory_full",
                    message: format!(
                        "This agent keeps at most {MAX_FACTS} facts here; delete some first."
                    ),
                });
            }
            let id = repo::put(tx, &ctx, agent, owner, &key, &value, None, &now)?;
            repo::get(tx, &ctx, agent, owner, &id)?.ok_or_else(AppError::not_found)
        })
        .await
}

/// Changes a fact the member sees; absent fields keep their value.
pub async fn update(
    svc: &Services,
    ctx: &OrgContext,
    agent: ResourceId,
    id: String,
    key: Option<String>,
    value: Option<String>,
) -> Result<Fact> {
    let (ctx, now) = (ctx.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let a = readable_agent(tx, &ctx, agent)?;
            let owner = owner_for(&ctx, a.memory);
            let f = repo::get(tx, &ctx, agent, owner, &id)?.ok_or_else(AppError::not_found)?;
            let (key, value) = check(
                key.as_deref().unwrap_or(&f.key),
                value.as_deref().unwrap_or(&f.value),
            )?;
            if key != f.key
                && repo::list(tx, &ctx, agent, owner, MAX_FACTS)?
                    .iter()
                    .any(|o| o.key == key)
            {
                return Err(AppError::conflict(
                    "memory_key_taken",
                    "Another fact has this key.",
                ));
            }
            repo::update(tx, &ctx, &id, &key, &value, &now)?;
            repo::get(tx, &ctx, agent, owner, &id)?.ok_or_else(AppError::not_found)
        })
        .await
}

pub async fn delete(svc: &Services, ctx: &OrgContext, agent: ResourceId, id: String) -> Result<()> {
    let ctx = ctx.clone();
    svc.db
        .write(move |tx| {
            let a = readable_agent(tx, &ctx, agent)?;
            repo::get(tx, &ctx, agent, owner_for(&ctx, a.memory), &id)?
                .ok_or_else(AppError::not_found)?;
            repo::delete(tx, &ctx, &id)?;
            Ok(())
        })
        .await
}

/// The instruction of the extraction call: a JSON object of facts, nothing else.
const EXTRACTION_PROMPT: &str = "You keep notes about the user for future conversations. From the exchange below, list durable facts about the user or their preferences worth remembering. Answer with JSON only: {\"facts\": [{\"key\": \"short name\", \"value\": \"the fact\"}]}; an empty list when there is nothing.";

/// Reads the facts out of an extraction answer (JSON, possibly inside a code fence); what
/// does not read is ignored.
pub fn parse_facts(answer: &str) -> Vec<(String, String)> {
    let text = answer.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .map(|t| t.trim_end_matches("```"))
        .unwrap_or(text);
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
        return Vec::new();
    };
    v["facts"]
        .as_array()
        .map(|facts| {
            facts
                .iter()
                .filter_map(|f| {
                    let key = f["key"].as_str()?.trim();
                    let value = f["value"].as_str()?.trim();
                    check(key, value).ok()
                })
                .take(20)
                .collect()
        })
        .unwrap_or_default()
}

/// One question and its reply, the material of a memory extraction.
pub struct Exchange {
    pub agent: ResourceId,
    pub model: Option<String>,
    pub conversation: ResourceId,
    pub question: String,
    pub reply: String,
}

/// After a reply, when the agent asks for it: a second model call (metered as
/// `agent.memory`) extracts facts from the exchange, stored with the conversation as
/// their source. Failures are logged; the reply is already stored.
pub async fn extract_after_reply(
    svc: &Services,
    models: &Arc<Models>,
    ctx: &OrgContext,
    exchange: Exchange,
) {
    let Exchange {
        agent,
        model,
        conversation,
        question,
        reply,
    } = exchange;
    let messages = [
        json!({"role": "system", "content": EXTRACTION_PROMPT}),
        json!({"role": "user", "content": format!("User: {question}\nAssistant: {reply}")}),
    ];
    let answer = match models::chat(
        models,
        ctx,
        crate::domain::usage::AGENT_MEMORY,
        model.as_deref(),
        &messages,
        Some(512),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "memory extraction made no call");
            return;
        }
    };
    let facts = parse_facts(&answer.content);
    if facts.is_empty() {
        return;
    }
    let (ctx, now) = (ctx.clone(), svc.now_str());
    let stored = svc
        .db
        .write(move |tx| {
            let a = readable_agent(tx, &ctx, agent)?;
            if a.memory == MemoryMode::Off {
                return Ok::<_, AppError>(());
            }
            let owner = owner_for(&ctx, a.memory);
            for (k, v) in facts {
                repo::put(tx, &ctx, agent, owner, &k, &v, Some(conversation), &now)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "extracted facts were not stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracted_facts_are_read_from_json_even_in_a_code_fence() {
        let fenced = "```json\n{\"facts\": [{\"key\": \"name\", \"value\": \"Ada\"}, {\"key\": \"\", \"value\": \"x\"}]}\n```";
        assert_eq!(
            parse_facts(fenced),
            [("name".to_string(), "Ada".to_string())]
        );
        assert!(parse_facts("I have nothing to add.").is_empty());
        assert!(parse_facts("{\"facts\": \"none\"}").is_empty());
    }
}
