-- Platform aggregates. Timestamps are INTEGER microseconds since the Unix epoch (UTC) so that
-- comparisons and ordering are numeric.

CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created     INTEGER NOT NULL,
    last_sync   INTEGER
);
CREATE INDEX companies_created ON companies (created, id);

CREATE TABLE company_tags (
    company_id TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (company_id, key)
);
CREATE INDEX company_tags_key_value ON company_tags (key, value);

CREATE TABLE connections (
    id               TEXT PRIMARY KEY,
    company_id       TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    integration_key  TEXT NOT NULL,
    integration_id   TEXT NOT NULL,
    source_id        TEXT NOT NULL,
    platform_name    TEXT NOT NULL,
    source_type      TEXT NOT NULL,
    status           TEXT NOT NULL,
    created          INTEGER NOT NULL,
    last_sync        INTEGER,
    source_account   TEXT,
    grant_key_id     TEXT,
    grant_ciphertext TEXT,
    errors           TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX connections_company ON connections (company_id, created, id);
CREATE INDEX connections_source_account ON connections (source_account);

CREATE TABLE integration_settings (
    key                   TEXT PRIMARY KEY,
    client_id             TEXT,
    secret_key_key_id     TEXT,
    secret_key_ciphertext TEXT,
    webhook_key_id        TEXT,
    webhook_ciphertext    TEXT,
    scope                 TEXT NOT NULL,
    enabled               INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id      TEXT PRIMARY KEY,
    name    TEXT,
    hash    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);

CREATE TABLE instance (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    client_id     TEXT NOT NULL,
    profile       TEXT,
    sync_settings TEXT
);

CREATE TABLE company_sync_settings (
    company_id TEXT PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    settings   TEXT NOT NULL
);
