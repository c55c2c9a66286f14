//! Lineage for auditors, read from the log itself: where a value of a read model came from,
//! and which deals, and which events of theirs, make up a number of the forecast.
//!
//! Read models are rows derived from the log; the log is what happened. These answers read
//! the log to its end when the request arrives, so they are never behind.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tidemark_events::opportunity::{self, ForecastCategory};
use tidemark_http::{Principal, Problem, ProblemPath, ProblemQuery};
use tidemark_history::lineage::{self, LineageError};
use tidemark_history::Replayer;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::access::auditor;
use crate::freshness::database;
use crate::routes::forecast::{self, Cell, Period};
use crate::AppState;

/// The values of an opportunity that place it in a forecast cell and weigh it there.
const FORECAST_FIELDS: [&str; 5] = ["amount", "stage", "probability", "close_date", "owner_id"];

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(value_lineage)).routes(routes!(forecast_lineage))
}

pub(crate) type Log = Arc<Replayer>;

fn problem(e: LineageError) -> Problem {
    match e {
        // A field is a part of the aggregate, named like a resource: none by that name is a 404.
        LineageError::UnknownAggregate(_) | LineageError::NotFound(..) | LineageError::NoField(..) => Problem::not_found(e.to_string()),
        LineageError::Log(_) => Problem::unavailable(e.to_string()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct AggregatePath {
    /// The kind of aggregate.
    #[param(schema_with = aggregate_types)]
    aggregate: String,
    /// Its id.
    id: Uuid,
}

fn aggregate_types() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(tidemark_events::Topics::AGGREGATE_TYPES)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LineageParams {
    /// One value: a field (`amount`, `stage`), a quote (`quotes.<id>`) or a field of one
    /// (`quotes.<id>.status`). Only the events that set it are listed.
    field: Option<String>,
}

/// Every event that set the values of an aggregate (the row of each read model it feeds), in
/// order: its place in the log, who and what sent it (actor, actor kind, client, command,
/// policy and code version, correlation and causation ids, an automation's rationale), what
/// it changed, the earlier events whose values it changed (`builds_on`: upstream), and the
/// read models whose rows it changed (`read_models`: downstream). Auditors only.
#[utoipa::path(get, path = "/v1/audit/lineage/{aggregate}/{id}", params(AggregatePath, LineageParams), tag = "audit",
    responses((status = 200, description = "`data`: the lineage"), (status = 403), (status = 404), (status = 503)))]
async fn value_lineage(
    State(state): State<AppState>,
    who: Principal,
    ProblemPath(AggregatePath { aggregate, id }): ProblemPath<AggregatePath>,
    ProblemQuery(params): ProblemQuery<LineageParams>,
) -> Result<Response, Problem> {
    auditor(&state, &who, &format!("lineage of {aggregate}/{id}")).await?;
    let found = lineage::lineage(&state.log, &aggregate, id, params.field.as_deref()).await.map_err(problem)?;
    if found["tenant_id"] != who.tenant_id.as_str() {
        return Err(Problem::not_found(format!("no {aggregate} {id} in the log")));
    }
    Ok(Json(json!({ "data": found, "read": "from the log, to its end when the request arrived" })).into_response())
}

// Required parameters take their constraints as attributes, not `schema_with`: utoipa
// drops `required` (and the doc comment) of a parameter whose schema is given whole.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CellParams {
    /// The deals' owner, as in a forecast row.
    #[param(min_length = 1, max_length = 200)]
    owner: String,
    /// The period as a forecast row names it: `2027-03` (a month) or `2027-Q1` (a quarter).
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2]|Q[1-4])$")]
    period: String,
    /// e.g. EUR.
    #[param(pattern = "^[A-Z]{3}$")]
    currency: String,
    /// pipeline, best_case, commit or closed; all of them when absent.
    #[param(schema_with = categories)]
    category: Option<String>,
}

fn categories() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(ForecastCategory::names())
}

/// The deals behind one number of the forecast: each deal of the cell with its amount,
/// probability and weighted amount as the read model holds them, whether the log agrees,
/// and every event that set the values placing it in the cell (amount, stage, probability,
/// close date, owner), with their provenance. `figures` adds them up as `/v1/forecast`
/// does. Auditors only.
#[utoipa::path(get, path = "/v1/audit/forecast-lineage", params(CellParams), tag = "audit",
    responses((status = 200, description = "`data`: figures and deals with their chains"), (status = 403), (status = 422), (status = 503)))]
async fn forecast_lineage(State(state): State<AppState>, who: Principal, ProblemQuery(p): ProblemQuery<CellParams>) -> Result<Response, Problem> {
    auditor(&state, &who, "lineage of the forecast").await?;
    let period = period_of(&p.period)?;
    let category = p.category.as_deref().map(category_of).transpose()?;
    let cell = Cell { owner: &p.owner, period, at: &p.period, currency: &p.currency, category };
    let mut db = state.reads.acquire().await.map_err(database)?;
    let (deals, figures) = forecast::cell(&mut db, &who.tenant_id, &cell).await?;
    drop(db);

    let topic = state.topics.opportunity.clone();
    let records = match deals.is_empty() {
        true => Vec::new(),
        false => {
            // Only the deals' records: memory follows their histories, not the log's.
            let ids: Vec<uuid::Uuid> = deals.iter().map(|d| d.id).collect();
            tidemark_history::read_partitions(&state.log.brokers, &state.log.codec, &topic, None, Some(&ids)).await.map_err(|e| problem(e.into()))?
        }
    };
    let mut explained = Vec::new();
    for deal in &deals {
        let found = lineage::lineage_in(&records, (&topic, opportunity::AGGREGATE_TYPE), deal.id, &FORECAST_FIELDS).map_err(problem)?;
        let mut row = json!(deal);
        let log_amount = found["value"]["amount"]["value"].clone();
        row["log_agrees"] = json!(log_amount == row["amount"] && found["value"]["stage"] == row["stage"]);
        row["chain"] = found["chain"].clone();
        explained.push(row);
    }
    Ok(Json(json!({
        "data": { "owner_id": p.owner, "period": p.period, "currency": p.currency, "category": p.category, "figures": figures, "deals": explained },
        "read": "deals from the opportunities read model as it stands; their chains from the log, to its end when the request arrived",
    }))
    .into_response())
}

/// `2027-03` is a month, `2027-Q1` a quarter.
fn period_of(text: &str) -> Result<Period, Problem> {
    let bad = || Problem::invalid_field("period", format!("'{text}' is neither a month (2027-03) nor a quarter (2027-Q1)"));
    let (year, rest) = text.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || year.parse::<u32>().is_err() {
        return Err(bad());
    }
    match rest.strip_prefix('Q') {
        Some("1" | "2" | "3" | "4") => Ok(Period::Quarter),
        None if rest.len() == 2 && rest.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m)) => Ok(Period::Month),
        _ => Err(bad()),
    }
}

fn category_of(text: &str) -> Result<ForecastCategory, Problem> {
    ForecastCategory::try_from(text.to_string()).map_err(|e| Problem::invalid_field("category", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_categories_are_read_as_the_forecast_names_them() {
        assert_eq!(period_of("2027-03").unwrap(), Period::Month);
        assert_eq!(period_of("2027-Q1").unwrap(), Period::Quarter);
        for bad in ["2027", "2027-13", "2027-Q5", "27-03", "2027-3"] {
            assert!(period_of(bad).is_err(), "{bad}");
        }
        assert_eq!(category_of("best_case").unwrap(), ForecastCategory::BestCase);
        assert!(category_of("maybe").is_err());
    }
}
