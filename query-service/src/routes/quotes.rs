//! Quote figures across the tenant: time to quote, from a deal's creation to its first
//! submitted quote.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_http::{Principal, Problem};
use tidemark_projectors::Opportunities;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::approvals::to_the_millisecond;
use crate::access::tenant_wide;
use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(time_to_quote))
}

/// Time to quote of one team's deals, in seconds.
#[derive(Serialize, ToSchema)]
struct TeamTimeToQuote {
    team_id: Option<String>,
    /// Deals with a submitted quote.
    quoted: i64,
    p50_seconds: Option<f64>,
    p95_seconds: Option<f64>,
    max_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TimeToQuote;

impl TimeToQuote {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = sqlx::query!(
            r#"WITH quoted AS (
                   SELECT team_id, extract(epoch FROM first_quoted_at - created_at) AS took
                   FROM opportunities WHERE tenant_id = $1 AND first_quoted_at IS NOT NULL)
               SELECT team_id, count(*) AS "quoted!",
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY took) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY took) AS p95,
                      max(took)::float8 AS max
               FROM quoted GROUP BY team_id ORDER BY team_id"#,
            tenant,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        let secs = to_the_millisecond;
        let teams: Vec<TeamTimeToQuote> = rows
            .into_iter()
            .map(|r| TeamTimeToQuote { team_id: r.team_id, quoted: r.quoted, p50_seconds: secs(r.p50), p95_seconds: secs(r.p95), max_seconds: secs(r.max) })
            .collect();
        Ok(Cached::data(teams))
    }
}

/// Time to quote per team: how many deals have a submitted quote, and the median, 95th
/// percentile and longest time from a deal's creation to its first submitted quote. For
/// whoever sees more than their own deals (managers, finance, admins).
#[utoipa::path(get, path = "/v1/quotes/time-to-quote", params(BoundParams), tag = "quotes",
    responses((status = 200, description = "`data`: time to quote per team; `staleness`"), (status = 403), (status = 503)))]
async fn time_to_quote(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    tenant_wide(&state, &who, "read-time-to-quote", "quotes/time-to-quote", "time to quote").await?;
    state.read::<Opportunities>(&who, asked.with_default(false), TimeToQuote).await
}
