-- Quotas beyond V1: tokens per minute, a per-member monthly cap, the billing anchor day,
-- alert thresholds and an optional signed webhook for alerts.
ALTER TABLE organization_quotas ADD COLUMN rate_limit_tpm INTEGER;               -- NULL: unlimited
ALTER TABLE organization_quotas ADD COLUMN member_monthly_credits_micros INTEGER; -- NULL: no cap
ALTER TABLE organization_quotas ADD COLUMN billing_anchor_day INTEGER NOT NULL DEFAULT 1
    CHECK (billing_anchor_day BETWEEN 1 AND 28);
ALTER TABLE organization_quotas ADD COLUMN alert_thresholds TEXT NOT NULL DEFAULT '[80,90,100]'
    CHECK (json_valid(alert_thresholds));
ALTER TABLE organization_quotas ADD COLUMN webhook_url TEXT;
ALTER TABLE organization_quotas ADD COLUMN webhook_secret_enc TEXT;              -- sealed like provider keys
ALTER TABLE organization_quotas ADD COLUMN webhook_key_id TEXT;

-- Running totals per member and period, for the per-member cap and the usage breakdown.
CREATE TABLE member_usage (
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    period           TEXT NOT NULL,
    requests         INTEGER NOT NULL DEFAULT 0,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_micros      INTEGER NOT NULL DEFAULT 0,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, period, user_id)
);
