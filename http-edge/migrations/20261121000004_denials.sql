-- Every refusal of an authenticated principal, for auditors: who asked for what, on what,
-- why it was refused, and under which policy.
CREATE TABLE IF NOT EXISTS denials (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    reason_code    TEXT NOT NULL,
    reason         TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    denied_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS denials_by_tenant ON denials (tenant_id, denied_at DESC);
