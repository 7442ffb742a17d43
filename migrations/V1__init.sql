-- xagent data model, version 1.
--
-- Conventions: ids are UUIDv7 text; times are RFC 3339 UTC text; money is integer
-- micro-units; JSON documents are TEXT checked with json_valid().
-- Tenant tables carry organization_id NOT NULL and every index on them starts with
-- organization_id, so that every query the tenancy layer issues is an index range
-- scan inside one organization (and the same shape a Postgres/Citus deployment
-- sharded by organization_id wants).

-- ---------------------------------------------------------------- instance

CREATE TABLE instance_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE plans (
    id                          TEXT PRIMARY KEY,
    name                        TEXT NOT NULL,
    max_agents                  INTEGER,          -- NULL: unlimited
    max_workflows               INTEGER,
    max_members                 INTEGER,
    max_storage_bytes           INTEGER,
    max_document_bytes          INTEGER,
    monthly_ai_credits_micros   INTEGER,
    price_monthly_micros        INTEGER NOT NULL DEFAULT 0,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);

INSERT INTO plans (id, name, max_agents, max_workflows, max_members, max_storage_bytes,
                   max_document_bytes, monthly_ai_credits_micros, price_monthly_micros,
                   created_at, updated_at) VALUES
    ('free',       'Free',       10,   10,   10,   104857600,    10485760,  5000000,      0,
     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
    ('team',       'Team',       200,  200,  100,  10737418240,  52428800,  200000000,    49000000,
     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
    ('enterprise', 'Enterprise', NULL, NULL, NULL, 1099511627776, 268435456, 10000000000, 499000000,
     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');

CREATE TABLE model_prices (
    model                    TEXT PRIMARY KEY,
    input_micros_per_mtok    INTEGER NOT NULL,   -- cost of one million input tokens
    output_micros_per_mtok   INTEGER NOT NULL,
    updated_at               TEXT NOT NULL
);

-- ---------------------------------------------------------------- identity

CREATE TABLE users (
    id                       TEXT PRIMARY KEY,
    email                    TEXT NOT NULL UNIQUE,       -- stored lower-cased
    name                     TEXT NOT NULL,
    password_hash            TEXT,                       -- argon2id PHC string
    is_superuser             INTEGER NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
    status                   TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    totp_secret_enc          TEXT,                       -- encrypted under the master key
    current_organization_id  TEXT REFERENCES organizations(id) ON DELETE SET NULL,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    last_login_at            TEXT
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL UNIQUE,                -- sha256 of the cookie value
    csrf_token      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,                       -- absolute expiry
    ip              TEXT,
    user_agent      TEXT,
    revoked_at      TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- ---------------------------------------------------------------- organizations

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('personal', 'team')),
    plan        TEXT NOT NULL DEFAULT 'free' REFERENCES plans(id),
    settings    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Envelope encryption: one data key per organization, wrapped by the master key.
CREATE TABLE organization_keys (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key_id           TEXT NOT NULL,
    wrapped_key      TEXT NOT NULL,
    master_key_id    TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, key_id)
);

CREATE TABLE organization_members (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'member', 'viewer', 'guest')),
    permissions      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(permissions)),
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    invited_by       TEXT REFERENCES users(id) ON DELETE SET NULL,
    joined_at        TEXT NOT NULL,
    last_active_at   TEXT,
    PRIMARY KEY (organization_id, user_id)
);
-- The membership check starts from the user: "which organizations may this user act in".
CREATE INDEX organization_members_by_user ON organization_members (user_id, organization_id);
CREATE INDEX organization_members_by_role ON organization_members (organization_id, role);

-- API tokens act in exactly one organization.
CREATE TABLE api_tokens (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    token_hint       TEXT NOT NULL,                      -- "xa_…abcd"
    created_at       TEXT NOT NULL,
    expires_at       TEXT,
    last_used_at     TEXT,
    revoked_at       TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at);
CREATE INDEX api_tokens_by_org ON api_tokens (organization_id, user_id);

CREATE TABLE organization_invitations (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'member', 'viewer', 'guest')),
    token_hash       TEXT NOT NULL UNIQUE,
    invited_by       TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    accepted_at      TEXT,
    accepted_by      TEXT REFERENCES users(id) ON DELETE SET NULL,
    cancelled_at     TEXT
);
CREATE INDEX organization_invitations_by_org ON organization_invitations (organization_id, created_at);

CREATE TABLE teams (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    created_by       TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (organization_id, name)
);

