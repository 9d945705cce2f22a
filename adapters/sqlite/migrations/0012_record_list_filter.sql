-- The list index also carries what the most common filters read: the deleted flag and the typed
-- fields (0011). A filtered page walks the index in list order as before, and SQLite evaluates
-- `NOT deleted`, `f_currency = …` and `f_amount > …` on each index entry before it seeks the
-- table row, so only matching records are read from the table (a page of
-- `currency=GBP && amount>5000` read ~1,000 records to return 100). Widening the index the page
-- write already maintains costs the sync far less than a separate index on the typed fields
-- (docs/performance.md).

DROP INDEX records_created;
CREATE INDEX records_created ON records (connection_id, data_type, created, record_id, deleted, f_currency, f_amount);
