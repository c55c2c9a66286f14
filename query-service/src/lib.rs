//! The query API over the read models. Every answer says what it is based on and whether
//! it meets the bound the caller asked for; see CONSISTENCY.md for the contract.

mod accounts;
mod activities;
mod approvals;
mod contacts;
pub mod bound;
mod cache;
mod forecast;
mod leads;
mod lineage;
pub mod freshness;
mod observability;
mod operations;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use tidemark_events::opportunity::{Stage, STAGES};
use tidemark_events::lead::LeadStatus;
use tidemark_events::Topics;
use tidemark_events::policy::{self, Action, Denial, Owned, Scope, Subject};
use tidemark_http::{audit, denials, Gate, Principal, Problem, ProblemPath, ProblemQuery, TokenCodec, CONSISTENCY_TOKEN};
use tidemark_projectors::{Accounts, Activities, AutomatedEdits, Contacts, Delegations, Leads, Opportunities, Pipeline, Projection};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use bound::Bound;
use cache::{AnswerCache, CacheKey, Cached};
use freshness::{database, Freshness, Staleness};

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    freshness: Freshness,
    topics: Topics,
    tokens: TokenCodec,
    cache: Arc<AnswerCache>,
    /// A projection that is behind and has made no progress for this long is unhealthy.
    stall_after: Duration,
    /// The log, for lineage.
    log: lineage::Log,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Tidemark query API",
    description = "Reads of the read models. Every answer has a `staleness` note (the offsets it reflects, the log end offsets, the lag in events and milliseconds, the bound asked for and whether it was met) and a `consistency_token` for monotonic reads. See CONSISTENCY.md."
))]
struct ApiDoc;

pub struct QueryConfig {
    pub topics: Topics,
    pub tokens: TokenCodec,
    pub stall_after: Duration,
    /// Reads the log for the auditors' lineage.
    pub log: tidemark_replay_tools::Replayer,
}

pub fn router(pool: PgPool, freshness: Freshness, config: QueryConfig, gate: Arc<Gate>) -> axum::Router {
    let state = AppState {
        pool,
        freshness,
        topics: config.topics,
        tokens: config.tokens,
        cache: Arc::default(),
        stall_after: config.stall_after,
        log: Arc::new(config.log),
    };
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(get_opportunity))
        .routes(routes!(list_opportunities))
        .routes(routes!(get_pipeline))
        .routes(routes!(my_approvals))
        .routes(routes!(approval_turnaround))
        .routes(routes!(get_forecast))
        .routes(routes!(my_tasks))
        .routes(routes!(list_contacts))
        .routes(routes!(get_account))
        .routes(routes!(list_leads))
        .routes(routes!(lead_latency))
        .routes(routes!(get_lead))
        .routes(routes!(get_contact))
        .routes(routes!(list_denials))
        .routes(routes!(list_rejections))
        .routes(routes!(list_personal_reads))
        .routes(routes!(list_automated_edits))
        .merge(lineage::routes())
        .routes(routes!(healthz))
        .routes(routes!(observability::projections_health))
        .routes(routes!(observability::metrics))
        .routes(routes!(operations::list_quarantine))
        .routes(routes!(operations::skip_quarantined))
        .with_state(state)
        .split_for_parts();
    tidemark_http::finish(router, api, gate)
}

/// The bound a caller asks for. Endpoints choose their own default consistency.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BoundParams {
    /// `strong` (reflect everything appended before the request arrived) or `eventual`.
    #[param(inline)]
    consistency: Option<Consistency>,
    /// Reflect every record older than this many milliseconds at arrival.
    max_staleness_ms: Option<u64>,
    /// How long to wait for the bound, in ms (default 5000; more is taken as 30000).
    wait_ms: Option<u64>,
    /// `fail` (default: 503 with Retry-After) or `serve` (answer anyway, marked `fresh: false`).
    #[param(inline)]
    on_stale: Option<OnStale>,
    /// A token from a command's or a read's answer (also as header `Consistency-Token`).
    #[param(schema_with = tidemark_http::openapi::consistency_token)]
    consistency_token: Option<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Consistency {
    Strong,
    Eventual,
}

