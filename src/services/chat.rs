//! Chat with an agent (the seed's ChatProcessor and AgentFactory): the prompt is built
//! from the agent (system prompt, traits, skills), what it remembers, passages retrieved
//! from its knowledge bases and the conversation's history trimmed to the model's context
//! budget; the call goes through the one model path (`models`), and the question and the
//! reply are stored together once the reply is there, so a refused or failed call leaves
//! nothing behind.
use std::sync::Arc;

use serde_json::{Value, json};

use super::knowledge::{self, Knowledge, Passage};
use super::memory;
use super::metering::tokens::{Tokens, estimate_tokens};
use super::models::Models;
use super::{Actor, Services, fresh_context};
use crate::db::repo::audit;
use crate::db::repo::memory as memory_repo;
use crate::db::repo::resources::{self as repo, Citation, Fields, Message, ResourceKind};
use crate::db::{Conn, OrgContext};
use crate::domain::resources::{Agent, MemoryMode, Skill, Trait};
use crate::domain::{Invalid, MessageId, Micros, ResourceId, as_stored, fmt_time};
use crate::error::{AppError, Result};

/// The context window assumed for a model when the agent's `config.context_tokens` does
/// not say.
pub const DEFAULT_CONTEXT_TOKENS: i64 = 8192;
/// The reply length reserved when the agent's `config.max_tokens` does not say.
pub const DEFAULT_MAX_TOKENS: i64 = 1024;
/// Passages retrieved per question unless `config.retrieval_k` says otherwise.
pub const DEFAULT_RETRIEVAL_K: usize = 4;
/// History read from the database per turn before trimming.
const HISTORY_ROWS: i64 = 200;
/// The largest question.
pub const MAX_CONTENT: usize = 64 * 1024;

/// Everything a prompt is made of.
#[derive(Debug, Clone, Default)]
pub struct PromptParts<'a> {
    pub system_prompt: &'a str,
    pub traits: &'a [Trait],
    pub skills: &'a [Skill],
    pub memory: &'a [(String, String)],
    pub passages: &'a [Passage],
    pub history: &'a [Message],
    pub question: &'a str,
    /// Tokens the prompt may take (the context window less the reply's reserve).
    pub budget: i64,
}

/// The system message: the agent's prompt, then its traits, skills, memory and the
/// passages, each under a heading, in that order.
pub fn system_message(p: &PromptParts<'_>) -> String {
    let mut s = p.system_prompt.trim().to_string();
    let mut section = |title: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        if !s.is_empty() {
            s.push_str("\n\n");
        }
        s.push_str(title);
        for l in lines {
            s.push('\n');
            s.push_str(&l);
        }
    };
    let pair = |n: &str, v: &str| {
        if v.is_empty() {
            format!("- {n}")
        } else {
            format!("- {n}: {v}")
        }
    };
    section(
        "Personality traits:",
        p.traits.iter().map(|t| pair(&t.name, &t.value)).collect(),
    );
    section(
        "Skills:",
        p.skills.iter().map(|t| pair(&t.name, &t.level)).collect(),
    );
    section(
        "What you remember about this user:",
        p.memory.iter().map(|(k, v)| pair(k, v)).collect(),
    );
    section(
        "Passages from the knowledge base; answer from them where they apply and cite them as [n]:",
        p.passages
            .iter()
            .enumerate()
            .map(|(i, x)| {
                format!(
                    "[{}] {} (passage {}):\n{}",
                    i + 1,
                    x.document,
                    x.position + 1,
                    x.text.trim()
                )
            })
            .collect(),
    );
    s
}

/// The messages sent: the system message (never dropped), as much of the history as fits
/// the budget (the oldest turns go first), and the question.
pub fn build_prompt(p: &PromptParts<'_>) -> Vec<Value> {
    let system = system_message(p);
    let mut left = p.budget - estimate_tokens(system.len()) - estimate_tokens(p.question.len());
    let mut kept: Vec<&Message> = Vec::new();
    for m in p.history.iter().rev() {
        if m.role != "user" && m.role != "assistant" {
            continue;
        }
        let cost = estimate_tokens(m.content.len()) + 4;
        if cost > left {
            break;
        }
        left -= cost;
        kept.push(m);
    }
    kept.reverse();
    let mut out = Vec::with_capacity(kept.len() + 2);
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    out.extend(
        kept.into_iter()
            .map(|m| json!({"role": m.role, "content": m.content})),
    );
    out.push(json!({"role": "user", "content": p.question}));
    out
}

