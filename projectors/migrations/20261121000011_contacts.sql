-- Read model of the `contacts` projection. name, email and phone are personal data: the
-- query API shows them only to those the policy lets see personal fields.
CREATE TABLE IF NOT EXISTS contacts (
    id         UUID PRIMARY KEY,
    tenant_id  TEXT        NOT NULL,
    account_id UUID,
    name       TEXT        NOT NULL,
    email      TEXT,
    phone      TEXT,
    title      TEXT,
    version    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_by_account ON contacts (tenant_id, account_id, id);
