-- The sequence rules in force (`tidemark_events::sequence::Rule` as JSON), loaded from the
-- configuration at start: the detector reads them here.
CREATE TABLE IF NOT EXISTS sequence_rules (
    name       TEXT PRIMARY KEY,
    definition JSONB NOT NULL
);

-- Read model of the `sequences` projection: each aggregate's version (for the fold rule),
-- and every event that rules may name, by event time and by what it is about.
CREATE TABLE IF NOT EXISTS sequence_sources (
    id        UUID PRIMARY KEY,
    tenant_id TEXT   NOT NULL,
    version   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sequence_occurrences (
    event_id       UUID PRIMARY KEY,
    aggregate_id   UUID        NOT NULL,
    tenant_id      TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    kind           TEXT,
    at             TIMESTAMPTZ NOT NULL,
    contact_id     UUID,
    opportunity_id UUID
);
CREATE INDEX IF NOT EXISTS sequence_occurrences_by_contact ON sequence_occurrences (tenant_id, contact_id, at);
CREATE INDEX IF NOT EXISTS sequence_occurrences_by_opportunity ON sequence_occurrences (tenant_id, opportunity_id, at);

-- Detections found and not yet recorded through the command API (an outbox): kept in the
-- batch's transaction, sent after it. Not a read model: a rebuild adds what it finds anew
-- and changes nothing here.
CREATE TABLE IF NOT EXISTS sequence_detections (
    id             UUID PRIMARY KEY,
    tenant_id      TEXT        NOT NULL,
    rule           TEXT        NOT NULL,
    first          JSONB       NOT NULL,
    "then"         JSONB       NOT NULL,
    contact_id     UUID,
    opportunity_id UUID,
    found_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts       INT         NOT NULL DEFAULT 0,
    -- When the command API answered, and how: `recorded`, `already` or the refusal.
    sent_at        TIMESTAMPTZ,
    outcome        TEXT
);
CREATE INDEX IF NOT EXISTS sequence_detections_to_send ON sequence_detections (found_at) WHERE sent_at IS NULL;

-- Read model of the `engagements` projection: every detected sequence, shown on its
-- opportunity.
CREATE TABLE IF NOT EXISTS engagement_detections (
    id             UUID PRIMARY KEY,
    tenant_id      TEXT        NOT NULL,
    rule           TEXT        NOT NULL,
    first          JSONB       NOT NULL,
    "then"         JSONB       NOT NULL,
    contact_id     UUID,
    opportunity_id UUID,
    rationale      TEXT,
    recorded_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS engagement_detections_by_opportunity ON engagement_detections (tenant_id, opportunity_id);
