//! Opportunities: one with its quotes and timeline (a strong read: it carries money), and
//! lists in the caller's scope.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::PgConnection;
use tidemark_events::opportunity::{Stage, STAGES};
use tidemark_events::policy::{self, Action, Owned, Scope, Subject};
use tidemark_http::{Principal, Problem, ProblemPath, ProblemQuery};
use tidemark_projectors::quotes::QuoteView;
use tidemark_projectors::{Activities, Engagements, Opportunities};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::access::{list_scope, scope_filter};
use crate::cache::Cached;
use crate::freshness::{database, Staleness};
use crate::paging::{cursor, cursors, page, page_size, page_sizes};
use crate::read::{AskedBound, BoundParams, Refusal, Standings};
use crate::routes::activities;
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_opportunity)).routes(routes!(list_opportunities))
}

#[derive(Serialize, ToSchema)]
struct OpportunityRow {
    id: Uuid,
    account_id: Uuid,
    name: String,
    owner_id: String,
    team_id: Option<String>,
    shared_with: Vec<String>,
    #[serde(skip)]
    amount: Decimal,
    #[serde(skip)]
    currency: String,
    close_date: NaiveDate,
    stage: String,
    probability: i32,
    close_reason: Option<String>,
    next_step: Option<String>,
    description: Option<String>,
    /// The accepted quote whose total the amount follows.
    synced_quote_id: Option<Uuid>,
    /// Each quote with its lines, totals, status, approval chain and history (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<QuoteView>>)]
    quotes: Option<Json<Vec<QuoteView>>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An opportunity as the API shows it: the amount as an exact decimal string.
#[derive(Serialize, ToSchema)]
struct OpportunityView {
    #[serde(flatten)]
    row: OpportunityRow,
    #[schema(value_type = Object, example = json!({"value": "12000.00", "currency": "EUR"}))]
    amount: Value,
    /// open, won or lost
    status: &'static str,
}

impl From<OpportunityRow> for OpportunityView {
    fn from(row: OpportunityRow) -> Self {
        let status = match Stage::parse(&row.stage) {
            Some(Stage::ClosedWon) => "won",
            Some(Stage::ClosedLost) => "lost",
            _ => "open",
        };
        let amount = json!({"value": row.amount.to_string(), "currency": row.currency});
        OpportunityView { row, amount, status }
    }
}

#[derive(Serialize, ToSchema)]
struct OpportunityAnswer {
    data: OpportunityView,
    staleness: Staleness,
    consistency_token: String,
}

/// One opportunity, if `subject` may read it, with its activity timeline.
/// `activities_at`: where the activities projection stood (its timeline is in the answer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct One {
    id: Uuid,
    subject: Subject,
    activities_at: Standings,
    engagements_at: Standings,
    today: NaiveDate,
}

impl One {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let id = self.id;
        let row = sqlx::query_as!(
            OpportunityRow,
            r#"SELECT id, account_id, name, owner_id, team_id, shared_with, amount, currency, close_date, stage, probability, close_reason,
                      next_step, description, synced_quote_id, version, created_at, updated_at, quotes AS "quotes?: Json<Vec<QuoteView>>"
               FROM opportunities WHERE id = $1 AND tenant_id = $2"#,
            id,
            tenant,
        )
        .fetch_optional(&mut *db)
            .await
            .map_err(database)?;
        let row = row.ok_or_else(|| Problem::not_found(format!("no opportunity {id} in the read model")))?;
        let record = Owned { owner: &row.owner_id, team: row.team_id.as_deref(), shared_with: &row.shared_with };
        if let Err(denial) = policy::authorize(&self.subject, &Action::ReadOpportunity { record }) {
            return Err(Refusal::Denied { denial, action: "read-opportunity", target: format!("opportunity/{id}") });
        }
        let timeline = activities::timeline(db, tenant, id, self.today).await?;
        let engagements = sqlx::query_scalar!(
            r#"SELECT jsonb_build_object('id', id, 'rule', rule, 'first', first, 'then', "then", 'contact_id', contact_id,
                                         'rationale', rationale, 'recorded_at', recorded_at) AS "detection!"
               FROM engagement_detections WHERE tenant_id = $1 AND opportunity_id = $2 ORDER BY recorded_at, id"#,
            tenant,
            id,
        )
        .fetch_all(&mut *db)
        .await
        .map_err(database)?;
        let mut view = json!(OpportunityView::from(row));
        view["activities"] = json!(timeline);
        // The sequences the detector found on it ("an email opened, then a meeting").
        view["engagements"] = json!(engagements);
        Ok(Cached::data(view))
    }
}