#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum OnStale {
    #[default]
    Fail,
    Serve,
}

struct AskedBound {
    bound: Bound,
    consistency: Option<bool>,
}

impl AskedBound {
    /// The bound, with `strong_by_default` deciding when the caller named no consistency.
    fn with_default(self, strong_by_default: bool) -> Bound {
        Bound { strong: self.consistency.unwrap_or(strong_by_default), ..self.bound }
    }
}

impl FromRequestParts<AppState> for AskedBound {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ProblemQuery(p) = ProblemQuery::<BoundParams>::from_request_parts(parts, state).await?;
        let header = match parts.headers.get(CONSISTENCY_TOKEN) {
            Some(v) => Some(v.to_str().map_err(|_| Problem::bad_request("Consistency-Token must be visible ASCII"))?.to_string()),
            None => None,
        };
        let token = match header.or(p.consistency_token) {
            Some(text) => {
                let who = Principal::from_request_parts(parts, state).await?;
                Some(state.tokens.decode(&who.tenant_id, &text).map_err(|e| Problem::bad_request(e.to_string()).with("field", "consistency_token"))?)
            }
            None => None,
        };
        let consistency = p.consistency.map(|c| matches!(c, Consistency::Strong));
        let serve_stale = matches!(p.on_stale.unwrap_or_default(), OnStale::Serve);
        let wait = p.wait_ms.map_or(bound::DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(bound::MAX_WAIT));
        let bound = Bound { strong: false, max_staleness: p.max_staleness_ms.map(Duration::from_millis), token, wait, serve_stale };
        Ok(AskedBound { bound, consistency })
    }
}

/// The reads this service answers. A query names its answer in the cache, so whatever
/// decides who sees what (the subject, the scope) is a field here, and so part of the key.
/// Some fields only shape the key (another projection's standing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Query {
    /// `activities_at`: where the activities projection stood (its timeline is in the answer).
    Opportunity { id: Uuid, subject: Subject, activities_at: Standings, today: NaiveDate },
    MyTasks { user: String, today: NaiveDate },
    Leads { scope: Scope, id: Option<Uuid>, status: Option<String>, after: Option<Uuid>, limit: i64, personal: bool },
    LeadLatency,
    ApprovalTurnaround,
    /// `others`: where the opportunities, contacts and activities projections stood.
    Account { id: Uuid, scope: Scope, personal: bool, today: NaiveDate, others: [Standings; 3] },
    /// `personal`: whether name, email and phone are shown (the policy's rule for the caller).
    Contacts { id: Option<Uuid>, account_id: Option<Uuid>, after: Option<Uuid>, limit: i64, personal: bool },
    Opportunities { scope: Scope, owner: Option<String>, stage: Option<Stage>, after: Option<Uuid>, limit: i64 },
    Pipeline { scope: Scope, owner: Option<String> },
    Forecast { scope: Scope, owner: Option<String>, period: forecast::Period },
    /// `at`, to the second, dates the answer's ages; a cached answer is at most a second old.
    /// `delegations_at`: where the delegations projection stood, as the answer depends on it.
    MyApprovals { subject: Subject, at: DateTime<Utc>, delegations_at: Standings },
    AutomatedEdits { actor: Option<String>, limit: i64 },
}

/// Where another projection that an answer reads stood: (partition, next offset, generation).
/// Read only as part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Standings(Vec<(i32, i64, i64)>);

