//! The pipeline: count and amount of opportunities per owner, stage and currency, and the
//! stages themselves (for clients such as the console, which draws a column per stage).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tidemark_events::opportunity::STAGES;
use tidemark_events::policy::Scope;
use tidemark_http::{Principal, Problem, ProblemQuery};
use tidemark_projectors::Pipeline;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{list_scope, scope_filter};
use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_pipeline)).routes(routes!(get_stages))
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
struct PipelineCell {
    owner_id: String,
    stage: String,
    currency: String,
    count: i64,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "12000.00")]
    amount: Decimal,
}

/// The cells in `scope`, optionally of one owner, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Cells {
    pub(crate) scope: Scope,
    pub(crate) owner: Option<String>,
}

impl Cells {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let (scope_owner, scope_team) = scope_filter(&self.scope);
        // A group has at least one row.
        let mut cells = sqlx::query_as!(
            PipelineCell,
            r#"SELECT owner_id, stage, currency, sum(count)::bigint AS "count!", sum(amount) AS "amount!" FROM pipeline
               WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2)
                 AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR team_id = $4)
               GROUP BY owner_id, stage, currency ORDER BY owner_id, currency"#,
            tenant,
            self.owner.as_deref(),
            scope_owner,
            scope_team,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        let order = |name: &str| STAGES.iter().position(|(s, _)| s.name() == name).unwrap_or(STAGES.len());
        cells.sort_by(|a, b| (&a.owner_id, order(&a.stage), &a.currency).cmp(&(&b.owner_id, order(&b.stage), &b.currency)));
        Ok(Cached::data(cells))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PipelineParams {
    owner: Option<String>,
}

/// Count and amount of opportunities per owner, stage and currency, in pipeline order.
/// Eventual unless asked otherwise (a planning view).
#[utoipa::path(get, path = "/v1/pipeline", params(PipelineParams, BoundParams), tag = "pipeline",
    responses((status = 200, description = "`data`: pipeline cells; `staleness`; `consistency_token`"), (status = 400), (status = 503)))]
async fn get_pipeline(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<PipelineParams>,
) -> Result<Response, Problem> {
    let scope = list_scope(&state, &who).await?;
    state.read::<Pipeline>(&who, asked.with_default(false), Cells { scope, owner: params.owner }).await
}

/// A stage of the pipeline, as the domain defines it.
#[derive(Serialize, ToSchema)]
struct StageView {
    /// The name commands and answers use.
    name: &'static str,
    /// Its default probability, percent.
    probability: i32,
    /// pipeline, best_case, commit or closed; none for a lost deal.
    forecast_category: Option<&'static str>,
    /// Closed stages are reached through /close, not /stage.
    closed: bool,
}

#[derive(Serialize, ToSchema)]
struct StagesAnswer {
    data: Vec<StageView>,
}

/// The stages in pipeline order. The domain's own table, not a read model: no staleness.
#[utoipa::path(get, path = "/v1/pipeline/stages", tag = "pipeline", responses((status = 200, body = StagesAnswer), (status = 401)))]
async fn get_stages(_who: Principal) -> Response {
    let data = STAGES
        .iter()
        .map(|(stage, probability)| StageView {
            name: stage.name(),
            probability: *probability,
            forecast_category: stage.forecast_category().map(|c| c.name()),
            closed: stage.is_closed(),
        })
        .collect();
    axum::Json(StagesAnswer { data }).into_response()
}
