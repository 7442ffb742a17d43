-- Starting prices (micro-units of USD per million tokens) for common OpenAI models, so
-- that calls through the gateway have a cost before an administrator sets their own.
-- Models without a row cost 0. Existing rows are kept.
INSERT OR IGNORE INTO model_prices (model, input_micros_per_mtok, output_micros_per_mtok, updated_at) VALUES
    ('gpt-4o',                  2500000, 10000000, '2026-11-01T00:00:00Z'),
    ('gpt-4o-mini',              150000,   600000, '2026-11-01T00:00:00Z'),
    ('gpt-4.1',                 2000000,  8000000, '2026-11-01T00:00:00Z'),
    ('gpt-4.1-mini',             400000,  1600000, '2026-11-01T00:00:00Z'),
    ('gpt-4.1-nano',             100000,   400000, '2026-11-01T00:00:00Z'),
    ('o4-mini',                 1100000,  4400000, '2026-11-01T00:00:00Z'),
    ('text-embedding-3-small',    20000,        0, '2026-11-01T00:00:00Z'),
    ('text-embedding-3-large',   130000,        0, '2026-11-01T00:00:00Z');
