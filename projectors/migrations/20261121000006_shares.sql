-- Users an opportunity is shared with: they may read it as if it were theirs.
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS shared_with TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS opportunities_shared_with ON opportunities USING GIN (shared_with);
