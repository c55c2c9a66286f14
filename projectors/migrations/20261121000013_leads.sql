-- Read model of the `leads` projection. name, email and phone are personal data.
CREATE TABLE IF NOT EXISTS leads (
    id                UUID PRIMARY KEY,
    tenant_id         TEXT        NOT NULL,
    name              TEXT        NOT NULL,
    company           TEXT        NOT NULL,
    email             TEXT,
    phone             TEXT,
    territory         TEXT        NOT NULL,
    segment           TEXT        NOT NULL,
    source            TEXT        NOT NULL,
    captured_at       TIMESTAMPTZ NOT NULL,
    owner_id          TEXT,
    team_id           TEXT,
    assigned_at       TIMESTAMPTZ,
    -- From capture to assignment, in milliseconds.
    assignment_latency_ms BIGINT,
    -- new | qualified | disqualified | converted
    status            TEXT        NOT NULL,
    disqualify_reason TEXT,
    account_id        UUID,
    contact_id        UUID,
    opportunity_id    UUID,
    version           BIGINT      NOT NULL,
    -- The lead as the domain folds it, for the projection to fold on.
    document          JSONB       NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_by_owner ON leads (tenant_id, owner_id, status, id);
CREATE INDEX IF NOT EXISTS leads_by_team ON leads (tenant_id, team_id, status, id);
