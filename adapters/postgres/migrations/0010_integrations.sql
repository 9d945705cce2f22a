-- When Stripe last refused an integration's platform secret key (a wrong or rotated key): shown on
-- the integration, cleared by a new key or a pull that completes with it.
ALTER TABLE integration_settings ADD COLUMN key_refused_at TIMESTAMPTZ;
ALTER TABLE integration_settings ADD COLUMN key_refused_reason TEXT;

-- Ids of the webhook events received from Stripe, per integration, for three days: a replayed
-- event (valid signature, within its tolerance) is acknowledged without being processed again.
CREATE TABLE source_events (
    platform_key TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    received     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform_key, event_id)
);
CREATE INDEX source_events_received ON source_events (received);