-- The composite foreign key makes "only members of that org" a database rule:
-- removing a member removes their team memberships with them.
CREATE TABLE team_members (
    organization_id  TEXT NOT NULL,
    team_id          TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    added_at         TEXT NOT NULL,
    PRIMARY KEY (organization_id, team_id, user_id),
    FOREIGN KEY (organization_id, user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_members_by_user ON team_members (organization_id, user_id, team_id);

-- ---------------------------------------------------------------- LLM keys, quota, usage

CREATE TABLE organization_llm_policy (
    organization_id   TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    allow_user_keys   INTEGER NOT NULL DEFAULT 0 CHECK (allow_user_keys IN (0, 1)),
    default_model     TEXT,
    allowed_models    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(allowed_models)),
    updated_by        TEXT REFERENCES users(id) ON DELETE SET NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE organization_llm_settings (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    base_url         TEXT,
    key_ciphertext   TEXT,                               -- AES-256-GCM under the org data key
    key_id           TEXT,                               -- which data key sealed it
    key_hint         TEXT,                               -- "sk-…abcd"
    enabled          INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    updated_by       TEXT REFERENCES users(id) ON DELETE SET NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, provider)
);

CREATE TABLE user_llm_settings (
    organization_id  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    base_url         TEXT,
    key_ciphertext   TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    key_hint         TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id, provider),
    FOREIGN KEY (organization_id, user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);

CREATE TABLE organization_quotas (
    organization_id          TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    monthly_credits_micros   INTEGER,                    -- NULL: the plan's credits
    monthly_requests         INTEGER,                    -- NULL: unlimited
    rate_limit_rpm           INTEGER,                    -- NULL: unlimited
    updated_by               TEXT REFERENCES users(id) ON DELETE SET NULL,
    updated_at               TEXT NOT NULL
);

-- Running totals for one organization and one billing period (YYYY-MM).
CREATE TABLE organization_usage (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    period           TEXT NOT NULL,
    requests         INTEGER NOT NULL DEFAULT 0,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_micros      INTEGER NOT NULL DEFAULT 0,
    alerts_sent      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(alerts_sent)),
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, period)
);

CREATE TABLE usage_events (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    api_token_id     TEXT REFERENCES api_tokens(id) ON DELETE SET NULL,
    endpoint         TEXT NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    key_source       TEXT NOT NULL,
    status_code      INTEGER NOT NULL,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_micros      INTEGER NOT NULL DEFAULT 0,
    latency_ms       INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);
CREATE INDEX usage_events_by_time ON usage_events (organization_id, created_at);
CREATE INDEX usage_events_by_user ON usage_events (organization_id, user_id, created_at);

CREATE TABLE invoices (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    period           TEXT NOT NULL,
    currency         TEXT NOT NULL DEFAULT 'USD',
    subtotal_micros  INTEGER NOT NULL,
    total_micros     INTEGER NOT NULL,
    line_items       TEXT NOT NULL CHECK (json_valid(line_items)),
    issued_at        TEXT NOT NULL,
    UNIQUE (organization_id, period)
);

-- ---------------------------------------------------------------- audit

-- Append-only and hash-chained per organization: hash = sha256(prev_hash || canonical row).
CREATE TABLE organization_audit_logs (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    at               TEXT NOT NULL,
    actor_id         TEXT,
    actor_email      TEXT,
    action           TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT,
    ip               TEXT,
    user_agent       TEXT,
    details          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    UNIQUE (organization_id, seq)
);
CREATE INDEX organization_audit_logs_by_time ON organization_audit_logs (organization_id, at);
CREATE INDEX organization_audit_logs_by_action ON organization_audit_logs (organization_id, action, at);
CREATE INDEX organization_audit_logs_by_actor ON organization_audit_logs (organization_id, actor_id, at);
CREATE INDEX organization_audit_logs_by_resource ON organization_audit_logs (organization_id, resource_type, resource_id);

CREATE TRIGGER organization_audit_logs_append_only
BEFORE UPDATE ON organization_audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- Events that belong to no organization: sign-in failures, instance settings,
-- organization deletion. Same chain, one chain for the instance.
CREATE TABLE instance_audit_logs (
    id             TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE,
    at             TEXT NOT NULL,
    actor_id       TEXT,
    actor_email    TEXT,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    ip             TEXT,
    user_agent     TEXT,
    details        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX instance_audit_logs_by_time ON instance_audit_logs (at);

CREATE TRIGGER instance_audit_logs_append_only
BEFORE UPDATE ON instance_audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- ---------------------------------------------------------------- resources
-- Every shareable resource: owner (user_id), visibility, and its shares in
-- resource_shares (users and teams). "version" backs optimistic concurrency.

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    model            TEXT,
    system_prompt    TEXT NOT NULL DEFAULT '',
    tools            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tools)),
    config           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX agents_by_owner ON agents (organization_id, user_id, created_at);
