-- The trace context of the batch that last moved each partition, when traces are recorded:
-- a read that waited for a command's records links its span to that batch.
ALTER TABLE projection_offsets ADD COLUMN IF NOT EXISTS traceparent text;
