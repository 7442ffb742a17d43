-- Imports from a single-user install (`xagent import FILE`): each item of a user's data
-- that landed in their personal organization, by the identity it had in the file (its
-- `source_id`, or a hash of its content), so that importing the same file again imports
-- nothing twice. `resource_id` is the item made then; it may have been deleted since,
-- and stays imported.
CREATE TABLE import_ledger (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('agent', 'workflow', 'document', 'tool', 'knowledge_base', 'conversation')),
    source_id        TEXT NOT NULL,
    resource_id      TEXT NOT NULL,
    imported_at      TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id, kind, source_id)
);
