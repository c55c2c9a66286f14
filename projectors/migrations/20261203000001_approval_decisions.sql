-- The decided approval steps of every quote, one row each, written by the `opportunities`
-- projection in the same transaction as the opportunity: approval turnaround reads this
-- table rather than paths into the stored quotes.
CREATE TABLE IF NOT EXISTS approval_decisions (
    quote_id       UUID        NOT NULL,
    revision       INT         NOT NULL,
    step           INT         NOT NULL,
    opportunity_id UUID        NOT NULL,
    tenant_id      TEXT        NOT NULL,
    -- manager (of team) or finance
    approver       TEXT        NOT NULL,
    team           TEXT,
    -- approved or rejected
    decision       TEXT        NOT NULL,
    decided_by     TEXT        NOT NULL,
    on_behalf_of   TEXT,
    comment        TEXT,
    requested_at   TIMESTAMPTZ NOT NULL,
    decided_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (quote_id, revision, step)
);
CREATE INDEX IF NOT EXISTS approval_decisions_by_tenant ON approval_decisions (tenant_id, approver, team);
CREATE INDEX IF NOT EXISTS approval_decisions_by_opportunity ON approval_decisions (opportunity_id);

-- Decisions already folded into the stored quotes.
INSERT INTO approval_decisions (quote_id, revision, step, opportunity_id, tenant_id, approver, team, decision, decided_by,
                                on_behalf_of, comment, requested_at, decided_at)
SELECT (q->>'id')::uuid, (h->>'revision')::int, (h->>'step')::int, o.id, o.tenant_id, h->>'approver', h->>'team', h->>'decision',
       h->>'decided_by', h->>'on_behalf_of', h->>'comment', (h->>'requested_at')::timestamptz, (h->>'decided_at')::timestamptz
FROM opportunities o, jsonb_array_elements(o.quotes) q, jsonb_array_elements(q->'history') h
ON CONFLICT DO NOTHING;