/// Why a read was refused.
enum Refusal {
    Problem(Problem),
    Denied { denial: Denial, action: &'static str, target: String },
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Refusal {
        Refusal::Problem(p)
    }
}

/// The SQL filter of a scope: (owner, team) that rows must have, when they must.
fn scope_filter(scope: &Scope) -> (Option<&str>, Option<&str>) {
    match scope {
        Scope::Own(user) => (Some(user.as_str()), None),
        Scope::Team(team) => (None, Some(team.as_str())),
        Scope::Tenant | Scope::Nothing => (None, None),
    }
}

/// A page size from the caller: 1 to 200, 50 when not given.
const PAGE_SIZES: std::ops::RangeInclusive<i64> = 1..=200;
const AUDIT_PAGE_SIZES: std::ops::RangeInclusive<i64> = 1..=1000;

fn page_size(limit: Option<i64>) -> Result<i64, Problem> {
    within("limit", limit.unwrap_or(50), PAGE_SIZES)
}

fn audit_limit(limit: Option<i64>) -> Result<i64, Problem> {
    within("limit", limit.unwrap_or(100), AUDIT_PAGE_SIZES)
}

fn within(field: &str, n: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, Problem> {
    match range.contains(&n) {
        true => Ok(n),
        false => Err(Problem::invalid_field(field, format!("must be between {} and {}", range.start(), range.end()))),
    }
}

fn page_sizes() -> utoipa::openapi::Object {
    tidemark_http::openapi::integer_in(PAGE_SIZES)
}

pub(crate) fn audit_page_sizes() -> utoipa::openapi::Object {
    tidemark_http::openapi::integer_in(AUDIT_PAGE_SIZES)
}

/// A `next_cursor`: the URL-safe base64 of the last id of a page (16 bytes, so 22
/// characters, the last of which carries 2 bits).
fn cursors() -> utoipa::openapi::Object {
    tidemark_http::openapi::matching(r"^[A-Za-z0-9_-]{21}[AQgw]$")
}

/// A page of `rows` read with one row more than `limit`: that row, when there, says a next
/// page exists, whose cursor is the page's last id.
fn page<T: Serialize>(rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Cached {
    let more = rows.len() as i64 > limit;
    let page: Vec<T> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = page.last().filter(|_| more).map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()));
    Cached { data: json!(page), extra: json!({ "next_cursor": next_cursor }) }
}

/// The id after which a page starts, from the previous page's `next_cursor`.
fn cursor(text: &str) -> Result<Uuid, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| Problem::bad_request("cursor: not a cursor from a previous page"))
}

/// The scope a list is read in; a subject that may see no opportunity is refused.
async fn list_scope(state: &AppState, who: &Principal) -> Result<Scope, Problem> {
    match policy::opportunity_scope(&who.subject()) {
        Scope::Nothing => {
            let denial = Denial { code: "role-may-not", reason: "these roles may not read opportunities".into() };
            Err(denials::deny(&state.pool, who, "read-opportunities", "opportunities", denial).await)
        }
        scope => Ok(scope),
    }
}

impl AppState {
    /// Holds a second projection that an answer reads to the same bound, and says where it
    /// stands. The staleness note speaks of the first projection, where the answer's main
    /// rows are.
    async fn also_hold<P: Projection>(&self, bound: &Bound) -> Result<Standings, Problem> {
        let ends = self.freshness.log_end_offsets(&P::topics(&self.topics)).await?;
        self.freshness.await_bound(&self.pool, P::NAME, &ends, bound).await?;
        let mut db = self.pool.acquire().await.map_err(database)?;
        let mut standing: Vec<_> = freshness::standings(&mut db, P::NAME)
            .await
            .map_err(database)?
            .into_iter()
            .map(|s| (s.partition, s.next_offset, s.generation))
            .collect();
        standing.sort();
        Ok(Standings(standing))
    }

