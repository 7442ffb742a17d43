-- In-app notifications (quota alerts first), per member of an organization.
CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    details          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    created_at       TEXT NOT NULL,
    read_at          TEXT,
    FOREIGN KEY (organization_id, user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX notifications_by_user ON notifications (organization_id, user_id, created_at);
