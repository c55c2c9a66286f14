-- One key per data subject (a contact or a lead). Erasure destroys the key and keeps the
-- row, so that the subject's sealed values can never be read again and a new key is never
-- made for it.
CREATE TABLE personal_data_keys (
    tenant_id  text        NOT NULL,
    subject    text        NOT NULL,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    PRIMARY KEY (tenant_id, subject),
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
