-- Webhooks to clients: consumers, the transactional event outbox, deliveries and attempts.

CREATE TABLE webhook_consumers (
    id                TEXT PRIMARY KEY,
    url               TEXT NOT NULL,
    disabled          INTEGER NOT NULL DEFAULT 0,
    event_types       TEXT NOT NULL,          -- JSON array of event type names
    company_tags      TEXT NOT NULL,          -- JSON array of "key:value"
    secret_key_id     TEXT NOT NULL,
    secret_ciphertext TEXT NOT NULL,
    created           INTEGER NOT NULL,       -- unix microseconds
    failing_since     INTEGER,
    disabled_reason   TEXT
);

-- Written in the transaction of the change that caused the event. No foreign key to companies:
-- company.deleted outlives its company.
CREATE TABLE webhook_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    company_id   TEXT NOT NULL,
    company_tags TEXT NOT NULL,               -- JSON object, for consumers' companyTags
    generated    INTEGER NOT NULL,
    body         TEXT NOT NULL,
    dispatched   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_events_undispatched ON webhook_events (seq) WHERE dispatched = 0;

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    event_seq    INTEGER NOT NULL REFERENCES webhook_events (seq) ON DELETE CASCADE,
    consumer_id  TEXT NOT NULL REFERENCES webhook_consumers (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,               -- Pending, Delivered, Failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER,                     -- due time while Pending
    lease_owner  TEXT,
    lease_until  INTEGER,
    created      INTEGER NOT NULL,
    UNIQUE (event_seq, consumer_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt, event_seq) WHERE status = 'Pending';
CREATE INDEX webhook_deliveries_consumer ON webhook_deliveries (consumer_id, status);

CREATE TABLE webhook_attempts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    consumer_id TEXT NOT NULL REFERENCES webhook_consumers (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    number      INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX webhook_attempts_consumer ON webhook_attempts (consumer_id, seq);
