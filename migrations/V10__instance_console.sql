-- The instance console: plan limits beyond V1, per-organization limit overrides, suspension
-- with its reason, a plan change whose fee waits for the next period, and model prices
-- with the date they take effect.

ALTER TABLE plans ADD COLUMN max_documents INTEGER;        -- NULL: unlimited
ALTER TABLE plans ADD COLUMN rate_limit_rpm INTEGER;       -- NULL: unlimited; an org's own quota is stricter

-- Limits an instance administrator set for one organization over its plan's: a JSON object
-- of limit name to a number, or to null for "unlimited". Absent names follow the plan.
ALTER TABLE organizations ADD COLUMN limit_overrides TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(limit_overrides));
ALTER TABLE organizations ADD COLUMN suspended_reason TEXT;
ALTER TABLE organizations ADD COLUMN suspended_at TEXT;
-- A plan change that applies to limits at once but to the fee only from the next period:
-- the invoice of `fee_plan_period` still charges `fee_plan`.
ALTER TABLE organizations ADD COLUMN fee_plan TEXT REFERENCES plans(id) ON DELETE SET NULL;
ALTER TABLE organizations ADD COLUMN fee_plan_period TEXT;

-- Prices by provider and model, each from a moment on. A call is charged the newest price
-- in effect at the time (usage rows keep what they were charged). provider '' is "any".
CREATE TABLE model_price_entries (
    id                       TEXT PRIMARY KEY,
    provider                 TEXT NOT NULL DEFAULT '',
    model                    TEXT NOT NULL,
    input_micros_per_mtok    INTEGER NOT NULL CHECK (input_micros_per_mtok >= 0),
    output_micros_per_mtok   INTEGER NOT NULL CHECK (output_micros_per_mtok >= 0),
    effective_from           TEXT NOT NULL,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    UNIQUE (provider, model, effective_from)
);

-- The prices set so far hold from the beginning. A name written "provider/model" keeps
-- meaning that provider's model (the lookup tries it under provider '').
INSERT INTO model_price_entries (id, provider, model, input_micros_per_mtok,
                                 output_micros_per_mtok, effective_from, created_at, updated_at)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-7' ||
       substr(lower(hex(randomblob(2))), 2) || '-' ||
       substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
       lower(hex(randomblob(6))),
       '', model, input_micros_per_mtok, output_micros_per_mtok,
       '2000-01-01T00:00:00.000000Z', updated_at, updated_at
FROM model_prices;

DROP TABLE model_prices;

-- One-time links that let a user set a new password (made by an instance administrator).
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX password_resets_by_user ON password_resets (user_id, created_at);
