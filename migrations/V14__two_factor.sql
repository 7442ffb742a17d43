-- Two-factor authentication (TOTP) and the organizations' "require two-factor" policy.

-- A user's TOTP secret, sealed under the data key of their personal organization (the
-- envelope encryption of provider keys: `key_org` and `key_id` name the data key, the
-- associated data binds the ciphertext to this user). `confirmed_at` is NULL while an
-- enrolment waits for its first code; `last_step` is the newest 30-second step a code
-- was accepted for, so no code is accepted twice.
CREATE TABLE user_totp (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    key_org        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key_id         TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    confirmed_at   TEXT,
    last_step      INTEGER,
    created_at     TEXT NOT NULL
);

-- One-time recovery codes (only their SHA-256 is stored).
CREATE TABLE user_recovery_codes (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX user_recovery_codes_by_user ON user_recovery_codes (user_id, code_hash);

-- "Require two-factor": members without it are refused the organization from
-- require_2fa_since + require_2fa_grace_days on. NULL: not required.
ALTER TABLE organizations ADD COLUMN require_2fa_since TEXT;
ALTER TABLE organizations ADD COLUMN require_2fa_grace_days INTEGER NOT NULL DEFAULT 0
    CHECK (require_2fa_grace_days BETWEEN 0 AND 365);
