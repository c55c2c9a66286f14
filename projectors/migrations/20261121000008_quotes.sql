-- Quotes live inside their opportunity (with their approval history); the accepted quote
-- whose total the amount follows.
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS quotes JSONB NOT NULL DEFAULT '[]';
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS synced_quote_id UUID;

-- "My approvals": one row per quote step waiting for a decision, written by the
-- `opportunities` projection in the same transaction as the opportunity itself.
CREATE TABLE IF NOT EXISTS pending_approvals (
    quote_id                  UUID PRIMARY KEY,
    opportunity_id            UUID        NOT NULL,
    tenant_id                 TEXT        NOT NULL,
    opportunity_name          TEXT        NOT NULL,
    account_id                UUID        NOT NULL,
    owner_id                  TEXT        NOT NULL,
    revision                  INT         NOT NULL,
    step                      INT         NOT NULL,
    steps                     INT         NOT NULL,
    -- manager (of approver_team) or finance
    approver                  TEXT        NOT NULL,
    approver_team             TEXT,
    requested_by              TEXT        NOT NULL,
    submitted_at              TIMESTAMPTZ NOT NULL,
    waiting_since             TIMESTAMPTZ NOT NULL,
    currency                  TEXT        NOT NULL,
    list_amount               NUMERIC     NOT NULL,
    net_amount                NUMERIC     NOT NULL,
    discount_percent          NUMERIC     NOT NULL,
    max_line_discount_percent NUMERIC     NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_approvals_by_approver ON pending_approvals (tenant_id, approver, approver_team, waiting_since);
CREATE INDEX IF NOT EXISTS pending_approvals_by_opportunity ON pending_approvals (opportunity_id);