fn config_int(a: &Agent, key: &str) -> Option<i64> {
    a.config.get(key).and_then(Value::as_i64).filter(|n| *n > 0)
}

/// One turn ready to be sent: the prompt, and what storing it needs.
pub struct Turn {
    pub ctx: OrgContext,
    pub conversation: ResourceId,
    pub agent_id: ResourceId,
    pub agent_name: String,
    pub model: Option<String>,
    pub max_tokens: i64,
    pub messages: Vec<Value>,
    pub passages: Vec<Passage>,
    pub question: String,
    pub asked_at: chrono::DateTime<chrono::Utc>,
    pub memory: MemoryMode,
    pub extraction: bool,
}

/// What a prompt takes from an agent.
pub struct AgentParts {
    pub agent_name: String,
    pub agent: Agent,
    pub traits: Vec<Trait>,
    pub skills: Vec<Skill>,
    pub memory: Vec<(String, String)>,
}

/// Reads an agent the member may read, with its traits, skills and the memory the member
/// sees; an agent that is not readable is 403 `agent_not_readable`.
pub fn read_agent(tx: &Conn<'_>, ctx: &OrgContext, agent_id: ResourceId) -> Result<AgentParts> {
    let agent = repo::find_visible(tx, ctx, ResourceKind::Agent, agent_id)?.ok_or_else(|| {
        AppError::Forbidden {
            code: "agent_not_readable",
            message: "You cannot use this agent.".into(),
        }
    })?;
    let Fields::Agent(a) = agent.fields else {
        return Err(AppError::not_found());
    };
    let memory = if a.memory == MemoryMode::Off {
        Vec::new()
    } else {
        memory_repo::list(
            tx,
            ctx,
            agent_id,
            memory::owner_for(ctx, a.memory),
            memory::MAX_FACTS,
        )?
        .into_iter()
        .map(|f| (f.key, f.value))
        .collect()
    };
    Ok(AgentParts {
        agent_name: agent.name,
        traits: repo::agent_traits(tx, ctx, agent_id)?,
        skills: repo::agent_skills(tx, ctx, agent_id)?,
        memory,
        agent: a,
    })
}

/// The passages an agent's knowledge bases give for a question (none without any).
pub async fn passages_for(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    a: &Agent,
    question: &str,
) -> Result<Vec<Passage>> {
    let bases: Vec<ResourceId> = a
        .knowledge_base_ids
        .iter()
        .filter_map(|id| ResourceId::parse(id))
        .collect();
    if bases.is_empty() {
        return Ok(Vec::new());
    }
    let top = config_int(a, "retrieval_k").map_or(DEFAULT_RETRIEVAL_K, |n| {
        usize::try_from(n)
            .unwrap_or(DEFAULT_RETRIEVAL_K)
            .min(knowledge::MAX_K)
    });
    let ask = knowledge::Ask {
        endpoint: crate::domain::usage::AGENT_RETRIEVAL,
        bases,
        query: question,
        top,
    };
    knowledge::retrieve(svc, models, k, ctx, ask).await
}

/// One question to an agent outside any conversation (a workflow step): the same prompt
/// as a chat turn without history, through the one model path, metered under `endpoint`.
pub async fn ask_agent(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    agent_id: ResourceId,
    question: &str,
    endpoint: &'static str,
) -> Result<super::models::Answer> {
    let parts = {
        let ctx = ctx.clone();
        svc.db
            .read(move |tx| read_agent(tx, &ctx, agent_id))
            .await?
    };
    let a = &parts.agent;
    let passages = passages_for(svc, models, k, ctx, a, question).await?;
    let context = config_int(a, "context_tokens").unwrap_or(DEFAULT_CONTEXT_TOKENS);
    let max_tokens = config_int(a, "max_tokens").unwrap_or(DEFAULT_MAX_TOKENS);
    let messages = build_prompt(&PromptParts {
        system_prompt: &a.system_prompt,
        traits: &parts.traits,
        skills: &parts.skills,
        memory: &parts.memory,
        passages: &passages,
        history: &[],
        question,
        budget: context - max_tokens,
    });
    let model = a.model.as_deref().filter(|m| !m.trim().is_empty());
    Ok(super::models::chat(models, ctx, endpoint, model, &messages, Some(max_tokens)).await?)
}

