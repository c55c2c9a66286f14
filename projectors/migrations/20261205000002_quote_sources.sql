-- Read model of the `quote_documents` projection: what the document of each approved quote
-- revision is made from. The documents themselves are kept in `quote_documents`.
CREATE TABLE IF NOT EXISTS quote_sources (
    id          UUID PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    account_id  UUID   NOT NULL,
    owner_id    TEXT   NOT NULL,
    team_id     TEXT,
    shared_with JSONB  NOT NULL,
    -- The opportunity's name and creation, and each quote now with its revision's events.
    source      JSONB  NOT NULL
);

-- Each approved revision as it stood when approved, whatever the quote became after.
CREATE TABLE IF NOT EXISTS approved_quote_revisions (
    quote_id       UUID        NOT NULL,
    revision       INT         NOT NULL,
    tenant_id      TEXT        NOT NULL,
    opportunity_id UUID        NOT NULL,
    approved_at    TIMESTAMPTZ NOT NULL,
    quote          JSONB       NOT NULL,
    events         JSONB       NOT NULL,
    PRIMARY KEY (quote_id, revision)
);
CREATE INDEX IF NOT EXISTS approved_quote_revisions_by_opportunity ON approved_quote_revisions (opportunity_id);