CREATE INDEX agents_by_visibility ON agents (organization_id, visibility, created_at);
CREATE INDEX agents_by_time ON agents (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX agents_public ON agents (created_at) WHERE visibility = 'public';

CREATE TABLE agent_personality_traits (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id         TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    trait            TEXT NOT NULL,
    value            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (organization_id, agent_id, position)
);

CREATE TABLE agent_skills (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id         TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    skill            TEXT NOT NULL,
    level            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (organization_id, agent_id, position)
);

CREATE TABLE workflows (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    steps            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(steps)),
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX workflows_by_owner ON workflows (organization_id, user_id, created_at);
CREATE INDEX workflows_by_visibility ON workflows (organization_id, visibility, created_at);
CREATE INDEX workflows_by_time ON workflows (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX workflows_public ON workflows (created_at) WHERE visibility = 'public';

CREATE TABLE uploaded_documents (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    filename         TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX uploaded_documents_by_owner ON uploaded_documents (organization_id, user_id, created_at);
CREATE INDEX uploaded_documents_by_visibility ON uploaded_documents (organization_id, visibility, created_at);
CREATE INDEX uploaded_documents_by_time ON uploaded_documents (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX uploaded_documents_public ON uploaded_documents (created_at) WHERE visibility = 'public';

-- The bytes live in the database so that one file is a complete backup; kept apart
-- from the metadata so listing documents never reads them.
CREATE TABLE document_contents (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    document_id      TEXT NOT NULL REFERENCES uploaded_documents(id) ON DELETE CASCADE,
    content          BLOB NOT NULL,
    PRIMARY KEY (organization_id, document_id)
);

CREATE TABLE tools (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    input_schema     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(input_schema)),
    config           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX tools_by_owner ON tools (organization_id, user_id, created_at);
CREATE INDEX tools_by_visibility ON tools (organization_id, visibility, created_at);
CREATE INDEX tools_by_time ON tools (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX tools_public ON tools (created_at) WHERE visibility = 'public';

CREATE TABLE knowledge_bases (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    embedding_model  TEXT,
    config           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX knowledge_bases_by_owner ON knowledge_bases (organization_id, user_id, created_at);
CREATE INDEX knowledge_bases_by_visibility ON knowledge_bases (organization_id, visibility, created_at);
CREATE INDEX knowledge_bases_by_time ON knowledge_bases (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX knowledge_bases_public ON knowledge_bases (created_at) WHERE visibility = 'public';

CREATE TABLE knowledge_base_documents (
    organization_id    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    knowledge_base_id  TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    document_id        TEXT NOT NULL REFERENCES uploaded_documents(id) ON DELETE CASCADE,
    added_at           TEXT NOT NULL,
    PRIMARY KEY (organization_id, knowledge_base_id, document_id)
);
CREATE INDEX knowledge_base_documents_by_document ON knowledge_base_documents (organization_id, document_id);

CREATE TABLE document_chunks (
    id                 TEXT PRIMARY KEY,
    organization_id    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    document_id        TEXT NOT NULL REFERENCES uploaded_documents(id) ON DELETE CASCADE,
    chunk_index        INTEGER NOT NULL,
    content            TEXT NOT NULL,
    embedding          BLOB,                              -- little-endian f32 vector
    embedding_model    TEXT,
    created_at         TEXT NOT NULL,
    UNIQUE (organization_id, document_id, chunk_index)
);

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    agent_id         TEXT REFERENCES agents(id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'organization', 'public')),
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX conversations_by_owner ON conversations (organization_id, user_id, created_at);
CREATE INDEX conversations_by_visibility ON conversations (organization_id, visibility, created_at);
CREATE INDEX conversations_by_time ON conversations (organization_id, created_at);
-- The public gallery is the one deliberate cross-organization read.
CREATE INDEX conversations_public ON conversations (created_at) WHERE visibility = 'public';

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id) ON DELETE SET NULL,
    role             TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content          TEXT NOT NULL,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (organization_id, conversation_id, created_at);

-- Explicit shares: the "shared_with" of every shareable resource, one row per
-- user or team, so that the visibility predicate is an indexed lookup.
CREATE TABLE resource_shares (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    resource_type    TEXT NOT NULL CHECK (resource_type IN ('agent', 'workflow', 'document', 'tool', 'knowledge_base', 'conversation')),
    resource_id      TEXT NOT NULL,
    principal_type   TEXT NOT NULL CHECK (principal_type IN ('user', 'team')),
    principal_id     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, resource_type, resource_id, principal_type, principal_id)
);
CREATE INDEX resource_shares_by_principal ON resource_shares (organization_id, principal_type, principal_id, resource_type, resource_id);
