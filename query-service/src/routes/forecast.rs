//! The forecast: open and won deals by owner, period of their close date and currency, in
//! the categories pipeline, best case, commit and closed, with probability-weighted
//! amounts. The stage decides the category (`Stage::forecast_category`, in the domain).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_events::opportunity::{ForecastCategory, Stage};
use tidemark_http::Problem;
use utoipa::ToSchema;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tidemark_events::policy::Scope;
use tidemark_http::{Principal, ProblemQuery};
use tidemark_projectors::Opportunities;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{list_scope, scope_filter};
use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_forecast))
}

/// month or quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Month,
    #[default]
    Quarter,
}

impl Period {
    /// `date_trunc` unit and `to_char` format: 2027-03, or 2027-Q1.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Period::Month => ("month", "YYYY-MM"),
            Period::Quarter => ("quarter", "YYYY-\"Q\"Q"),
        }
    }
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Figures {
    count: i64,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    amount: Decimal,
    /// Each deal's amount times its probability, summed.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    weighted: Decimal,
}

impl Figures {
    fn add(&mut self, count: i64, amount: Decimal, weighted: Decimal) {
        self.count += count;
        self.amount = money(self.amount + amount);
        self.weighted = money(self.weighted + weighted);
    }
}

/// Two decimals at least, as every amount the API shows.
fn money(value: Decimal) -> Decimal {
    let mut value = value.normalize();
    if value.scale() < 2 {
        value.rescale(2);
    }
    value
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastRow {
    owner_id: String,
    /// 2027-03 or 2027-Q1, from the close date.
    period: String,
    currency: String,
    /// pipeline, best_case, commit, closed: each with count, amount and weighted amount.
    #[schema(value_type = Object)]
    categories: BTreeMap<ForecastCategory, Figures>,
    /// Everything that is not lost.
    total: Figures,
}

/// The forecast rows in a scope (owner and team filters, as for the pipeline).
pub async fn forecast(
    db: &mut PgConnection,
    tenant: &str,
    (scope_owner, scope_team): (Option<&str>, Option<&str>),
    owner: Option<&str>,
    period: Period,
) -> Result<Vec<ForecastRow>, Problem> {
    let (unit, format) = period.sql();
    // A group has at least one row, and every opportunity a close date and an amount.
    let cells = sqlx::query!(
        r#"SELECT owner_id, to_char(date_trunc($5, close_date), $6) AS "period!", stage, currency,
                  count(*) AS "count!", sum(amount) AS "amount!", sum(amount * probability / 100) AS "weighted!"
           FROM opportunities
           WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2)
             AND ($3::text IS NULL OR owner_id = $3 OR $3 = ANY(shared_with)) AND ($4::text IS NULL OR team_id = $4)
           GROUP BY 1, 2, 3, 4"#,
        tenant,
        owner,
        scope_owner,
        scope_team,
        unit,
        format,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    let mut rows: BTreeMap<(String, String, String), ForecastRow> = BTreeMap::new();
    for cell in cells {
        let (owner_id, period, stage, currency, count, amount, weighted) =
            (cell.owner_id, cell.period, cell.stage, cell.currency, cell.count, cell.amount, cell.weighted);
        let Some(category) = Stage::parse(&stage).and_then(Stage::forecast_category) else {
            continue;
        };
        let weighted = weighted.round_dp(2);
        let row = rows.entry((owner_id.clone(), period.clone(), currency.clone())).or_insert_with(|| ForecastRow {
            owner_id,
            period,
            currency,
            categories: BTreeMap::new(),
            total: Figures::default(),
        });
        row.categories.entry(category).or_default().add(count, amount, weighted);
        row.total.add(count, amount, weighted);
    }
    Ok(rows.into_values().collect())
}

/// One deal of a forecast cell, as the read model holds it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct CellDeal {
    pub id: uuid::Uuid,
    name: String,
    stage: String,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    probability: i32,
    close_date: chrono::NaiveDate,
}

/// Which cell of the forecast: an owner's period (`2027-03`, `2027-Q1`) in a currency,
/// optionally one category.
pub struct Cell<'a> {
    pub owner: &'a str,
    pub period: Period,
    pub at: &'a str,
    pub currency: &'a str,
    pub category: Option<ForecastCategory>,
}

/// The deals of one forecast cell, and the cell's figures computed as `forecast` computes
/// them (weighted amounts summed and rounded per stage), so that they can be compared.
pub async fn cell(db: &mut PgConnection, tenant: &str, cell: &Cell<'_>) -> Result<(Vec<CellDeal>, Figures), Problem> {
    let (unit, format) = cell.period.sql();
    let deals = sqlx::query_as!(
        CellDeal,
        "SELECT id, name, stage, amount, probability, close_date FROM opportunities
         WHERE tenant_id = $1 AND owner_id = $2 AND currency = $3 AND to_char(date_trunc($4, close_date), $5) = $6
         ORDER BY id",
        tenant,
        cell.owner,
        cell.currency,
        unit,
        format,
        cell.at,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    let deals: Vec<CellDeal> = deals
        .into_iter()
        .filter(|d| Stage::parse(&d.stage).and_then(Stage::forecast_category).is_some_and(|c| cell.category.is_none_or(|wanted| c == wanted)))
        .collect();
    let mut by_stage: BTreeMap<&str, (i64, Decimal, Decimal)> = BTreeMap::new();
    for d in &deals {
        let s = by_stage.entry(&d.stage).or_default();
        *s = (s.0 + 1, s.1 + d.amount, s.2 + d.amount * Decimal::from(d.probability) / Decimal::from(100));
    }
    let mut figures = Figures::default();
    for (count, amount, weighted) in by_stage.into_values() {
        figures.add(count, amount, weighted.round_dp(2));
    }
    Ok((deals, figures))
}

/// The forecast rows in `scope`, optionally of one owner, by `period`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Rows {
    scope: Scope,
    owner: Option<String>,
    period: Period,
}

impl Rows {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(forecast(db, tenant, scope_filter(&self.scope), self.owner.as_deref(), self.period).await?))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ForecastParams {
    /// `month` or `quarter` (default), of the close date.
    #[param(inline)]
    period: Option<Period>,
    owner: Option<String>,
}

/// The forecast by owner, period and currency: count, amount and probability-weighted
/// amount in each category (pipeline: Prospecting and Qualification; best case: Proposal;
/// commit: Negotiation; closed: won), and in total. Lost deals count nowhere. Eventual
/// unless asked otherwise (a planning view).
#[utoipa::path(get, path = "/v1/forecast", params(ForecastParams, BoundParams), tag = "pipeline",
    responses((status = 200, description = "`data`: forecast rows; `staleness`; `consistency_token`"), (status = 400), (status = 422), (status = 503)))]
async fn get_forecast(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<ForecastParams>,
) -> Result<Response, Problem> {
    let period = params.period.unwrap_or_default();
    let scope = list_scope(&state, &who).await?;
    state.read::<Opportunities>(&who, asked.with_default(false), Rows { scope, owner: params.owner, period }).await
}
