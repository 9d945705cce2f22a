-- Webhooks to clients: consumers, the transactional event outbox, deliveries and attempts. The
-- same tables as SQLite's 0006; timestamps are TIMESTAMPTZ, lists and tag maps JSONB. Event bodies
-- are TEXT, not JSONB: they are sent byte for byte on every attempt.

CREATE TABLE webhook_consumers (
    id                TEXT PRIMARY KEY,
    url               TEXT NOT NULL,
    disabled          BOOLEAN NOT NULL DEFAULT FALSE,
    event_types       JSONB NOT NULL,         -- array of event type names
    company_tags      JSONB NOT NULL,         -- array of "key:value"
    secret_key_id     TEXT NOT NULL,
    secret_ciphertext TEXT NOT NULL,
    created           TIMESTAMPTZ NOT NULL,
    failing_since     TIMESTAMPTZ,
    disabled_reason   TEXT
);

-- Written in the transaction of the change that caused the event. No foreign key to companies:
-- company.deleted outlives its company.
CREATE TABLE webhook_events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    company_id   TEXT NOT NULL,
    company_tags JSONB NOT NULL,              -- object, for consumers' companyTags
    generated    TIMESTAMPTZ NOT NULL,
    body         TEXT NOT NULL,
    dispatched   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX webhook_events_undispatched ON webhook_events (seq) WHERE NOT dispatched;

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    event_seq    BIGINT NOT NULL REFERENCES webhook_events (seq) ON DELETE CASCADE,
    consumer_id  TEXT NOT NULL REFERENCES webhook_consumers (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,               -- Pending, Delivered, Failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt TIMESTAMPTZ,                 -- due time while Pending
    lease_owner  TEXT,
    lease_until  TIMESTAMPTZ,
    created      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_seq, consumer_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt, event_seq) WHERE status = 'Pending';
CREATE INDEX webhook_deliveries_consumer ON webhook_deliveries (consumer_id, status);

CREATE TABLE webhook_attempts (
    seq         BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    consumer_id TEXT NOT NULL REFERENCES webhook_consumers (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    number      INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status_code INTEGER,
    latency_ms  BIGINT NOT NULL,
    ok          BOOLEAN NOT NULL,
    error       TEXT
);
CREATE INDEX webhook_attempts_consumer ON webhook_attempts (consumer_id, seq);
