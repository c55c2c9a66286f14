//! The monolithic baseline: the operations of Tidemark's HTTP API that the load generator
//! drives, served by a plain CRUD implementation directly on PostgreSQL. Each command
//! changes rows in place in one transaction; each query reads those same rows. No log, no
//! projections, no staleness: what the benchmark sets Tidemark beside.
//!
//! It shares Tidemark's HTTP edge (tokens, rate limits, problem+json), so the figures
//! compare the two designs behind the edge, not two edges.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use tidemark_http::{Gate, Principal, Problem, ProblemJson, ProblemPath};
use uuid::Uuid;

pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

pub fn router(pool: PgPool, gate: Arc<Gate>) -> Router {
    let router = Router::new()
        .route("/v1/accounts", post(open_account))
        .route("/v1/opportunities", post(create_opportunity).get(list_opportunities))
        .route("/v1/opportunities/{id}", get(get_opportunity))
        .route("/v1/opportunities/{id}/amount", post(change_amount))
        .route("/v1/opportunities/{id}/stage", post(move_stage))
        .route("/v1/opportunities/{id}/quotes", post(draft_quote))
        .route("/v1/opportunities/{id}/quotes/{quote}/submit", post(submit_quote))
        .route("/v1/opportunities/{id}/quotes/{quote}/approve", post(approve_quote))
        .route("/v1/pipeline", get(pipeline))
        .route("/v1/approvals/mine", get(my_approvals))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(pool);
    tidemark_http::finish(router, utoipa::openapi::OpenApiBuilder::new().build(), gate, tidemark_http::ServiceMetrics::default())
}

const STAGES: [&str; 6] = ["Prospecting", "Qualification", "Proposal", "Negotiation", "ClosedWon", "ClosedLost"];

fn database(e: sqlx::Error) -> Problem {
    Problem::unavailable(format!("the database: {e}"))
}

fn changed(id: Uuid, version: i64, status: StatusCode) -> Response {
    (status, Json(json!({ "id": id, "version": version }))).into_response()
}

fn is_manager(who: &Principal) -> bool {
    who.roles.iter().any(|r| r.name() == "manager")
}

/// The owner, and the managers of the owner's team, may change an opportunity.
async fn writable(tx: &mut sqlx::PgConnection, who: &Principal, id: Uuid) -> Result<i64, Problem> {
    let row = sqlx::query!("SELECT owner_id, team_id, version FROM baseline.opportunities WHERE id = $1 AND tenant_id = $2 FOR UPDATE", id, who.tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    if row.owner_id != who.actor_id && !(is_manager(who) && row.team_id == who.team) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "not-your-record", "Forbidden", "this opportunity is not yours"));
    }
    Ok(row.version)
}

async fn set_version(tx: &mut sqlx::PgConnection, id: Uuid, version: i64) -> Result<(), Problem> {
    sqlx::query!("UPDATE baseline.opportunities SET version = $2 WHERE id = $1", id, version).execute(tx).await.map_err(database)?;
    Ok(())
}

#[derive(Deserialize)]
struct OpenAccount {
    name: String,
}

async fn open_account(State(pool): State<PgPool>, who: Principal, ProblemJson(body): ProblemJson<OpenAccount>) -> Result<Response, Problem> {
    let id = Uuid::now_v7();
    sqlx::query!("INSERT INTO baseline.accounts (id, tenant_id, name, version) VALUES ($1, $2, $3, 1)", id, who.tenant_id, body.name)
        .execute(&pool)
        .await
        .map_err(database)?;
    Ok(changed(id, 1, StatusCode::CREATED))
}

#[derive(Deserialize)]
struct Money {
    value: Decimal,
    currency: String,
}

#[derive(Deserialize)]
struct CreateOpportunity {
    account_id: Uuid,
    name: String,
    owner_id: String,
    amount: Money,
    close_date: NaiveDate,
}

async fn create_opportunity(State(pool): State<PgPool>, who: Principal, ProblemJson(body): ProblemJson<CreateOpportunity>) -> Result<Response, Problem> {
    if body.owner_id != who.actor_id && !is_manager(&who) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "reps-create-their-own", "Forbidden", "a rep creates opportunities owned by themselves"));
    }
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        "INSERT INTO baseline.opportunities (id, tenant_id, account_id, name, owner_id, team_id, amount, currency, close_date, stage, version, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'Prospecting', 1, now() FROM baseline.accounts WHERE id = $3 AND tenant_id = $2",
        id,
        who.tenant_id,
        body.account_id,
        body.name,
        body.owner_id,
        who.team,
        body.amount.value,
        body.amount.currency,
        body.close_date,
    )
    .execute(&pool)
    .await
    .map_err(database)?;
    if inserted.rows_affected() == 0 {
        return Err(Problem::invalid_field("account_id", format!("account {} does not exist", body.account_id)));
    }
    Ok(changed(id, 1, StatusCode::CREATED))
}

