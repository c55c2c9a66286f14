-- Opportunities belong to a team (schema v2 of OpportunityCreated), so that managers see
-- their team's. Rows from before teams have none ('' in the pipeline, whose key needs a value).
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS team_id TEXT;
CREATE INDEX IF NOT EXISTS opportunities_by_team ON opportunities (tenant_id, team_id, id);

ALTER TABLE pipeline_members ADD COLUMN IF NOT EXISTS team_id TEXT NOT NULL DEFAULT '';
ALTER TABLE pipeline ADD COLUMN IF NOT EXISTS team_id TEXT NOT NULL DEFAULT '';
ALTER TABLE pipeline DROP CONSTRAINT IF EXISTS pipeline_pkey;
ALTER TABLE pipeline ADD PRIMARY KEY (tenant_id, team_id, owner_id, stage, currency);