    /// Waits for the bound, then answers from one repeatable-read snapshot, so the note
    /// speaks of exactly the rows returned.
    #[tracing::instrument(name = "read", skip_all, fields(projection = P::NAME, tenant = %who.tenant_id, user = %who.actor_id))]
    async fn read<P: Projection>(&self, who: &Principal, bound: Bound, query: Query) -> Result<Response, Problem> {
        let tenant = who.tenant_id.as_str();
        let topics = P::topics(&self.topics);
        let ends = self.freshness.log_end_offsets(&topics).await?;
        self.freshness.await_bound(&self.pool, P::NAME, &ends, &bound).await?;

        let mut tx = self.pool.begin().await.map_err(database)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await.map_err(database)?;
        let standing = freshness::standings(&mut tx, P::NAME).await.map_err(database)?;
        let key = CacheKey::new(tenant, query, &standing);
        let answer = match self.cache.get(&key).await {
            Some(answer) => answer,
            None => match run(&mut tx, tenant, key.query()).await {
                Ok(answer) => {
                    let answer = Arc::new(answer);
                    self.cache.insert(key, answer.clone()).await;
                    answer
                }
                Err(Refusal::Problem(problem)) => return Err(problem),
                Err(Refusal::Denied { denial, action, target }) => return Err(denials::deny(&self.pool, who, action, &target, denial).await),
            },
        };
        tx.commit().await.map_err(database)?;

        let note: Staleness = self.freshness.note(P::NAME, &ends, &standing, &bound).await;
        let token = self.tokens.encode(tenant, &freshness::answer_token(bound.token.as_ref(), &standing));
        let mut headers = HeaderMap::new();
        headers.insert("staleness-lag-events", HeaderValue::from(note.lag_events));
        if let Some(ms) = note.lag_ms {
            headers.insert("staleness-lag-ms", HeaderValue::from(ms));
        }
        headers.insert("staleness-fresh", HeaderValue::from_static(if note.fresh { "true" } else { "false" }));
        headers.insert(CONSISTENCY_TOKEN, HeaderValue::from_str(&token).expect("tokens are ASCII"));
        let mut body = json!({ "data": answer.data, "staleness": note, "consistency_token": token });
        if let Value::Object(extra) = &answer.extra {
            body.as_object_mut().expect("an object").extend(extra.clone());
        }
        let shown = shows_personal_data(&body["data"]);
        let mut response = (StatusCode::OK, headers, Json(body)).into_response();
        if shown {
            response.extensions_mut().insert(PersonalDataShown);
        }
        Ok(response)
    }
}