#[derive(Deserialize)]
struct ChangeAmount {
    amount: Money,
}

async fn change_amount(State(pool): State<PgPool>, who: Principal, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<ChangeAmount>) -> Result<Response, Problem> {
    let mut tx = pool.begin().await.map_err(database)?;
    let version = writable(&mut tx, &who, id).await? + 1;
    sqlx::query!(
        "UPDATE baseline.opportunities SET amount = $2, currency = $3, version = $4, updated_at = now() WHERE id = $1",
        id,
        body.amount.value,
        body.amount.currency,
        version,
    )
    .execute(&mut *tx)
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version, StatusCode::OK))
}

#[derive(Deserialize)]
struct MoveStage {
    stage: String,
}

async fn move_stage(State(pool): State<PgPool>, who: Principal, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<MoveStage>) -> Result<Response, Problem> {
    if !STAGES.contains(&body.stage.as_str()) {
        return Err(Problem::invalid_field("stage", format!("unknown stage '{}'", body.stage)));
    }
    let mut tx = pool.begin().await.map_err(database)?;
    let version = writable(&mut tx, &who, id).await? + 1;
    sqlx::query!("UPDATE baseline.opportunities SET stage = $2, version = $3, updated_at = now() WHERE id = $1", id, body.stage, version)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version, StatusCode::OK))
}

#[derive(Deserialize)]
struct Line {
    quantity: Decimal,
    unit_price: Decimal,
    #[serde(default)]
    discount_percent: Decimal,
}

#[derive(Deserialize)]
struct DraftQuote {
    lines: Vec<Line>,
}

async fn draft_quote(State(pool): State<PgPool>, who: Principal, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<Value>) -> Result<Response, Problem> {
    let quote: DraftQuote = serde_json::from_value(body.clone()).map_err(|e| Problem::bad_request(e.to_string()))?;
    let list: Decimal = quote.lines.iter().map(|l| l.quantity * l.unit_price).sum();
    let net: Decimal = quote.lines.iter().map(|l| (l.quantity * l.unit_price * (Decimal::ONE_HUNDRED - l.discount_percent) / Decimal::ONE_HUNDRED).round_dp(2)).sum();
    let discount = quote.lines.iter().map(|l| l.discount_percent).max().unwrap_or_default();
    let mut tx = pool.begin().await.map_err(database)?;
    let version = writable(&mut tx, &who, id).await? + 1;
    let quote_id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO baseline.quotes (id, opportunity_id, status, net, list, discount_percent, lines) VALUES ($1, $2, 'draft', $3, $4, $5, $6)",
        quote_id,
        id,
        net,
        list,
        discount,
        body["lines"],
    )
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    set_version(&mut tx, id, version).await?;
    tx.commit().await.map_err(database)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "version": version, "quote_id": quote_id }))).into_response())
}

/// Up to 10% needs no approval; up to 20% the team's manager; beyond, the manager and finance.
async fn submit_quote(State(pool): State<PgPool>, who: Principal, ProblemPath((id, quote)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    let mut tx = pool.begin().await.map_err(database)?;
    let version = writable(&mut tx, &who, id).await? + 1;
    let row = sqlx::query!(
        "SELECT q.discount_percent, o.team_id FROM baseline.quotes q JOIN baseline.opportunities o ON o.id = q.opportunity_id WHERE q.id = $1 AND q.opportunity_id = $2 AND q.status = 'draft'",
        quote,
        id,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(database)?
    .ok_or_else(|| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "quote-not-draft", "A rule refused the command", "no draft quote to submit"))?;
    let (discount, team) = (row.discount_percent, row.team_id);
    let mut steps = Vec::new();
    if discount > Decimal::TEN {
        steps.push(("manager", team));
    }
    if discount > Decimal::from(20) {
        steps.push(("finance", None));
    }
    for (step, (approver, team)) in steps.iter().enumerate() {
        sqlx::query!("INSERT INTO baseline.approval_steps (quote_id, step, approver, team_id) VALUES ($1, $2, $3, $4)", quote, step as i32 + 1, approver, team.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(database)?;
    }
    let status = if steps.is_empty() { "approved" } else { "pending_approval" };
    sqlx::query!("UPDATE baseline.quotes SET status = $2, submitted_by = $3, submitted_at = now() WHERE id = $1", quote, status, who.actor_id)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    set_version(&mut tx, id, version).await?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version, StatusCode::OK))
}

