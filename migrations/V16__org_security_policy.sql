-- An organization's security policy (IP allowlist, session and token lifetimes, API rate
-- limit) as one JSON object, read with the organization on every request that enters it.
ALTER TABLE organizations ADD COLUMN security_policy TEXT NOT NULL DEFAULT '{}';
-- When an administrator ended a member's sessions in this organization: sessions made
-- before it are refused here (and only here).
ALTER TABLE organization_members ADD COLUMN sessions_revoked_at TEXT;