/// Reads the conversation, its agent, history and memory, retrieves passages, and builds
/// the prompt. Only a member who can read the conversation and its agent gets here.
pub async fn prepare(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    conversation: ResourceId,
    content: &str,
) -> Result<Turn> {
    let question = content.trim().to_string();
    if question.is_empty() {
        return Err(AppError::invalid(vec![Invalid::new(
            "content",
            "Write a message.",
        )]));
    }
    if content.len() > MAX_CONTENT {
        return Err(AppError::invalid(vec![Invalid::new(
            "content",
            "Keep the message under 64 KiB.",
        )]));
    }
    let asked_at = as_stored(svc.now());
    let (agent_id, parts, history) = {
        let ctx = ctx.clone();
        svc.db
            .read(move |tx| {
                let conv = repo::find_visible(tx, &ctx, ResourceKind::Conversation, conversation)?
                    .ok_or_else(AppError::not_found)?;
                let agent_id = match &conv.fields {
                    Fields::Conversation(c) => c.agent_id.as_deref().and_then(ResourceId::parse),
                    _ => None,
                }
                .ok_or_else(|| AppError::Unprocessable {
                    code: "no_agent",
                    message: "This conversation has no agent to answer; choose one first.".into(),
                })?;
                let parts = read_agent(tx, &ctx, agent_id).map_err(|e| match e {
                    AppError::Forbidden { code, .. } => AppError::Forbidden {
                        code,
                        message: "You cannot use this conversation's agent.".into(),
                    },
                    e => e,
                })?;
                let history = repo::recent_messages(tx, &ctx, conversation, HISTORY_ROWS)?;
                Ok::<_, AppError>((agent_id, parts, history))
            })
            .await?
    };
    let a = &parts.agent;
    let passages = passages_for(svc, models, k, ctx, a, &question).await?;
    let context = config_int(a, "context_tokens").unwrap_or(DEFAULT_CONTEXT_TOKENS);
    let max_tokens = config_int(a, "max_tokens").unwrap_or(DEFAULT_MAX_TOKENS);
    let messages = build_prompt(&PromptParts {
        system_prompt: &a.system_prompt,
        traits: &parts.traits,
        skills: &parts.skills,
        memory: &parts.memory,
        passages: &passages,
        history: &history,
        question: &question,
        budget: context - max_tokens,
    });
    Ok(Turn {
        ctx: ctx.clone(),
        conversation,
        agent_id,
        agent_name: parts.agent_name.clone(),
        model: a.model.clone().filter(|m| !m.trim().is_empty()),
        max_tokens,
        messages,
        passages,
        question,
        asked_at,
        memory: a.memory,
        extraction: a.memory_extraction,
    })
}

/// What the model answered, whole or in part.
pub struct Replied {
    pub content: String,
    pub tokens: Tokens,
    pub cost: Micros,
    pub model: String,
    pub complete: bool,
}

/// Stores the question and the reply in one write job, with one audit row; the member
/// must still be able to read the conversation.
pub async fn store(
    svc: &Services,
    actor: &Actor,
    turn: &Turn,
    replied: Replied,
) -> Result<(Message, Message)> {
    let ctx = turn.ctx.clone();
    let actor = actor.clone();
    let conversation = turn.conversation;
    let question = Message {
        id: MessageId::new(),
        role: "user".into(),
        content: turn.question.clone(),
        user_id: Some(ctx.user_id()),
        created_at: turn.asked_at,
        input_tokens: 0,
        output_tokens: 0,
        cost_micros: Micros::ZERO,
        model: None,
        citations: Vec::new(),
        complete: true,
    };
    let replied_at = as_stored(svc.now()).max(turn.asked_at);
    let reply = Message {
        id: MessageId::new(),
        role: "assistant".into(),
        content: replied.content,
        user_id: None,
        created_at: replied_at,
        input_tokens: replied.tokens.input,
        output_tokens: replied.tokens.output,
        cost_micros: replied.cost,
        model: Some(replied.model),
        citations: turn
            .passages
            .iter()
            .map(Passage::citation)
            .collect::<Vec<Citation>>(),
        complete: replied.complete,
    };
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            repo::find_visible(tx, &me, ResourceKind::Conversation, conversation)?
                .ok_or_else(AppError::not_found)?;
            repo::add_message(
                tx,
                &me,
                conversation,
                &question,
                &fmt_time(question.created_at),
            )?;
            repo::add_message(tx, &me, conversation, &reply, &fmt_time(reply.created_at))?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "conversation.message_added",
                    "conversation",
                    Some(conversation.to_string()),
                    json!({
                        "message_id": question.id,
                        "reply_id": reply.id,
                        "model": reply.model,
                        "input_tokens": reply.input_tokens,
                        "output_tokens": reply.output_tokens,
                        "cost_micros": reply.cost_micros,
                        "complete": reply.complete,
                        "passages": reply.citations.len(),
                    }),
                ),
                &fmt_time(reply.created_at),
            )?;
            Ok((question, reply))
        })
        .await
}