async fn approve_quote(State(pool): State<PgPool>, who: Principal, ProblemPath((id, quote)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    let mut tx = pool.begin().await.map_err(database)?;
    let version = sqlx::query_scalar!("SELECT version FROM baseline.opportunities WHERE id = $1 AND tenant_id = $2 FOR UPDATE", id, who.tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    let waiting = sqlx::query!("SELECT step, approver, team_id FROM baseline.approval_steps WHERE quote_id = $1 AND decided_at IS NULL ORDER BY step LIMIT 1", quote)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "nothing-to-approve", "A rule refused the command", "no step of this quote waits"))?;
    let (step, approver, team) = (waiting.step, waiting.approver, waiting.team_id);
    let mine = who.roles.iter().any(|r| r.name() == approver) && (approver != "manager" || team == who.team);
    if !mine {
        return Err(Problem::new(StatusCode::FORBIDDEN, "not-the-approver", "Forbidden", format!("this step waits for {approver}")));
    }
    sqlx::query!("UPDATE baseline.approval_steps SET decided_by = $3, decided_at = now() WHERE quote_id = $1 AND step = $2", quote, step, who.actor_id)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    sqlx::query!(
        "UPDATE baseline.quotes SET status = CASE WHEN EXISTS (SELECT 1 FROM baseline.approval_steps WHERE quote_id = $1 AND decided_at IS NULL) THEN status ELSE 'approved' END WHERE id = $1",
        quote,
    )
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    set_version(&mut tx, id, version + 1).await?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version + 1, StatusCode::OK))
}

/// An opportunity as both reads answer it.
#[derive(Serialize)]
struct OpportunityRow {
    id: Uuid,
    account_id: Uuid,
    name: String,
    owner_id: String,
    team_id: Option<String>,
    #[serde(skip)]
    amount: String,
    #[serde(skip)]
    currency: String,
    close_date: NaiveDate,
    stage: String,
    version: i64,
}

fn opportunity(row: &OpportunityRow) -> Value {
    let mut view = json!(row);
    view["amount"] = json!({ "value": row.amount, "currency": row.currency });
    view
}

async fn get_opportunity(State(pool): State<PgPool>, who: Principal, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let row = sqlx::query_as!(
        OpportunityRow,
        r#"SELECT id, account_id, name, owner_id, team_id, amount::text AS "amount!", currency, close_date, stage, version
           FROM baseline.opportunities WHERE id = $1 AND tenant_id = $2"#,
        id,
        who.tenant_id,
    )
    .fetch_optional(&pool)
    .await
    .map_err(database)?
    .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    let mut view = opportunity(&row);
    let quotes = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object('id', id, 'status', status, 'net', net::text) AS "quote!" FROM baseline.quotes WHERE opportunity_id = $1"#,
        id,
    )
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    view["quotes"] = json!(quotes);
    Ok(Json(json!({ "data": view })).into_response())
}

/// The caller's own opportunities (a manager's: their team's), a page of 50.
async fn list_opportunities(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let rows = sqlx::query_as!(
        OpportunityRow,
        r#"SELECT id, account_id, name, owner_id, team_id, amount::text AS "amount!", currency, close_date, stage, version
           FROM baseline.opportunities WHERE tenant_id = $1 AND (owner_id = $2 OR ($3 AND team_id = $4)) ORDER BY id LIMIT 50"#,
        who.tenant_id,
        who.actor_id,
        is_manager(&who),
        who.team,
    )
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": rows.iter().map(opportunity).collect::<Vec<_>>() })).into_response())
}

async fn pipeline(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let cells = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object('owner_id', owner_id, 'stage', stage, 'currency', currency, 'count', count(*), 'amount', sum(amount)::text) AS "cell!"
           FROM baseline.opportunities WHERE tenant_id = $1 AND (owner_id = $2 OR ($3 AND team_id = $4))
           GROUP BY owner_id, stage, currency ORDER BY owner_id, currency"#,
        who.tenant_id,
        who.actor_id,
        is_manager(&who),
        who.team,
    )
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": cells })).into_response())
}

/// The steps that wait for the caller: the first undecided step of each pending quote.
async fn my_approvals(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let roles: Vec<String> = who.roles.iter().map(|r| r.name().to_string()).collect();
    let items = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object('opportunity_id', o.id, 'quote_id', q.id, 'step', s.step, 'approver', s.approver,
                                   'requested_by', q.submitted_by, 'net_amount', q.net::text, 'discount_percent', q.discount_percent::text,
                                   'age_seconds', extract(epoch FROM now() - q.submitted_at)::bigint) AS "item!"
         FROM baseline.approval_steps s JOIN baseline.quotes q ON q.id = s.quote_id JOIN baseline.opportunities o ON o.id = q.opportunity_id
         WHERE o.tenant_id = $1 AND s.decided_at IS NULL AND s.approver = ANY($2) AND (s.approver <> 'manager' OR s.team_id = $3)
           AND q.submitted_by <> $4
           AND s.step = (SELECT min(step) FROM baseline.approval_steps w WHERE w.quote_id = s.quote_id AND w.decided_at IS NULL)
         ORDER BY q.submitted_at LIMIT 100"#,
        who.tenant_id,
        &roles,
        who.team,
        who.actor_id,
    )
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": items })).into_response())
}
