-- Commands the domain refused (or that met a newer version), for auditors: who asked for
-- what, under which command id, which rule refused it and why. Nothing of them reached the log.
CREATE TABLE IF NOT EXISTS rejected_commands (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    command_id     TEXT NOT NULL,
    rule           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rejected_commands_by_tenant ON rejected_commands (tenant_id, rejected_at DESC);

-- Every answer that showed personal fields (a contact's or a lead's name, email, phone):
-- who saw what, when.
CREATE TABLE IF NOT EXISTS personal_data_reads (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    target         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    read_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS personal_data_reads_by_tenant ON personal_data_reads (tenant_id, read_at DESC);
