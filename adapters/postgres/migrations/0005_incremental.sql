-- The incremental cursor a data type follows once its backfill is done (Stripe events).
ALTER TABLE sync_checkpoints ADD COLUMN incremental TEXT;