async fn run(db: &mut PgConnection, tenant: &str, query: &Query) -> Result<Cached, Refusal> {
    let data = |v: Value| Cached { data: v, extra: json!({}) };
    match query {
        Query::Contacts { id: Some(id), account_id, after, limit, personal } => {
            let found = contacts::contacts(db, tenant, (Some(*id), *account_id), (*after, *limit), *personal).await?;
            let one = found.into_iter().next().ok_or_else(|| Problem::not_found(format!("no contact {id} in the read model")))?;
            Ok(data(json!(one)))
        }
        Query::Contacts { id: None, account_id, after, limit, personal } => {
            let rows = contacts::contacts(db, tenant, (None, *account_id), (*after, *limit + 1), *personal).await?;
            Ok(page(rows, *limit, |c| c.id))
        }
        Query::Account { id, scope, personal, today, .. } => {
            Ok(data(accounts::overview(db, tenant, *id, scope_filter(scope), *personal, *today).await?))
        }
        Query::Leads { scope, id: Some(id), status, after, limit, personal } => {
            // Read whatever its owner, so that another's lead is refused (and recorded), not hidden.
            let found = leads::leads(db, tenant, (None, None), (Some(*id), status.as_deref()), (*after, *limit), *personal).await?;
            let lead = found.into_iter().next().ok_or_else(|| Problem::not_found(format!("no lead {id} in the read model")))?;
            if let Err(denial) = policy::within(scope, (lead.owner_id.as_deref(), lead.team_id.as_deref()), "lead") {
                return Err(Refusal::Denied { denial, action: "read-lead", target: format!("lead/{id}") });
            }
            Ok(data(json!(lead)))
        }
        Query::Leads { scope, id: None, status, after, limit, personal } => {
            let rows = leads::leads(db, tenant, scope_filter(scope), (None, status.as_deref()), (*after, *limit + 1), *personal).await?;
            Ok(page(rows, *limit, |l| l.id))
        }
        Query::LeadLatency => Ok(data(leads::assignment_latency(db, tenant).await?)),
        Query::ApprovalTurnaround => Ok(data(approvals::turnaround(db, tenant).await?)),
        Query::MyTasks { user, today } => Ok(data(json!(activities::open_tasks(db, tenant, user, *today).await?))),
        Query::Opportunity { id, subject, today, .. } => {
            let row: Option<OpportunityRow> = sqlx::query_as(&format!("SELECT {COLUMNS}, quotes FROM opportunities WHERE id = $1 AND tenant_id = $2"))
                .bind(id)
                .bind(tenant)
                .fetch_optional(&mut *db)
                .await
                .map_err(database)?;
            let row = row.ok_or_else(|| Problem::not_found(format!("no opportunity {id} in the read model")))?;
            let record = Owned { owner: &row.owner_id, team: row.team_id.as_deref(), shared_with: &row.shared_with };
            if let Err(denial) = policy::authorize(subject, &Action::ReadOpportunity { record }) {
                return Err(Refusal::Denied { denial, action: "read-opportunity", target: format!("opportunity/{id}") });
            }
            let timeline = activities::timeline(db, tenant, *id, *today).await?;
            let mut view = json!(OpportunityView::from(row));
            view["activities"] = json!(timeline);
            Ok(data(view))
        }
        Query::Opportunities { scope, owner, stage, after, limit } => {
            let (scope_owner, scope_team) = scope_filter(scope);
            // Lists leave the quotes out; the detail has them.
            let rows: Vec<OpportunityRow> = sqlx::query_as(&format!(
                "SELECT {COLUMNS}, NULL::jsonb AS quotes FROM opportunities
                 WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR stage = $3)
                   AND ($4::uuid IS NULL OR id > $4)
                   AND ($6::text IS NULL OR owner_id = $6 OR $6 = ANY(shared_with)) AND ($7::text IS NULL OR team_id = $7)
                 ORDER BY id LIMIT $5"
            ))
            .bind(tenant)
            .bind(owner)
            .bind(stage.map(Stage::name))
            .bind(after)
            .bind(limit + 1)
            .bind(scope_owner)
            .bind(scope_team)
            .fetch_all(db)
            .await
            .map_err(database)?;
            Ok(page(rows.into_iter().map(OpportunityView::from).collect(), *limit, |o| o.row.id))
        }
        Query::Pipeline { scope, owner } => {
            let (scope_owner, scope_team) = scope_filter(scope);
            let mut cells: Vec<PipelineCell> = sqlx::query_as(
                "SELECT owner_id, stage, currency, sum(count)::bigint AS count, sum(amount) AS amount FROM pipeline
                 WHERE tenant_id = $1 AND ($2::text IS NULL OR owner_id = $2)
                   AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR team_id = $4)
                 GROUP BY owner_id, stage, currency ORDER BY owner_id, currency",
            )
            .bind(tenant)
            .bind(owner)
            .bind(scope_owner)
            .bind(scope_team)
            .fetch_all(db)
            .await
            .map_err(database)?;
            let order = |name: &str| STAGES.iter().position(|(s, _)| s.name() == name).unwrap_or(STAGES.len());
            cells.sort_by(|a, b| (&a.owner_id, order(&a.stage), &a.currency).cmp(&(&b.owner_id, order(&b.stage), &b.currency)));
            Ok(data(json!(cells)))
        }
        Query::Forecast { scope, owner, period } => {
            Ok(data(json!(forecast::forecast(db, tenant, scope_filter(scope), owner.as_deref(), *period).await?)))
        }
        Query::MyApprovals { subject, at, .. } => Ok(data(json!(approvals::mine(db, tenant, subject, *at).await?))),
        Query::AutomatedEdits { actor, limit } => {
            let rows: Vec<Value> = sqlx::query_scalar(
                "SELECT to_jsonb(e) - 'tenant_id' FROM automated_edits e WHERE tenant_id = $1 AND ($2::text IS NULL OR actor_id = $2)
                 ORDER BY recorded_at DESC, event_id DESC LIMIT $3",
            )
            .bind(tenant)
            .bind(actor)
            .bind(limit)
            .fetch_all(db)
            .await
            .map_err(database)?;
            Ok(data(json!(rows)))
        }
    }
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
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
    /// The accepted quote whose total the amount follows.
    synced_quote_id: Option<Uuid>,
    /// Each quote with its lines, totals, status, approval chain and history (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    quotes: Option<Value>,
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

