-- A snapshot's streams are cut into chunks of a few thousand, one row each: a partition's
-- every stream in one row (44 MB at ten million events) made a start spend most of its
-- time in the kernel, zeroing the pages of ever larger buffers. The head row keeps what is
-- not per stream (fence epoch, unreadable markers, Idempotency-Key outcomes) and the anchor;
-- every chunk repeats the anchor, so that chunks of two snapshots are never mixed. A
-- snapshot is a shortcut that is rebuilt at will: the old rows are dropped, not converted.
DROP TABLE IF EXISTS writer_snapshots;
CREATE TABLE writer_snapshots (
    topic text NOT NULL,
    partition integer NOT NULL,
    code_version text NOT NULL,
    anchor_offset bigint NOT NULL,
    anchor_record text NOT NULL,
    streams integer NOT NULL,
    chunks integer NOT NULL,
    taken_at timestamptz NOT NULL,
    head bytea NOT NULL,
    checksum bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE writer_snapshot_chunks (
    topic text NOT NULL,
    partition integer NOT NULL,
    chunk integer NOT NULL,
    body bytea NOT NULL,
    checksum bigint NOT NULL,
    PRIMARY KEY (topic, partition, chunk),
    FOREIGN KEY (topic, partition) REFERENCES writer_snapshots ON DELETE CASCADE
);
ALTER TABLE writer_snapshot_chunks ALTER COLUMN body SET COMPRESSION lz4;
