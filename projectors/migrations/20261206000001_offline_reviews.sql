-- Preference fields of an opportunity besides its close date (see `offline::Preference`).
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS next_step TEXT;
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS description TEXT;

-- Part of the `opportunities` read model: every review of a conflicting offline intent,
-- open or resolved, as the events tell it (`offline::ReviewOpened` and `ReviewResolved`).
CREATE TABLE IF NOT EXISTS offline_reviews (
    review_id      UUID PRIMARY KEY,
    opportunity_id UUID    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    -- Its place among the opportunity's reviews, oldest first.
    position       INT     NOT NULL,
    author         TEXT    NOT NULL,
    open           BOOLEAN NOT NULL,
    opened         JSONB   NOT NULL,
    resolved       JSONB
);
CREATE INDEX IF NOT EXISTS offline_reviews_by_author ON offline_reviews (tenant_id, author, open);
CREATE INDEX IF NOT EXISTS offline_reviews_by_opportunity ON offline_reviews (opportunity_id);
