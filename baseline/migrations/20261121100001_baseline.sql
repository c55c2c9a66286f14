-- The monolith's tables: the current state only, changed in place. They live in a schema of
-- their own, so that infra/sqlx-prepare can describe the baseline's checked queries in the
-- same scratch database as Tidemark's, whose tables have the same names.
CREATE SCHEMA IF NOT EXISTS baseline;
CREATE TABLE IF NOT EXISTS baseline.accounts (
    id         UUID PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS baseline.opportunities (
    id         UUID PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    account_id UUID NOT NULL REFERENCES baseline.accounts (id),
    name       TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    team_id    TEXT,
    amount     NUMERIC NOT NULL,
    currency   TEXT NOT NULL,
    close_date DATE NOT NULL,
    stage      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS opportunities_by_owner ON baseline.opportunities (tenant_id, owner_id, id);
CREATE INDEX IF NOT EXISTS opportunities_by_team ON baseline.opportunities (tenant_id, team_id);
CREATE TABLE IF NOT EXISTS baseline.quotes (
    id         UUID PRIMARY KEY,
    opportunity_id UUID NOT NULL REFERENCES baseline.opportunities (id),
    status     TEXT NOT NULL,
    net        NUMERIC NOT NULL,
    list       NUMERIC NOT NULL,
    discount_percent NUMERIC NOT NULL,
    lines      JSONB NOT NULL,
    submitted_by TEXT,
    submitted_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS quotes_by_opportunity ON baseline.quotes (opportunity_id);
-- One row per approval step; the lowest undecided step of a pending quote waits.
CREATE TABLE IF NOT EXISTS baseline.approval_steps (
    quote_id   UUID NOT NULL REFERENCES baseline.quotes (id),
    step       INT NOT NULL,
    approver   TEXT NOT NULL,
    team_id    TEXT,
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    PRIMARY KEY (quote_id, step)
);
CREATE INDEX IF NOT EXISTS approval_steps_waiting ON baseline.approval_steps (approver, team_id) WHERE decided_at IS NULL;
