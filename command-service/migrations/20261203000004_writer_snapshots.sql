-- The latest snapshot of each partition's writer state, so that a starting writer reads
-- the log only after it (see command-service/src/writer/snapshot.rs). The anchor (the
-- last record the snapshot folded) is kept beside the body too, so that a start checks it
-- against the log before it decodes anything; the checksum (XXH3-64 of the body) finds a
-- row damaged at rest.
CREATE TABLE IF NOT EXISTS writer_snapshots (
    topic text NOT NULL,
    partition integer NOT NULL,
    code_version text NOT NULL,
    anchor_offset bigint NOT NULL,
    anchor_record text NOT NULL,
    streams integer NOT NULL,
    taken_at timestamptz NOT NULL,
    body bytea NOT NULL,
    checksum bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
ALTER TABLE writer_snapshots ALTER COLUMN body SET COMPRESSION lz4;
