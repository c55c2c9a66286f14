//! Lead reads: leads in the caller's scope, one lead, and the lead assignment latency.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_http::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tidemark_events::lead::LeadStatus;
use tidemark_events::policy::{self, Denial, Scope};
use tidemark_http::{denials, Principal, ProblemPath, ProblemQuery};
use tidemark_projectors::Leads;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{lead_reader, personal_fields, scope_filter};
use crate::cache::Cached;
use crate::freshness::database;
use crate::paging::{cursor, cursors, page, page_size, page_sizes};
use crate::read::{seen, AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_leads)).routes(routes!(lead_latency)).routes(routes!(get_lead))
}

/// A lead as the read model holds it.
#[derive(Serialize, ToSchema)]
pub struct LeadRow {
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
}

/// A lead as a caller sees it.
#[derive(Serialize, ToSchema)]
pub struct LeadView {
    #[serde(flatten)]
    pub(crate) row: LeadRow,
    /// Name, email and phone: "shown", "withheld" (for roles that may not see them) or "erased".
    personal_fields: &'static str,
}

/// Leads in a scope (owner and team filters), optionally one, or of one status.
async fn leads(
    db: &mut PgConnection,
    tenant: &str,
    (scope_owner, scope_team): (Option<&str>, Option<&str>),
    (id, status): (Option<Uuid>, Option<&str>),
    (after, limit): (Option<Uuid>, i64),
    personal: bool,
) -> Result<Vec<LeadView>, Problem> {
    let rows = sqlx::query_as!(
        LeadRow,
        r#"SELECT id, name AS "name?", company, email, phone, territory, segment, source, captured_at, owner_id, team_id, assigned_at,
                  assignment_latency_ms, status, disqualify_reason, account_id, contact_id, opportunity_id, version, erased_at
           FROM leads
           WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR team_id = $3)
             AND ($4::uuid IS NULL OR id = $4) AND ($5::text IS NULL OR status = $5) AND ($6::uuid IS NULL OR id > $6)
           ORDER BY id LIMIT $7"#,
        tenant,
        scope_owner,
        scope_team,
        id,
        status,
        after,
        limit,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let erased = row.erased_at.is_some();
            let (row, personal_fields) = personal_fields(row, erased, personal, |row| LeadRow { name: None, email: None, phone: None, ..row });
            LeadView { row, personal_fields }
        })
        .collect())
}

/// How long leads waited for an owner: count, median, 95th percentile and maximum, in ms,
/// per team; and how many still wait.
async fn assignment_latency(db: &mut PgConnection, tenant: &str) -> Result<Value, Problem> {
    // An assigned lead has a team; a group has at least one row.
    let teams = sqlx::query!(
        r#"SELECT team_id AS "team_id!", count(*) AS "assigned!", percentile_cont(0.5) WITHIN GROUP (ORDER BY assignment_latency_ms) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY assignment_latency_ms) AS p95, max(assignment_latency_ms) AS max
           FROM leads WHERE tenant_id = $1 AND assigned_at IS NOT NULL GROUP BY team_id ORDER BY team_id"#,
        tenant,
    )
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let waiting = sqlx::query_scalar!(r#"SELECT count(*) AS "waiting!" FROM leads WHERE tenant_id = $1 AND assigned_at IS NULL AND status = 'new'"#, tenant)
        .fetch_one(db)
        .await
        .map_err(database)?;
    let teams: Vec<Value> = teams
        .into_iter()
        .map(|t| json!({"team_id": t.team_id, "assigned": t.assigned, "p50_ms": t.p50.map(f64::round), "p95_ms": t.p95.map(f64::round), "max_ms": t.max}))
        .collect();
    Ok(json!({"teams": teams, "waiting_for_an_owner": waiting}))
}

/// One lead, if it is within `scope`; `personal`: whether name, email and phone are shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct One {
    id: Uuid,
    scope: Scope,
    personal: bool,
}

impl One {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let id = self.id;
        // Read whatever its owner, so that another's lead is refused (and recorded), not hidden.
        let found = leads(db, tenant, (None, None), (Some(id), None), (None, 1), self.personal).await?;
        let lead = found.into_iter().next().ok_or_else(|| Problem::not_found(format!("no lead {id} in the read model")))?;
        if let Err(denial) = policy::within(&self.scope, (lead.row.owner_id.as_deref(), lead.row.team_id.as_deref()), "lead") {
            return Err(Refusal::Denied { denial, action: "read-lead", target: format!("lead/{id}") });
        }
        Ok(Cached::data(lead))
    }
}

/// A page of the leads in `scope`, optionally of one status; `personal` as for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Page {
    scope: Scope,
    status: Option<String>,
    after: Option<Uuid>,
    limit: i64,
    personal: bool,
}

impl Page {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = leads(db, tenant, scope_filter(&self.scope), (None, self.status.as_deref()), (self.after, self.limit + 1), self.personal).await?;
        Ok(page(rows, self.limit, |l| l.row.id))
    }
}

/// The tenant's lead assignment latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Latency;

impl Latency {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(assignment_latency(db, tenant).await?))
    }
}

fn lead_statuses() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(LeadStatus::names())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LeadParams {
    /// new, qualified, disqualified or converted
    #[param(schema_with = lead_statuses)]
    status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = page_sizes)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursors)]
    cursor: Option<String>,
}

/// Leads: a rep's own, a manager's team's, an admin's all; a page at a time. Eventual
/// unless asked otherwise.
#[utoipa::path(get, path = "/v1/leads", params(LeadParams, BoundParams), tag = "leads",
    responses((status = 200, description = "`data`: leads; `next_cursor`; `staleness`"), (status = 400), (status = 403), (status = 422), (status = 503)))]
async fn list_leads(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<LeadParams>,
) -> Result<Response, Problem> {
    let (scope, personal) = lead_reader(&state, &who, "leads").await?;
    if let Some(status) = &params.status {
        LeadStatus::try_from(status.clone()).map_err(|e| Problem::invalid_field("status", e))?;
    }
    let limit = page_size(params.limit)?;
    let after = cursor(params.cursor)?;
    let query = Page { scope, status: params.status, after, limit, personal };
    seen(&state, &who, "leads".to_string(), state.read::<Leads>(&who, asked.with_default(false), query).await).await
}

/// One lead, with its owner, assignment latency and what its conversion created. A strong
/// read unless asked otherwise.
#[utoipa::path(get, path = "/v1/leads/{id}", params(BoundParams), tag = "leads",
    responses((status = 200, description = "`data`: the lead; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_lead(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let (scope, personal) = lead_reader(&state, &who, &format!("lead/{id}")).await?;
    seen(&state, &who, format!("lead/{id}"), state.read::<Leads>(&who, asked.with_default(true), One { id, scope, personal }).await).await
}

/// Lead assignment latency, from capture to an owner: per team, the count, median, 95th
/// percentile and maximum in ms; and how many leads still wait for an owner. Managers and
/// admins.
#[utoipa::path(get, path = "/v1/leads/assignment-latency", params(BoundParams), tag = "leads",
    responses((status = 200, description = "`data`: latency per team; `staleness`"), (status = 403), (status = 503)))]
async fn lead_latency(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    let (scope, _) = lead_reader(&state, &who, "leads/assignment-latency").await?;
    if matches!(scope, Scope::Own(_)) {
        let denial = Denial { code: "role-may-not", reason: "the assignment latency of every team is for managers and admins".into() };
        return Err(denials::deny(&state.pool, &who, "read-lead-latency", "leads/assignment-latency", denial).await);
    }
    state.read::<Leads>(&who, asked.with_default(false), Latency).await
}
