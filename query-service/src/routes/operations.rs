//! The operators' view of the quarantine: records a projection could not decode or apply,
//! the aggregates they block, and the decision to skip one. The same rules serve
//! `tidemark quarantine`; see `tidemark_projectors::quarantine`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tidemark_http::{Principal, Problem, ProblemJson, ProblemPath, ProblemQuery};
use tidemark_projectors::quarantine::{self, Filter, Quarantined, SkipError};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::operator;
use crate::freshness::database;
use crate::paging::{audit_limit, audit_page_sizes};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_quarantine)).routes(routes!(skip_quarantined))
}

fn projection_names() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(tidemark_projectors::names())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QuarantineParams {
    /// Only this projection's records.
    #[param(schema_with = projection_names)]
    projection: Option<String>,
    /// Only records nobody has resolved yet (default false: all).
    open: Option<bool>,
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(schema_with = audit_page_sizes)]
    limit: Option<i64>,
}

/// Quarantined records, newest first: their position, the aggregate they block, why they
/// were refused, and how an operator resolved them (operators only: they span tenants).
#[utoipa::path(get, path = "/v1/operations/quarantine", params(QuarantineParams), tag = "operations",
    responses((status = 200, description = "`data`: quarantined records", body = [Quarantined]), (status = 400), (status = 401), (status = 403)))]
async fn list_quarantine(State(state): State<AppState>, who: Principal, ProblemQuery(params): ProblemQuery<QuarantineParams>) -> Result<Response, Problem> {
    operator(&state, &who, "list-quarantine", "quarantined records").await?;
    if let Some(name) = &params.projection {
        tidemark_projectors::known(name).map_err(|e| Problem::invalid_field("projection", e))?;
    }
    let filter = Filter { projection: params.projection, open: params.open.unwrap_or(false), limit: audit_limit(params.limit)? };
    let records = quarantine::list(&state.pool, &filter).await.map_err(database)?;
    Ok(Json(json!({ "data": records })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SkipRequest {
    /// Why folding past this record is right; kept with the decision.
    #[schema(schema_with = tidemark_http::openapi::name)]
    reason: String,
}

/// Resolves a quarantined record that cannot be decoded by skipping it: the writer and every
/// projection fold past it from now on (a rebuild too). Recorded with the operator and the
/// reason. Answers every quarantine entry of that record. An event that decodes is not
/// skipped (409): its remedy is a fix of the projection and a rebuild.
#[utoipa::path(post, path = "/v1/operations/quarantine/{id}/skip", tag = "operations",
    params(("id" = i64, Path, description = "The quarantine entry's id, from the list")),
    request_body = SkipRequest,
    responses((status = 200, description = "`data`: the record's quarantine entries, now resolved", body = [Quarantined]),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn skip_quarantined(
    State(state): State<AppState>,
    who: Principal,
    ProblemPath(id): ProblemPath<i64>,
    ProblemJson(request): ProblemJson<SkipRequest>,
) -> Result<Response, Problem> {
    operator(&state, &who, "skip-quarantined", "quarantined records").await?;
    match quarantine::skip(&state.pool, id, &who.actor_id, &request.reason).await {
        Ok(entries) => Ok(Json(json!({ "data": entries })).into_response()),
        Err(e @ SkipError::NotQuarantined(_)) => Err(Problem::not_found(e.to_string())),
        Err(e @ SkipError::NoReason) => Err(Problem::invalid_field("reason", e.to_string())),
        Err(e @ SkipError::IsAnEvent(_)) => Err(Problem::new(StatusCode::CONFLICT, "record-is-an-event", "An event is not skipped", e.to_string())),
        Err(SkipError::Database(e)) => Err(database(e)),
    }
}
