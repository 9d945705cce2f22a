-- Backfills in partitions fetched at the same time (issue: concurrent sync). A data type's
-- checkpoint now says whether its pull's backfill is under way; where each partition of it stands
-- is in `sync_partitions`, and items kept for a later stage of it (a product's prices) in
-- `sync_staging`.

-- A backfill interrupted before this version kept one cursor in a format no longer read: it
-- starts again (with a new change cursor).
DELETE FROM sync_checkpoints WHERE cursor IS NOT NULL;
ALTER TABLE sync_checkpoints ADD COLUMN backfilling BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sync_checkpoints DROP COLUMN cursor;
ALTER TABLE sync_checkpoints DROP COLUMN pages;
ALTER TABLE sync_checkpoints DROP COLUMN records;

CREATE TABLE sync_partitions (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type     TEXT NOT NULL,
    partition_id  INTEGER NOT NULL,
    stage         INTEGER NOT NULL,
    cursor        TEXT,
    records       BIGINT NOT NULL,
    done          BIGINT NOT NULL,
    remaining     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, data_type, partition_id)
);

CREATE TABLE sync_staging (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_type     TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (connection_id, data_type, item_key, item_id)
);
