-- Where each projection stands in each partition. Written in the same transaction as the
-- rows it changed, so a crash can neither lose nor double an effect.
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection   TEXT   NOT NULL,
    topic        TEXT   NOT NULL,
    partition    INT    NOT NULL,
    -- Every record below this offset is reflected in the projection's tables.
    next_offset  BIGINT NOT NULL DEFAULT 0,
    -- The highest fence marker seen in the partition (see the fold rule).
    fence_epoch  BIGINT NOT NULL DEFAULT 0,
    -- The last moment the projection was known to have applied everything in the
    -- partition; whatever it has not applied yet was appended after this.
    caught_up_at TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Records a projection could not decode or apply, with the reason; never silently dropped.
CREATE TABLE IF NOT EXISTS quarantine (
    id             BIGSERIAL PRIMARY KEY,
    projection     TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    partition      INT    NOT NULL,
    "offset"       BIGINT NOT NULL,
    key            TEXT,
    reason         TEXT   NOT NULL,
    payload        BYTEA,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (projection, topic, partition, "offset")
);

-- Read model of the `opportunities` projection: one row per opportunity.
CREATE TABLE IF NOT EXISTS opportunities (
    id           UUID PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    account_id   UUID    NOT NULL,
    name         TEXT    NOT NULL,
    owner_id     TEXT    NOT NULL,
    amount       NUMERIC NOT NULL,
    currency     TEXT    NOT NULL,
    close_date   DATE    NOT NULL,
    stage        TEXT    NOT NULL,
    probability  INT     NOT NULL,
    close_reason TEXT,
    version      BIGINT  NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS opportunities_by_owner ON opportunities (tenant_id, owner_id, stage, id);
CREATE INDEX IF NOT EXISTS opportunities_by_tenant ON opportunities (tenant_id, id);

-- Read model of the `pipeline` projection: count and amount per owner, stage and currency.
CREATE TABLE IF NOT EXISTS pipeline (
    tenant_id TEXT    NOT NULL,
    owner_id  TEXT    NOT NULL,
    stage     TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    count     BIGINT  NOT NULL,
    amount    NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, owner_id, stage, currency)
);

-- What the pipeline projection remembers of each opportunity, to move it between cells.
CREATE TABLE IF NOT EXISTS pipeline_members (
    id        UUID PRIMARY KEY,
    tenant_id TEXT    NOT NULL,
    owner_id  TEXT    NOT NULL,
    stage     TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    amount    NUMERIC NOT NULL,
    version   BIGINT  NOT NULL
);