/// After a stored reply: the optional memory extraction, in the background.
pub fn after_reply(svc: &Services, models: &Arc<Models>, turn: &Turn, reply: &Message) {
    if !turn.extraction || turn.memory == MemoryMode::Off || !reply.complete {
        return;
    }
    let (svc, models, ctx) = (svc.clone(), models.clone(), turn.ctx.clone());
    let exchange = memory::Exchange {
        agent: turn.agent_id,
        model: turn.model.clone(),
        conversation: turn.conversation,
        question: turn.question.clone(),
        reply: reply.content.clone(),
    };
    tokio::spawn(async move {
        memory::extract_after_reply(&svc, &models, &ctx, exchange).await;
    });
}

/// One whole turn without streaming.
pub async fn post(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    actor: &Actor,
    conversation: ResourceId,
    content: &str,
) -> Result<(Message, Message)> {
    let turn = prepare(svc, models, k, ctx, conversation, content).await?;
    let answer = super::models::chat(
        models,
        ctx,
        crate::domain::usage::AGENT_CHAT,
        turn.model.as_deref(),
        &turn.messages,
        Some(turn.max_tokens),
    )
    .await?;
    let stored = store(
        svc,
        actor,
        &turn,
        Replied {
            content: answer.content,
            tokens: answer.tokens,
            cost: answer.cost,
            model: answer.model,
            complete: true,
        },
    )
    .await?;
    after_reply(svc, models, &turn, &stored.1);
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Message {
        Message {
            id: MessageId::new(),
            role: role.into(),
            content: content.into(),
            user_id: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros: Micros::ZERO,
            model: None,
            citations: Vec::new(),
            complete: true,
        }
    }

    #[test]
    fn the_prompt_holds_the_agent_memory_passages_history_and_question_in_order() {
        let traits = [Trait {
            name: "curious".into(),
            value: "high".into(),
        }];
        let skills = [Skill {
            name: "sql".into(),
            level: String::new(),
        }];
        let memory = [("name".to_string(), "Ada".to_string())];
        let passages = [Passage {
            chunk_id: 7,
            knowledge_base_id: ResourceId::new(),
            document_id: ResourceId::new(),
            document: "handbook".into(),
            text: " Refunds take 5 days. ".into(),
            score: 0.9,
            position: 2,
        }];
        let history = [message("user", "hi"), message("assistant", "hello")];
        let prompt = build_prompt(&PromptParts {
            system_prompt: "You help. ",
            traits: &traits,
            skills: &skills,
            memory: &memory,
            passages: &passages,
            history: &history,
            question: "How long do refunds take?",
            budget: 1000,
        });
        assert_eq!(
            prompt,
            vec![
                json!({"role": "system", "content": "You help.\n\nPersonality traits:\n- curious: high\n\nSkills:\n- sql\n\nWhat you remember about this user:\n- name: Ada\n\nPassages from the knowledge base; answer from them where they apply and cite them as [n]:\n[1] handbook (passage 3):\nRefunds take 5 days."}),
                json!({"role": "user", "content": "hi"}),
                json!({"role": "assistant", "content": "hello"}),
                json!({"role": "user", "content": "How long do refunds take?"}),
            ]
        );
    }

    #[test]
    fn the_oldest_turns_are_dropped_to_fit_the_budget_never_the_system_prompt() {
        let long = "x".repeat(400); // 100 tokens + 4 each
        let history = [
            message("user", &format!("first {long}")),
            message("assistant", &format!("second {long}")),
            message("user", &format!("third {long}")),
        ];
        let parts = PromptParts {
            system_prompt: &"s".repeat(4000), // 1000 tokens
            history: &history,
            question: "q?",
            budget: 1000 + 1 + 2 * 106,
            ..Default::default()
        };
        let prompt = build_prompt(&parts);
        let texts: Vec<&str> = prompt
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(texts.len(), 4, "system, two newest turns, question");
        assert!(texts[1].starts_with("second"));
        assert!(texts[2].starts_with("third"));
        let tiny = build_prompt(&PromptParts {
            budget: 10,
            ..parts
        });
        assert_eq!(tiny.len(), 2, "only the system prompt and the question");
        assert_eq!(tiny[0]["role"], "system");
    }
}
