-- When Stripe last refused an integration's platform secret key (a wrong or rotated key): shown on
-- the integration, cleared by a new key or a pull that completes with it.
ALTER TABLE integration_settings ADD COLUMN key_refused_at INTEGER;
ALTER TABLE integration_settings ADD COLUMN key_refused_reason TEXT;
