-- Bumped each time a rebuild swaps a projection's tables: the same offsets may then stand for
-- different rows, so cached answers must not outlive a switchover.
ALTER TABLE projection_offsets ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0;
