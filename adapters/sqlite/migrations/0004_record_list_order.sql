-- PostgreSQL's 0004 rebuilds `records_created` so that it orders records as the list pages do:
-- creation time with NULLs first, ids by code point. SQLite's index of 0003 already does (NULLs sort
-- first, and text compares with the BINARY collation), so nothing changes here; the migration
-- exists so that both dialects' migrations carry the same numbers (docs/architecture.md).
SELECT 1;