const COLUMNS: &str =
    "id, account_id, name, owner_id, team_id, shared_with, amount, currency, close_date, stage, probability, close_reason, synced_quote_id, version, created_at, updated_at";

/// One opportunity. It carries money, so it is a strong read unless `consistency=eventual`.
#[utoipa::path(get, path = "/v1/opportunities/{id}", params(BoundParams), tag = "opportunities",
    responses((status = 200, body = OpportunityAnswer), (status = 400), (status = 404), (status = 503)))]
async fn get_opportunity(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemPath(id): ProblemPath<Uuid>,
) -> Result<Response, Problem> {
    let bound = asked.with_default(true);
    let activities_at = state.also_hold::<Activities>(&bound).await?;
    let query = Query::Opportunity { id, subject: who.subject(), activities_at, today: Utc::now().date_naive() };
    state.read::<Opportunities>(&who, bound, query).await
}

fn stage_names() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(STAGES.iter().map(|(stage, _)| stage.name()))
}

fn lead_statuses() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(LeadStatus::names())
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
    let after = params.cursor.map(|c| cursor(&c)).transpose()?;
    let scope = list_scope(&state, &who).await?;
    let query = Query::Opportunities { scope, owner: params.owner, stage, after, limit };
    state.read::<Opportunities>(&who, asked.with_default(false), query).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PipelineParams {
    owner: Option<String>,
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
    state.read::<Pipeline>(&who, asked.with_default(false), Query::Pipeline { scope, owner: params.owner }).await
}

/// Your open tasks, the most urgent first, each marked `overdue` when its due date has
/// passed. Eventual unless asked otherwise.
#[utoipa::path(get, path = "/v1/tasks/mine", params(BoundParams), tag = "activities",
    responses((status = 200, description = "`data`: open tasks; `staleness`; `consistency_token`"), (status = 400), (status = 503)))]
async fn my_tasks(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    let query = Query::MyTasks { user: who.actor_id.clone(), today: Utc::now().date_naive() };
    state.read::<Activities>(&who, asked.with_default(false), query).await
}

/// Records, for auditors, that an answer showed personal fields, when it did: an empty
/// list, or rows whose fields were withheld or erased, showed nobody's.
async fn seen(state: &AppState, who: &Principal, target: String, answer: Result<Response, Problem>) -> Result<Response, Problem> {
    let answer = answer?;
    if answer.extensions().get::<PersonalDataShown>().is_some() {
        audit::record_personal_read(&state.pool, who, &target).await;
    }
    Ok(answer)
}

/// Marks an answer in which some row's personal fields are shown.
#[derive(Clone, Copy)]
struct PersonalDataShown;

/// Whether any row in `data` shows personal fields (`"personal_fields": "shown"`).
fn shows_personal_data(data: &Value) -> bool {
    match data {
        Value::Object(fields) => fields.get("personal_fields").is_some_and(|v| v == "shown") || fields.values().any(shows_personal_data),
        Value::Array(rows) => rows.iter().any(shows_personal_data),
        _ => false,
    }
}

/// Refuses those who may not read contacts; says whether the caller sees personal fields.
async fn contact_reader(state: &AppState, who: &Principal, target: &str) -> Result<bool, Problem> {
    let subject = who.subject();
    if let Err(denial) = policy::authorize(&subject, &Action::ReadContacts) {
        return Err(denials::deny(&state.pool, who, "read-contacts", target, denial).await);
    }
    Ok(policy::may_see_personal_fields(&subject))
}

