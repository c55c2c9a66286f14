-- Read model of the `activities` projection: calls, emails, meetings and tasks.
CREATE TABLE IF NOT EXISTS activities (
    id          UUID PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    -- call | email | meeting | task
    kind        TEXT        NOT NULL,
    -- account | contact | opportunity
    about       TEXT        NOT NULL,
    about_id    UUID        NOT NULL,
    subject     TEXT        NOT NULL,
    logged_by   TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ,
    due_date    DATE,
    assignee    TEXT,
    done        BOOLEAN     NOT NULL,
    version     BIGINT      NOT NULL,
    logged_at   TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_by_subject ON activities (tenant_id, about_id, logged_at);
CREATE INDEX IF NOT EXISTS activities_open_tasks ON activities (tenant_id, assignee, due_date) WHERE kind = 'task' AND NOT done;
