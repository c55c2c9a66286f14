-- When each opportunity's first quote was submitted, for the time-to-quote KPI. Rows stored
-- before this column existed take the earliest submission their quotes still show (a quote
-- recalled and submitted again shows its latest); `tidemark replay rebuild opportunities`
-- folds the exact instant from the log.
ALTER TABLE opportunities ADD COLUMN IF NOT EXISTS first_quoted_at TIMESTAMPTZ;
UPDATE opportunities o SET first_quoted_at = (
        SELECT min((q->>'submitted_at')::timestamptz) FROM jsonb_array_elements(o.quotes) q)
    WHERE first_quoted_at IS NULL;
