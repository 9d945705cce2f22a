-- Syncing: leases that give one worker at a time a connection, the commerce records pulled from
-- the source, and the checkpoint of each data type's backfill. Timestamps are TIMESTAMPTZ;
-- documents are JSONB, as in 0001.

CREATE TABLE sync_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    owner         TEXT NOT NULL,
    expires       TIMESTAMPTZ NOT NULL
);

-- `modified` is when Tributary last changed the row.
CREATE TABLE records (
    company_id      TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    connection_id   TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type       TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    document        JSONB NOT NULL,
    created         TIMESTAMPTZ,
    source_modified TIMESTAMPTZ,
    modified        TIMESTAMPTZ NOT NULL,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (connection_id, data_type, record_id)
);
CREATE INDEX records_created ON records (connection_id, data_type, created, record_id);
CREATE INDEX records_modified ON records (connection_id, data_type, modified);

CREATE TABLE sync_checkpoints (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type     TEXT NOT NULL,
    pull_id       TEXT NOT NULL,
    cursor        TEXT,
    pages         INTEGER NOT NULL,
    records       BIGINT NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
