-- Outgoing webhook deliveries (quota alerts), retried with backoff until delivered or
-- given up; their status is visible to the organization.
CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    event             TEXT NOT NULL,
    url               TEXT NOT NULL,
    payload           TEXT NOT NULL CHECK (json_valid(payload)),
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        TEXT NOT NULL,
    delivered_at      TEXT
);
CREATE INDEX webhook_deliveries_by_org ON webhook_deliveries (organization_id, created_at);
-- Deliberately cross-tenant: the delivery worker looks for due rows of every organization.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