/// A page of the opportunities in `scope`, optionally of one owner and stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Page {
    scope: Scope,
    owner: Option<String>,
    stage: Option<Stage>,
    after: Option<Uuid>,
    limit: i64,
}

impl Page {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let (scope_owner, scope_team) = scope_filter(&self.scope);
        // Lists leave the quotes out; the detail has them.
        let rows = sqlx::query_as!(
            OpportunityRow,
            r#"SELECT id, account_id, name, owner_id, team_id, shared_with, amount, currency, close_date, stage, probability, close_reason,
                      next_step, description, synced_quote_id, version, created_at, updated_at, NULL::jsonb AS "quotes?: Json<Vec<QuoteView>>"
               FROM opportunities
               WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR stage = $3)
                 AND ($4::uuid IS NULL OR id > $4)
                 AND ($6::text IS NULL OR owner_id = $6 OR $6 = ANY(shared_with)) AND ($7::text IS NULL OR team_id = $7)
               ORDER BY id LIMIT $5"#,
            tenant,
            self.owner.as_deref(),
            self.stage.map(Stage::name),
            self.after,
            self.limit + 1,
            scope_owner,
            scope_team,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        Ok(page(rows.into_iter().map(OpportunityView::from).collect(), self.limit, |o| o.row.id))
    }
}

/// One opportunity. It carries money, so it is a strong read unless `consistency=eventual`.
#[utoipa::path(get, path = "/v1/opportunities/{id}", params(BoundParams), tag = "opportunities",
    responses((status = 200, body = OpportunityAnswer), (status = 400), (status = 404), (status = 503)))]
async fn get_opportunity(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let bound = asked.with_default(true);
    let activities_at = state.also_hold::<Activities>(&bound).await?;
    let engagements_at = state.also_hold::<Engagements>(&bound).await?;
    let query = One { id, subject: who.subject(), activities_at, engagements_at, today: Utc::now().date_naive() };
    state.read::<Opportunities>(&who, bound, query).await
}

fn stage_names() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(STAGES.iter().map(|(stage, _)| stage.name()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    owner: Option<String>,
    /// A stage name, e.g. Qualification.
    #[param(schema_with = stage_names)]
    stage: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = page_sizes)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursors)]
    cursor: Option<String>,
}

/// Opportunities, optionally of one owner and stage, oldest first, a page at a time.
/// Eventual unless asked otherwise: lists are for finding, the detail is for deciding.
#[utoipa::path(get, path = "/v1/opportunities", params(ListParams, BoundParams), tag = "opportunities",
    responses((status = 200, description = "`data`: opportunities; `next_cursor`; `staleness`; `consistency_token`"), (status = 400), (status = 422), (status = 503)))]
async fn list_opportunities(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<ListParams>,
) -> Result<Response, Problem> {
    let stage = params.stage.map(|n| Stage::try_from(n).map_err(|e| Problem::invalid_field("stage", e))).transpose()?;
    let limit = page_size(params.limit)?;
    let after = cursor(params.cursor)?;
    let scope = list_scope(&state, &who).await?;
    let query = Page { scope, owner: params.owner, stage, after, limit };
    state.read::<Opportunities>(&who, asked.with_default(false), query).await
}
