-- Operator console sessions: only the SHA-256 of the cookie's token is stored; a session goes
-- with the API key that signed in.
CREATE TABLE console_sessions (
    hash       TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created    TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_api_key ON console_sessions (api_key_id);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);

-- The console's overview finds each connection's latest finished pull per data type by this index.
CREATE INDEX pull_operations_finished ON pull_operations (connection_id, data_type, completed);

-- "Deliver again" from the console: one more attempt, after which a failure ends the delivery.
ALTER TABLE webhook_deliveries ADD COLUMN final_attempt BOOLEAN NOT NULL DEFAULT false;

-- The metrics' backlog gauges count queued and running pulls and find the oldest queued one.
CREATE INDEX pull_operations_status ON pull_operations (status, requested);
