//! "My approvals": the quote steps that wait for the caller, oldest first.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_events::approval::{self, Approver, Step};
use tidemark_events::policy::Subject;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::freshness::database;
use tidemark_http::Problem;

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct PendingApproval {
    quote_id: Uuid,
    opportunity_id: Uuid,
    opportunity_name: String,
    account_id: Uuid,
    owner_id: String,
    revision: i32,
    /// This step's place in the chain: step 1 of 2, …
    step: i32,
    steps: i32,
    /// manager or finance
    approver: String,
    approver_team: Option<String>,
    /// Who submitted the quote.
    requested_by: String,
    submitted_at: DateTime<Utc>,
    /// Since when this step has waited.
    waiting_since: DateTime<Utc>,
    currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    list_amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    net_amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    discount_percent: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    max_line_discount_percent: Decimal,
    /// Seconds waited, at the moment of the answer.
    #[sqlx(skip)]
    age_seconds: i64,
}

/// The pending steps that `subject` may decide at `at`. Who may decide a step is the domain's
/// rule (`approval::may_decide`), applied here to the candidates of the caller's team.
pub async fn mine(db: &mut PgConnection, tenant: &str, subject: &Subject, at: DateTime<Utc>) -> Result<Vec<PendingApproval>, Problem> {
    let rows: Vec<PendingApproval> = sqlx::query_as(
        "SELECT quote_id, opportunity_id, opportunity_name, account_id, owner_id, revision, step, steps, approver, approver_team,
                requested_by, submitted_at, waiting_since, currency, list_amount, net_amount, discount_percent, max_line_discount_percent
         FROM pending_approvals
         WHERE tenant_id = $1 AND requested_by <> $2 AND owner_id <> $2
           AND (approver = 'finance' OR approver_team IS NULL OR approver_team = $3)
         ORDER BY waiting_since, quote_id",
    )
    .bind(tenant)
    .bind(&subject.user)
    .bind(&subject.team)
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            let approver = Approver::try_from(row.approver.clone()).ok();
            approver.is_some_and(|approver| {
                approval::may_decide(&Step { approver, team: row.approver_team.clone() }, &subject.roles, subject.team.as_deref())
            })
        })
        .map(|row| PendingApproval { age_seconds: (at - row.waiting_since).num_seconds().max(0), ..row })
        .collect())
}
