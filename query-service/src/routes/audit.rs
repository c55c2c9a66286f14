//! The auditors' lists: refusals, rejected commands, reads of personal data (written when
//! the thing happens, so never behind), and automated edits (a read model like any other).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_http::{Principal, Problem, ProblemQuery};
use tidemark_projectors::AutomatedEdits as AutomatedEditsProjection;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::auditor;
use crate::cache::Cached;
use crate::freshness::database;
use crate::paging::{audit_limit, audit_page_sizes};
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_denials))
        .routes(routes!(list_rejections))
        .routes(routes!(list_personal_reads))
        .routes(routes!(list_automated_edits))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(schema_with = audit_page_sizes)]
    limit: Option<i64>,
}

/// The newest rows of one audit table of the caller's tenant, for auditors.
async fn audit_rows(state: &AppState, who: &Principal, table: &'static str, limit: Option<i64>) -> Result<Response, Problem> {
    auditor(state, who, table).await?;
    let limit = audit_limit(limit)?;
    // `table` is one of this file's constants, never the caller's text.
    let rows: Vec<Value> =
        sqlx::query_scalar(&format!("SELECT to_jsonb(t) - 'id' - 'tenant_id' FROM {table} t WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"))
            .bind(&who.tenant_id)
            .bind(limit)
            .fetch_all(&state.reads)
            .await
            .map_err(database)?;
    Ok(Json(json!({ "data": rows })).into_response())
}

/// Every refusal in the tenant, newest first: who asked for what, and why not (auditors).
#[utoipa::path(get, path = "/v1/audit/denials", params(AuditParams), tag = "audit",
    responses((status = 200, description = "`data`: denials"), (status = 401), (status = 403)))]
async fn list_denials(State(state): State<AppState>, who: Principal, ProblemQuery(params): ProblemQuery<AuditParams>) -> Result<Response, Problem> {
    audit_rows(&state, &who, "denials", params.limit).await
}

/// Every command the domain refused (a broken rule, an older version, a reused
/// Idempotency-Key), newest first: who, which command id, which rule, why (auditors).
#[utoipa::path(get, path = "/v1/audit/rejected-commands", params(AuditParams), tag = "audit",
    responses((status = 200, description = "`data`: rejected commands"), (status = 401), (status = 403)))]
async fn list_rejections(State(state): State<AppState>, who: Principal, ProblemQuery(params): ProblemQuery<AuditParams>) -> Result<Response, Problem> {
    audit_rows(&state, &who, "rejected_commands", params.limit).await
}

/// Every answer that showed personal fields, newest first: who saw which contact's or
/// lead's name, email and phone, and when (auditors).
#[utoipa::path(get, path = "/v1/audit/personal-data-reads", params(AuditParams), tag = "audit",
    responses((status = 200, description = "`data`: reads of personal data"), (status = 401), (status = 403)))]
async fn list_personal_reads(State(state): State<AppState>, who: Principal, ProblemQuery(params): ProblemQuery<AuditParams>) -> Result<Response, Problem> {
    audit_rows(&state, &who, "personal_data_reads", params.limit).await
}

/// The newest automated edits, optionally of one automation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AutomatedEdits {
    actor: Option<String>,
    limit: i64,
}

impl AutomatedEdits {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = sqlx::query_scalar!(
            r#"SELECT to_jsonb(e) - 'tenant_id' AS "edit!" FROM automated_edits e WHERE tenant_id = $1 AND ($2::text IS NULL OR actor_id = $2)
               ORDER BY recorded_at DESC, event_id DESC LIMIT $3"#,
            tenant,
            self.actor.as_deref(),
            self.limit,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        Ok(Cached::data(rows))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AutomatedEditParams {
    /// Only this automation's edits, e.g. lead-router.
    actor: Option<String>,
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(schema_with = audit_page_sizes)]
    limit: Option<i64>,
}

/// Every change an automation made, newest first: which event, on what, by which
/// automation, under which command and policy, and why (its rationale). A read model like any
/// other: eventual unless asked otherwise (auditors).
#[utoipa::path(get, path = "/v1/audit/automated-edits", params(AutomatedEditParams, BoundParams), tag = "audit",
    responses((status = 200, description = "`data`: automated edits; `staleness`"), (status = 403), (status = 422), (status = 503)))]
async fn list_automated_edits(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<AutomatedEditParams>,
) -> Result<Response, Problem> {
    auditor(&state, &who, "automated_edits").await?;
    let limit = audit_limit(params.limit)?;
    let query = AutomatedEdits { actor: params.actor, limit };
    state.read::<AutomatedEditsProjection>(&who, asked.with_default(false), query).await
}
