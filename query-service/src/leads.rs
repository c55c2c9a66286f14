//! Lead reads: leads in the caller's scope, one lead, and the lead assignment latency.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_http::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::freshness::database;

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct LeadView {
    pub(crate) id: Uuid,
    name: Option<String>,
    company: String,
    email: Option<String>,
    phone: Option<String>,
    territory: String,
    segment: String,
    source: String,
    captured_at: DateTime<Utc>,
    pub(crate) owner_id: Option<String>,
    pub(crate) team_id: Option<String>,
    assigned_at: Option<DateTime<Utc>>,
    assignment_latency_ms: Option<i64>,
    /// new, qualified, disqualified or converted
    status: String,
    disqualify_reason: Option<String>,
    account_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    opportunity_id: Option<Uuid>,
    version: i64,
    /// When the person's data was erased: name, email and phone then read "[erased]".
    erased_at: Option<DateTime<Utc>>,
    /// Name, email and phone: "shown", "withheld" (for roles that may not see them) or "erased".
    #[sqlx(skip)]
    personal_fields: &'static str,
}

/// Leads in a scope (owner and team filters), optionally one, or of one status.
pub async fn leads(
    db: &mut PgConnection,
    tenant: &str,
    (scope_owner, scope_team): (Option<&str>, Option<&str>),
    (id, status): (Option<Uuid>, Option<&str>),
    (after, limit): (Option<Uuid>, i64),
    personal: bool,
) -> Result<Vec<LeadView>, Problem> {
    let rows: Vec<LeadView> = sqlx::query_as(
        "SELECT id, name, company, email, phone, territory, segment, source, captured_at, owner_id, team_id, assigned_at,
                assignment_latency_ms, status, disqualify_reason, account_id, contact_id, opportunity_id, version, erased_at
         FROM leads
         WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR team_id = $3)
           AND ($4::uuid IS NULL OR id = $4) AND ($5::text IS NULL OR status = $5) AND ($6::uuid IS NULL OR id > $6)
         ORDER BY id LIMIT $7",
    )
    .bind(tenant)
    .bind(scope_owner)
    .bind(scope_team)
    .bind(id)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .map(|l| match personal {
            _ if l.erased_at.is_some() => LeadView { personal_fields: "erased", ..l },
            true => LeadView { personal_fields: "shown", ..l },
            false => LeadView { name: None, email: None, phone: None, personal_fields: "withheld", ..l },
        })
        .collect())
}

/// How long leads waited for an owner: count, median, 95th percentile and maximum, in ms,
/// per team; and how many still wait.
pub async fn assignment_latency(db: &mut PgConnection, tenant: &str) -> Result<Value, Problem> {
    let teams: Vec<(String, i64, Option<f64>, Option<f64>, Option<i64>)> = sqlx::query_as(
        "SELECT team_id, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY assignment_latency_ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY assignment_latency_ms), max(assignment_latency_ms)
         FROM leads WHERE tenant_id = $1 AND assigned_at IS NOT NULL GROUP BY team_id ORDER BY team_id",
    )
    .bind(tenant)
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM leads WHERE tenant_id = $1 AND assigned_at IS NULL AND status = 'new'")
        .bind(tenant)
        .fetch_one(db)
        .await
        .map_err(database)?;
    let teams: Vec<Value> = teams
        .into_iter()
        .map(|(team, count, p50, p95, max)| json!({"team_id": team, "assigned": count, "p50_ms": p50.map(f64::round), "p95_ms": p95.map(f64::round), "max_ms": max}))
        .collect();
    Ok(json!({"teams": teams, "waiting_for_an_owner": waiting}))
}