/// The account overview: the account, its opportunities that you may see (the first 50,
/// and totals by status and currency), its contacts (personal fields as for contacts) and
/// its latest activities. Eventual unless asked otherwise; every read model in the answer
/// is held to the bound, and the note speaks of the accounts projection.
#[utoipa::path(get, path = "/v1/accounts/{id}", params(BoundParams), tag = "accounts",
    responses((status = 200, description = "`data`: the overview; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_account(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let scope = list_scope(&state, &who).await?;
    let personal = contact_reader(&state, &who, &format!("account/{id}")).await?;
    let bound = asked.with_default(false);
    let others = [state.also_hold::<Opportunities>(&bound).await?, state.also_hold::<Contacts>(&bound).await?, state.also_hold::<Activities>(&bound).await?];
    let query = Query::Account { id, scope, personal, today: Utc::now().date_naive(), others };
    seen(&state, &who, format!("contacts of account/{id}"), state.read::<Accounts>(&who, bound, query).await).await
}

/// Who may read leads, in which scope, and whether with personal fields.
async fn lead_reader(state: &AppState, who: &Principal, target: &str) -> Result<(Scope, bool), Problem> {
    let subject = who.subject();
    if let Err(denial) = policy::authorize(&subject, &Action::ReadLeads) {
        return Err(denials::deny(&state.pool, who, "read-leads", target, denial).await);
    }
    Ok((policy::opportunity_scope(&subject), policy::may_see_personal_fields(&subject)))
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
async fn list_leads(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemQuery(params): ProblemQuery<LeadParams>) -> Result<Response, Problem> {
    let (scope, personal) = lead_reader(&state, &who, "leads").await?;
    if let Some(status) = &params.status {
        LeadStatus::try_from(status.clone()).map_err(|e| Problem::invalid_field("status", e))?;
    }
    let limit = page_size(params.limit)?;
    let after = params.cursor.map(|c| cursor(&c)).transpose()?;
    let query = Query::Leads { scope, id: None, status: params.status, after, limit, personal };
    seen(&state, &who, "leads".to_string(), state.read::<Leads>(&who, asked.with_default(false), query).await).await
}

/// One lead, with its owner, assignment latency and what its conversion created. A strong
/// read unless asked otherwise.
#[utoipa::path(get, path = "/v1/leads/{id}", params(BoundParams), tag = "leads",
    responses((status = 200, description = "`data`: the lead; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_lead(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let (scope, personal) = lead_reader(&state, &who, &format!("lead/{id}")).await?;
    let query = Query::Leads { scope, id: Some(id), status: None, after: None, limit: 1, personal };
    seen(&state, &who, format!("lead/{id}"), state.read::<Leads>(&who, asked.with_default(true), query).await).await
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
    state.read::<Leads>(&who, asked.with_default(false), Query::LeadLatency).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContactParams {
    /// Only the contacts of this account.
    account_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = page_sizes)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursors)]
    cursor: Option<String>,
}

/// Contacts, optionally of one account, a page at a time. Name, email and phone are
/// personal data, shown only to roles that work with customers (`personal_fields`).
#[utoipa::path(get, path = "/v1/contacts", params(ContactParams, BoundParams), tag = "contacts",
    responses((status = 200, description = "`data`: contacts; `next_cursor`; `staleness`"), (status = 400), (status = 403), (status = 503)))]
async fn list_contacts(
    State(state): State<AppState>,
    who: Principal,
    asked: AskedBound,
    ProblemQuery(params): ProblemQuery<ContactParams>,
) -> Result<Response, Problem> {
    let personal = contact_reader(&state, &who, "contacts").await?;
    let limit = page_size(params.limit)?;
    let after = params.cursor.map(|c| cursor(&c)).transpose()?;
    let target = params.account_id.map_or("contacts".to_string(), |a| format!("contacts of account/{a}"));
    let query = Query::Contacts { id: None, account_id: params.account_id, after, limit, personal };
    seen(&state, &who, target, state.read::<Contacts>(&who, asked.with_default(false), query).await).await
}

