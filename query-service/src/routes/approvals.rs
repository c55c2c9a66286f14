//! "My approvals": the quote steps that wait for the caller, oldest first.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_events::approval::{self, Acting, Approver, Delegated, Step};
use tidemark_events::policy::{Role, Subject};
use utoipa::ToSchema;
use uuid::Uuid;

use axum::extract::State;
use axum::response::Response;
use tidemark_http::Principal;
use tidemark_projectors::{Delegations, Opportunities};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::tenant_wide;
use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{AskedBound, BoundParams, Refusal, Standings};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(my_approvals)).routes(routes!(approval_turnaround))
}
use tidemark_http::Problem;

/// A pending step as the read model holds it.
#[derive(Serialize, ToSchema)]
pub struct PendingRow {
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
}

/// A pending step as its approver sees it.
#[derive(Serialize, ToSchema)]
pub struct PendingApproval {
    #[serde(flatten)]
    row: PendingRow,
    /// Seconds waited, at the moment of the answer.
    age_seconds: i64,
    /// Whose step this is, when you see it as their delegate.
    on_behalf_of: Option<String>,
}

/// The pending steps that `subject` may decide at `at`, themselves or as a delegate. Who
/// may decide a step is the domain's rule (`approval::decider`, which the command that
/// decides asks too), applied here to the candidates of the teams involved.
pub async fn mine(db: &mut PgConnection, tenant: &str, subject: &Subject, at: DateTime<Utc>) -> Result<Vec<PendingApproval>, Problem> {
    let delegated = sqlx::query!(
        "SELECT delegator, delegator_roles, delegator_team FROM delegations
         WHERE tenant_id = $1 AND delegate = $2 AND NOT revoked AND valid_from <= $3 AND valid_until >= $3 ORDER BY delegator",
        tenant,
        subject.user,
        at.date_naive(),
    )
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let delegations = delegated
        .into_iter()
        .map(|d| Delegated { delegator: d.delegator, roles: d.delegator_roles.iter().filter_map(|r| Role::parse(r)).collect(), team: d.delegator_team })
        .collect();
    let acting = Acting::new(subject, delegations);
    let teams: Vec<&str> = acting.team.iter().chain(acting.delegations.iter().filter_map(|d| d.team.as_ref())).map(String::as_str).collect();
    let rows = sqlx::query_as!(
        PendingRow,
        "SELECT quote_id, opportunity_id, opportunity_name, account_id, owner_id, revision, step, steps, approver, approver_team,
                requested_by, submitted_at, waiting_since, currency, list_amount, net_amount, discount_percent, max_line_discount_percent
         FROM pending_approvals
         WHERE tenant_id = $1 AND requested_by <> $2 AND owner_id <> $2
           AND (approver = 'finance' OR approver_team IS NULL OR approver_team = ANY($3))
         ORDER BY waiting_since, quote_id",
        tenant,
        subject.user,
        &teams as &[&str],
    )
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let step = Step { approver: Approver::try_from(row.approver.clone()).ok()?, team: row.approver_team.clone() };
            let on_behalf_of = approval::decider(&step, &acting, Some(&row.requested_by), &row.owner_id).ok()?;
            Some(PendingApproval { age_seconds: (at - row.waiting_since).num_seconds().max(0), on_behalf_of, row })
        })
        .collect())
}

/// A duration in seconds as the KPI answers give it: to the millisecond.
pub(crate) fn to_the_millisecond(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| (s * 1000.0).round() / 1000.0)
}

/// Approval turnaround from every decided step in the tenant's quotes: per approver kind
/// and team, how many steps were approved and rejected, and the median, 95th percentile
/// and longest wait from the step's request to its decision, in seconds.
pub async fn turnaround(db: &mut PgConnection, tenant: &str) -> Result<serde_json::Value, Problem> {
    let rows = sqlx::query!(
        r#"WITH steps AS (
               SELECT approver, team, decision, extract(epoch FROM decided_at - requested_at) AS waited
               FROM approval_decisions WHERE tenant_id = $1)
           SELECT approver AS "approver!", team, count(*) FILTER (WHERE decision = 'approved') AS "approved!",
                  count(*) FILTER (WHERE decision = 'rejected') AS "rejected!",
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY waited) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY waited) AS p95,
                  max(waited)::float8 AS max
           FROM steps GROUP BY approver, team ORDER BY approver, team"#,
        tenant,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    let secs = to_the_millisecond;
    Ok(serde_json::json!(rows
        .into_iter()
        .map(|r| serde_json::json!({
            "approver": r.approver, "team": r.team, "approved": r.approved, "rejected": r.rejected,
            "p50_seconds": secs(r.p50), "p95_seconds": secs(r.p95), "max_seconds": secs(r.max),
        }))
        .collect::<Vec<_>>()))
}

/// The steps waiting for `subject`. `at`, to the second, dates the answer's ages; a cached
/// answer is at most a second old. `delegations_at`: where the delegations projection
/// stood, as the answer depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Mine {
    pub(crate) subject: Subject,
    pub(crate) at: DateTime<Utc>,
    pub(crate) delegations_at: Standings,
}

impl Mine {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(mine(db, tenant, &self.subject, self.at).await?))
    }
}

/// The tenant's approval turnaround.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Turnaround;

impl Turnaround {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(turnaround(db, tenant).await?))
    }
}

/// The quote approval steps that wait for you, oldest first, with their age, amount,
/// discount and requester: a manager sees their team's manager steps, finance the finance
/// steps; never your own quotes. A strong read unless `consistency=eventual`: it is where
/// approvers decide.
#[utoipa::path(get, path = "/v1/approvals/mine", params(BoundParams), tag = "approvals",
    responses((status = 200, description = "`data`: pending approval steps; `staleness`; `consistency_token`"), (status = 400), (status = 503)))]
async fn my_approvals(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    let now = Utc::now();
    let at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let bound = asked.with_default(true);
    let delegations_at = state.also_hold::<Delegations>(&bound).await?;
    state.read::<Opportunities>(&who, bound, Mine { subject: who.subject(), at, delegations_at }).await
}

/// Approval turnaround: per approver kind (manager, finance) and team, the steps approved
/// and rejected, and the median, 95th percentile and longest wait from a step's request
/// to its decision. For whoever sees more than their own deals (managers, finance, admins).
#[utoipa::path(get, path = "/v1/approvals/turnaround", params(BoundParams), tag = "approvals",
    responses((status = 200, description = "`data`: turnaround per approver and team; `staleness`"), (status = 403), (status = 503)))]
async fn approval_turnaround(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    tenant_wide(&state, &who, "read-approval-turnaround", "approvals/turnaround", "approval turnaround").await?;
    state.read::<Opportunities>(&who, asked.with_default(false), Turnaround).await
}
