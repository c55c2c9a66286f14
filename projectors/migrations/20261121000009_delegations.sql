-- Read model of the `delegations` projection: who decides whose approval steps, when.
CREATE TABLE IF NOT EXISTS delegations (
    id              UUID PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    delegator       TEXT    NOT NULL,
    -- The delegator's roles and team when they delegated: the authority handed over.
    delegator_roles TEXT[]  NOT NULL,
    delegator_team  TEXT,
    delegate        TEXT    NOT NULL,
    valid_from      DATE    NOT NULL,
    valid_until     DATE    NOT NULL,
    revoked         BOOLEAN NOT NULL,
    version         BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS delegations_by_delegate ON delegations (tenant_id, delegate, valid_until);
