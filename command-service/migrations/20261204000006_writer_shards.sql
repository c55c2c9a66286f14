-- Who owns each shard (partition k of every event topic) since when, and where it listens:
-- a writer that receives a command for a shard it does not own forwards it there. Kafka's
-- group protocol decides ownership; this table only says where the owner can be reached.
CREATE TABLE writer_shards (
    shard integer PRIMARY KEY,
    writer text NOT NULL,
    url text NOT NULL,
    epoch bigint NOT NULL,
    owned_since timestamptz NOT NULL
);

-- Every change of a shard's owner, for operators (and the scale-out test) to see how long
-- each shard was without one: `released` when a writer let it go, `owned` when the next
-- one had read it to its end and served it.
CREATE TABLE writer_shard_changes (
    shard integer NOT NULL,
    writer text NOT NULL,
    epoch bigint NOT NULL,
    change text NOT NULL CHECK (change IN ('owned', 'released')),
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX writer_shard_changes_by_shard ON writer_shard_changes (shard, at);

-- The process that runs under each writer name now: a writer whose transactions are fenced
-- looks here to tell a successor under its name (it must stop) from the broker aborting a
-- transaction it kept open too long, paused (it goes on with a new producer).
CREATE TABLE writer_processes (
    name text PRIMARY KEY,
    process text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
