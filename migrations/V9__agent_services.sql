-- The agent services: what agents retrieve from and remember, what chat replies cost and
-- cite, knowledge-base indexing, agent memory and workflow runs.

-- Agents: the knowledge bases they answer from (ids, JSON like `tools`), their memory
-- mode, and whether facts are extracted after each reply (a second, metered model call).
ALTER TABLE agents ADD COLUMN knowledge_base_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(knowledge_base_ids));
ALTER TABLE agents ADD COLUMN memory TEXT NOT NULL DEFAULT 'off' CHECK (memory IN ('off', 'per_user', 'organization'));
ALTER TABLE agents ADD COLUMN memory_extraction INTEGER NOT NULL DEFAULT 0 CHECK (memory_extraction IN (0, 1));

-- Messages: what a reply cost, the model that wrote it, the passages it was given, and
-- whether it is whole (`partial`: the reader went away or the provider broke off).
ALTER TABLE messages ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN citations TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(citations));
ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial'));

-- A knowledge base's documents: where indexing stands. `requested_by` is the member whose
-- context the embeddings are made (and metered) in; `indexed_sha256` is the content the
-- chunks were made from, so that a changed document is indexed again and no other.
ALTER TABLE knowledge_base_documents ADD COLUMN status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'indexing', 'ready', 'failed'));
ALTER TABLE knowledge_base_documents ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE knowledge_base_documents ADD COLUMN embedded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE knowledge_base_documents ADD COLUMN error TEXT;
ALTER TABLE knowledge_base_documents ADD COLUMN indexed_sha256 TEXT;
ALTER TABLE knowledge_base_documents ADD COLUMN requested_by TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE knowledge_base_documents ADD COLUMN updated_at TEXT;
CREATE INDEX knowledge_base_documents_unfinished ON knowledge_base_documents (status, organization_id)
    WHERE status IN ('queued', 'indexing');

-- Chunks belong to a knowledge base (its embedding model made the vectors), not only to a
-- document, so the old per-document table (never written) goes. `id` is the vector
-- index's key.
DROP TABLE document_chunks;
CREATE TABLE kb_chunks (
    id                 INTEGER PRIMARY KEY,
    organization_id    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    knowledge_base_id  TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    document_id        TEXT NOT NULL REFERENCES uploaded_documents(id) ON DELETE CASCADE,
    position           INTEGER NOT NULL,
    content            TEXT NOT NULL,
    embedding          BLOB NOT NULL,          -- little-endian f32
    UNIQUE (organization_id, knowledge_base_id, document_id, position)
);

-- Facts an agent keeps between conversations: a member's own (`user_id`), or the
-- organization's (`user_id` NULL) for an agent with organization-wide memory.
CREATE TABLE agent_memories (
    id                      TEXT PRIMARY KEY,
    organization_id         TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id                TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    user_id                 TEXT REFERENCES users(id) ON DELETE CASCADE,
    key                     TEXT NOT NULL,
    value                   TEXT NOT NULL,
    created_by              TEXT REFERENCES users(id) ON DELETE SET NULL,
    source_conversation_id  TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE UNIQUE INDEX agent_memories_by_key ON agent_memories (organization_id, agent_id, COALESCE(user_id, ''), key);

-- Workflow runs: the steps as they were when the run started, where it stands, and one
-- row per step that ran.
CREATE TABLE workflow_runs (
    id                 TEXT PRIMARY KEY,
    organization_id    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    workflow_id        TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    user_id            TEXT REFERENCES users(id) ON DELETE SET NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    input              TEXT NOT NULL CHECK (json_valid(input)),
    steps              TEXT NOT NULL CHECK (json_valid(steps)),
    current_step       INTEGER,
    output             TEXT,
    error              TEXT,
    cancel_requested   INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT
);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (organization_id, workflow_id, created_at);
CREATE INDEX workflow_runs_unfinished ON workflow_runs (status, organization_id)
    WHERE status IN ('queued', 'running');

CREATE TABLE workflow_run_steps (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    run_id           TEXT NOT NULL REFERENCES workflow_runs(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'interrupted', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 1,
    input            TEXT,
    output           TEXT,
    error            TEXT,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_micros      INTEGER NOT NULL DEFAULT 0,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    duration_ms      INTEGER,
    PRIMARY KEY (organization_id, run_id, position)
);
