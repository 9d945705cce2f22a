-- Typed copies of the document fields clients filter on most (`currency`, `amount`), kept by the
-- page write, so a filter on them compares columns instead of reading every document it passes
-- (docs/architecture.md, "Typed fields"; docs/performance.md). NULL when the document's value is
-- missing or of another JSON type, as the JSON-path reading treats it.
ALTER TABLE records ADD COLUMN f_currency TEXT;
ALTER TABLE records ADD COLUMN f_amount NUMERIC;
UPDATE records SET
    f_currency = CASE WHEN jsonb_typeof(document -> 'currency') = 'string' THEN document ->> 'currency' END,
    f_amount = CASE WHEN jsonb_typeof(document -> 'amount') = 'number' THEN (document -> 'amount')::numeric END;
