-- Commerce reads: a version per (connection, data type) that every write changing its records
-- moves, so that exact counts can be kept until it moves; and an index that answers "has this
-- data type been requested, and has a pull of it completed" without reading the history.
CREATE TABLE record_versions (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type     TEXT NOT NULL,
    version       INTEGER NOT NULL,
    PRIMARY KEY (connection_id, data_type)
);
CREATE INDEX pull_operations_readiness ON pull_operations (connection_id, data_type, status);
