//! What auditors read besides the log and the denials: commands the domain refused, and
//! answers that showed personal data. Each is a row written when it happens; a failed write
//! is logged, and the client's answer does not depend on it.

use sqlx::PgPool;

use crate::Principal;

/// A refused command: its id, the rule that refused it, and why.
pub struct Refused<'a> {
    pub action: &'a str,
    pub target: &'a str,
    pub command_id: &'a str,
    pub rule: &'a str,
    pub reason: &'a str,
}

pub async fn record_rejection(pool: &PgPool, who: &Principal, refused: Refused<'_>) {
    let recorded = sqlx::query!(
        "INSERT INTO rejected_commands (tenant_id, actor_id, actor_kind, client_id, action, target, command_id, rule, reason, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        who.tenant_id,
        who.actor_id,
        who.actor_kind.name(),
        who.client_id,
        refused.action,
        refused.target,
        refused.command_id,
        refused.rule,
        refused.reason,
        who.correlation_id,
    )
    .execute(pool)
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, actor = %who.actor_id, action = refused.action, "could not record a rejected command");
    }
}

/// Records that `who` was shown the personal fields of `target` (e.g. `contact/<id>`).
pub async fn record_personal_read(pool: &PgPool, who: &Principal, target: &str) {
    let recorded = sqlx::query!(
        "INSERT INTO personal_data_reads (tenant_id, actor_id, actor_kind, target, correlation_id) VALUES ($1, $2, $3, $4, $5)",
        who.tenant_id,
        who.actor_id,
        who.actor_kind.name(),
        target,
        who.correlation_id,
    )
    .execute(pool)
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, actor = %who.actor_id, target, "could not record a read of personal data");
    }
}
