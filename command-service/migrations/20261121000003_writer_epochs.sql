-- Every start of a command-service writer takes the next epoch; it fences the partitions
-- it owns with it, so appends of an older writer that lingers are ignored by every reader.
CREATE SEQUENCE IF NOT EXISTS writer_epochs;
