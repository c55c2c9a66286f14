-- The aggregate version a quarantined record carries, when it could be decoded: such an
-- event is never skipped (see projectors/src/quarantine.rs).
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS aggregate_version BIGINT;

-- Records of the log that an operator resolved by skipping: the writer and every
-- projection fold past them as if they were not there. Recorded with who decided and why;
-- never deleted, since a rebuild must skip them again.
CREATE TABLE IF NOT EXISTS skipped_records (
    topic             TEXT        NOT NULL,
    partition         INT         NOT NULL,
    "offset"          BIGINT      NOT NULL,
    aggregate_id      TEXT,
    skipped_by        TEXT        NOT NULL,
    reason            TEXT        NOT NULL,
    skipped_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
