//! The names usage records carry in `endpoint`: which kind of call spent the tokens.
//! Reports group by them, so they are a contract like the audit vocabulary.

/// `/v1/chat/completions` through the gateway.
pub const CHAT_COMPLETIONS: &str = "chat.completions";
/// `/v1/embeddings` through the gateway.
pub const EMBEDDINGS: &str = "embeddings";
/// A reply of an agent in a conversation.
pub const AGENT_CHAT: &str = "agent.chat";
/// Embedding the question of a chat turn to retrieve passages for it.
pub const AGENT_RETRIEVAL: &str = "agent.retrieval";
/// The optional extraction of facts to remember after a reply.
pub const AGENT_MEMORY: &str = "agent.memory";
/// Embedding document chunks while a knowledge base indexes them.
pub const KNOWLEDGE_EMBEDDINGS: &str = "knowledge.embeddings";
/// Embedding the query of a knowledge-base search.
pub const KNOWLEDGE_SEARCH: &str = "knowledge.search";
/// An agent step of a workflow run.
pub const WORKFLOW_STEP: &str = "workflow.step";

/// Every endpoint name, for documentation and for tests.
pub const ENDPOINTS: &[&str] = &[
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    AGENT_CHAT,
    AGENT_RETRIEVAL,
    AGENT_MEMORY,
    KNOWLEDGE_EMBEDDINGS,
    KNOWLEDGE_SEARCH,
    WORKFLOW_STEP,
];
