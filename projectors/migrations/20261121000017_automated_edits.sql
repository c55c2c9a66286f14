-- Read model of the `automated_edits` projection: every event an automation appended, with
-- its rationale, for auditors. `automated_edit_streams` holds the version of each aggregate
-- the projection has seen, for the fold rule (most events are not automated).
CREATE TABLE IF NOT EXISTS automated_edits (
    event_id          UUID PRIMARY KEY,
    tenant_id         TEXT        NOT NULL,
    aggregate_type    TEXT        NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL,
    event_type        TEXT        NOT NULL,
    actor_id          TEXT        NOT NULL,
    client_id         TEXT        NOT NULL,
    command_id        TEXT        NOT NULL,
    correlation_id    TEXT        NOT NULL,
    causation_id      TEXT,
    rationale         TEXT,
    policy_version    TEXT        NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS automated_edits_newest ON automated_edits (tenant_id, recorded_at DESC);

CREATE TABLE IF NOT EXISTS automated_edit_streams (
    id      UUID PRIMARY KEY,
    version BIGINT NOT NULL
);
