-- Single sign-on (OpenID Connect) per organization: the organization's provider, the email
-- domains routed to it, and the sign-ins under way.

-- One provider per organization. The client secret is sealed under the organization's data
-- key (like provider API keys) and named by the data key that sealed it; only a hint of it
-- is ever shown again.
CREATE TABLE sso_providers (
    organization_id   TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    issuer            TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    secret_ciphertext TEXT,
    secret_key_id     TEXT,
    secret_hint       TEXT,
    default_role      TEXT NOT NULL DEFAULT 'member'
                      CHECK (default_role IN ('admin', 'manager', 'member', 'viewer', 'guest')),
    sso_only          INTEGER NOT NULL DEFAULT 0 CHECK (sso_only IN (0, 1)),
    updated_at        TEXT NOT NULL,
    updated_by        TEXT REFERENCES users(id) ON DELETE SET NULL
);

-- The email domains whose people an organization's provider signs in. An email domain
-- routes to at most one organization, instance-wide (like an organization's slug), so this
-- is a routing table of the instance keyed by the domain, not a table of one tenant.
CREATE TABLE sso_domains (
    domain          TEXT PRIMARY KEY CHECK (domain = lower(domain) AND length(domain) > 0),
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE
);
CREATE INDEX sso_domains_by_org ON sso_domains (organization_id, domain);

-- A sign-in under way: created when the browser is sent to the provider, removed when it
-- comes back (so a state, and the code that came with it, is used once) or after it
-- expired. The state is stored as its SHA-256 only.
CREATE TABLE sso_logins (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    state_hash      TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    pkce_verifier   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (organization_id, state_hash)
);
CREATE INDEX sso_logins_by_expiry ON sso_logins (organization_id, expires_at);
