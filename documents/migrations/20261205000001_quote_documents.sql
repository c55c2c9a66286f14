-- The document of each approved quote revision, rendered once and kept. Not a read model:
-- a rebuild of `quote_documents` renders only the revisions that have none here.
CREATE TABLE IF NOT EXISTS quote_documents (
    tenant_id      TEXT        NOT NULL,
    quote_id       UUID        NOT NULL,
    revision       INT         NOT NULL,
    opportunity_id UUID        NOT NULL,
    pdf            BYTEA       NOT NULL,
    -- The people the document names: erasing one of them deletes it.
    contact_ids    UUID[]      NOT NULL,
    code_version   TEXT        NOT NULL,
    -- `approval` (the consumer, when the revision was approved) or `request` (on demand).
    rendered_for   TEXT        NOT NULL,
    rendered_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quote_id, revision)
);
CREATE INDEX IF NOT EXISTS quote_documents_by_contact ON quote_documents USING gin (contact_ids);