/// One contact; personal fields as for the list. A strong read unless asked otherwise.
#[utoipa::path(get, path = "/v1/contacts/{id}", params(BoundParams), tag = "contacts",
    responses((status = 200, description = "`data`: the contact; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_contact(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let personal = contact_reader(&state, &who, &format!("contact/{id}")).await?;
    let query = Query::Contacts { id: Some(id), account_id: None, after: None, limit: 1, personal };
    seen(&state, &who, format!("contact/{id}"), state.read::<Contacts>(&who, asked.with_default(true), query).await).await
}

/// Approval turnaround: per approver kind (manager, finance) and team, the steps approved
/// and rejected, and the median, 95th percentile and longest wait from a step's request
/// to its decision. For whoever sees more than their own deals (managers, finance, admins).
#[utoipa::path(get, path = "/v1/approvals/turnaround", params(BoundParams), tag = "approvals",
    responses((status = 200, description = "`data`: turnaround per approver and team; `staleness`"), (status = 403), (status = 503)))]
async fn approval_turnaround(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    if let Scope::Own(_) | Scope::Nothing = policy::opportunity_scope(&who.subject()) {
        let denial = Denial { code: "role-may-not", reason: "approval turnaround across the tenant is for managers, finance and admins".into() };
        return Err(denials::deny(&state.pool, &who, "read-approval-turnaround", "approvals/turnaround", denial).await);
    }
    state.read::<Opportunities>(&who, asked.with_default(false), Query::ApprovalTurnaround).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ForecastParams {
    /// `month` or `quarter` (default), of the close date.
    #[param(inline)]
    period: Option<forecast::Period>,
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
    state.read::<Opportunities>(&who, asked.with_default(false), Query::Forecast { scope, owner: params.owner, period }).await
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
    state.read::<Opportunities>(&who, bound, Query::MyApprovals { subject: who.subject(), at, delegations_at }).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// At most this many, newest first (1 to 1000, default 100).
    #[param(schema_with = audit_page_sizes)]
    limit: Option<i64>,
}

/// Refuses (and records) whoever is not an auditor.
async fn auditor(state: &AppState, who: &Principal, target: &str) -> Result<(), Problem> {
    match policy::authorize(&who.subject(), &Action::ReadAudit) {
        Ok(()) => Ok(()),
        Err(denial) => Err(denials::deny(&state.pool, who, "read-audit", target, denial).await),
    }
}

/// The newest rows of one audit table of the caller's tenant, for auditors. Written when
/// the thing happens, so these lists are never behind.
async fn audit_rows(state: &AppState, who: &Principal, table: &'static str, limit: Option<i64>) -> Result<Response, Problem> {
    auditor(state, who, table).await?;
    let limit = audit_limit(limit)?;
    // `table` is one of this file's constants, never the caller's text.
    let rows: Vec<Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) - 'id' - 'tenant_id' FROM {table} t WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(&who.tenant_id)
    .bind(limit)
    .fetch_all(&state.pool)
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
    state.read::<AutomatedEdits>(&who, asked.with_default(false), Query::AutomatedEdits { actor: params.actor, limit }).await
}

/// Whether the service's dependencies (PostgreSQL, broker) answer and no projection is stalled.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(state): State<AppState>) -> Response {
    let postgres = sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ()).map_err(|e| e.to_string());
    let freshness = state.freshness.clone();
    let broker = tokio::task::spawn_blocking(move || freshness.broker_answers()).await.unwrap_or_else(|e| Err(e.to_string()));
    // Not ready while a projection that answers depend on is stalled: such answers would
    // wait for their bound and fail.
    let projections = match observability::unhealthy(&state).await {
        Ok(unhealthy) if unhealthy.is_empty() => Ok(()),
        Ok(unhealthy) => Err(format!("stalled: {}", unhealthy.join(", "))),
        Err(problem) => Err(problem.detail),
    };
    tidemark_http::health::answer(&[("postgres", postgres), ("broker", broker), ("projections", projections)], json!({}))
}
