-- Linking (OAuth states waiting for their callback) and pull operations (Codat's datasets).
-- Timestamps are TIMESTAMPTZ, as in 0001.

CREATE TABLE oauth_states (
    nonce         TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    expires       TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires);
CREATE INDEX oauth_states_connection ON oauth_states (connection_id);

CREATE TABLE pull_operations (
    id                 TEXT PRIMARY KEY,
    company_id         TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    connection_id      TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type          TEXT NOT NULL,
    status             TEXT NOT NULL,
    status_description TEXT,
    error_message      TEXT,
    requested          TIMESTAMPTZ NOT NULL,
    completed          TIMESTAMPTZ,
    progress           INTEGER NOT NULL
);
CREATE INDEX pull_operations_company ON pull_operations (company_id, requested, id);
CREATE INDEX pull_operations_connection ON pull_operations (connection_id);
