-- Read model of the `accounts` projection.
CREATE TABLE IF NOT EXISTS accounts (
    id         UUID PRIMARY KEY,
    tenant_id  TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    version    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_by_tenant ON accounts (tenant_id, id);
CREATE INDEX IF NOT EXISTS opportunities_by_account ON opportunities (tenant_id, account_id);
