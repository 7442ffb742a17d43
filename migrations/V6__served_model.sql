-- The model the provider reported serving (an alias may resolve to a dated model), and
-- whether a price was found for the call: an unpriced call is counted as free and shown
-- as such, never silently.
ALTER TABLE usage_events ADD COLUMN served_model TEXT;
ALTER TABLE usage_events ADD COLUMN priced INTEGER NOT NULL DEFAULT 1;
UPDATE usage_events SET priced = 0 WHERE cost_micros = 0 AND input_tokens + output_tokens > 0;
