//! Refusals of authenticated principals: a 403 with a stable code and a sentence for the
//! client, and a row in `denials` for auditors.

use axum::http::StatusCode;
use sqlx::PgPool;
use tidemark_events::policy::{Denial, POLICY_VERSION};

use crate::{Principal, Problem};

/// The `denials` table.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Records the denial and returns the problem to answer with. A failed write is logged,
/// not hidden behind a 500: the client's answer does not depend on the audit store.
pub async fn deny(pool: &PgPool, who: &Principal, action: &str, target: &str, denial: Denial) -> Problem {
    let recorded = sqlx::query!(
        "INSERT INTO denials (tenant_id, actor_id, actor_kind, action, target, reason_code, reason, policy_version, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        who.tenant_id,
        who.actor_id,
        who.actor_kind.name(),
        action,
        target,
        denial.code,
        denial.reason,
        POLICY_VERSION,
        who.correlation_id,
    )
    .execute(pool)
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, actor = %who.actor_id, action, "could not record a denial");
    }
    tracing::info!(actor = %who.actor_id, action, target, code = denial.code, "denied");
    problem(denial)
}

pub fn problem(denial: Denial) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, denial.code, "Not allowed", denial.reason)
        .with("reason_code", denial.code)
        .with("policy_version", POLICY_VERSION)
}

/// Refuses, and records the refusal, unless `who` operates the deployment: what `resource`
/// shows spans every tenant.
pub async fn operator(pool: &PgPool, who: &Principal, action: &str, resource: &str) -> Result<(), Problem> {
    if tidemark_events::policy::may_operate(&who.subject()) {
        return Ok(());
    }
    let denial = Denial { code: "needs-operator", reason: format!("{resource} span every tenant: they are for the deployment's operators and monitoring") };
    Err(deny(pool, who, action, resource, denial).await)
}
