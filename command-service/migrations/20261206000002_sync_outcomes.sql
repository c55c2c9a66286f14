-- The outcome of every offline intent synced (`POST /v1/sync`), by its sender and key: a
-- batch sent again gets the same answers and changes nothing. Kept as long as the
-- opportunity's history, since a device may replay a batch long after.
CREATE TABLE IF NOT EXISTS sync_outcomes (
    tenant_id   TEXT        NOT NULL,
    actor_id    TEXT        NOT NULL,
    intent_key  TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    outcome     JSONB       NOT NULL,
    synced_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, actor_id, intent_key)
);
