-- The latest snapshot of each partition's writer state, so that a starting writer reads
-- the log only after it (see command-service/src/writer/snapshot.rs). The body is JSON,
-- compressed by PostgreSQL; the checksum is its SHA-256, for a row damaged at rest.
CREATE TABLE IF NOT EXISTS writer_snapshots (
    topic text NOT NULL,
    partition integer NOT NULL,
    code_version text NOT NULL,
    anchor_offset bigint NOT NULL,
    streams integer NOT NULL,
    taken_at timestamptz NOT NULL,
    body bytea NOT NULL,
    checksum bytea NOT NULL,
    PRIMARY KEY (topic, partition)
);
ALTER TABLE writer_snapshots ALTER COLUMN body SET COMPRESSION lz4;
