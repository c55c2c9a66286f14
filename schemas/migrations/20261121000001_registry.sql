-- Tables of the schema registry (tidemark registry). Schema ids are global and stable:
-- the same schema text under any subject has one id, as in Confluent's registry.
CREATE TABLE IF NOT EXISTS registry_schemas (
    id          SERIAL PRIMARY KEY,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    schema      TEXT NOT NULL,
    canonical   TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS registry_subject_versions (
    subject    TEXT NOT NULL,
    version    INT  NOT NULL,
    schema_id  INT  NOT NULL REFERENCES registry_schemas (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);

-- subject '' holds the global level.
CREATE TABLE IF NOT EXISTS registry_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
