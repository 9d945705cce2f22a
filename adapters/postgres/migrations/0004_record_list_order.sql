-- Record lists page in the order (created ASC NULLS FIRST, record_id), with ids compared by code
-- point as SQLite compares them. The index from 0003 sorts NULLs last and ids by the database's
-- collation, so it could not serve that order without a sort; this one serves it read forwards
-- (and `-createdDate`, read backwards).

DROP INDEX records_created;
CREATE INDEX records_created ON records (connection_id, data_type, created ASC NULLS FIRST, record_id COLLATE "C");
