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
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
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
    tidemark_http::finish(router, utoipa::openapi::OpenApiBuilder::new().build(), gate)
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
    let row = sqlx::query("SELECT owner_id, team_id, version FROM opportunities WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
        .bind(id)
        .bind(&who.tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    let (owner, team): (String, Option<String>) = (row.get("owner_id"), row.get("team_id"));
    if owner != who.actor_id && !(is_manager(who) && team == who.team) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "not-your-record", "Forbidden", "this opportunity is not yours"));
    }
    Ok(row.get("version"))
}

#[derive(Deserialize)]
struct OpenAccount {
    name: String,
}

async fn open_account(State(pool): State<PgPool>, who: Principal, ProblemJson(body): ProblemJson<OpenAccount>) -> Result<Response, Problem> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, tenant_id, name, version) VALUES ($1, $2, $3, 1)")
        .bind(id)
        .bind(&who.tenant_id)
        .bind(body.name)
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
    let inserted = sqlx::query(
        "INSERT INTO opportunities (id, tenant_id, account_id, name, owner_id, team_id, amount, currency, close_date, stage, version, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'Prospecting', 1, now() FROM accounts WHERE id = $3 AND tenant_id = $2",
    )
    .bind(id)
    .bind(&who.tenant_id)
    .bind(body.account_id)
    .bind(body.name)
    .bind(body.owner_id)
    .bind(&who.team)
    .bind(body.amount.value)
    .bind(body.amount.currency)
    .bind(body.close_date)
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
    sqlx::query("UPDATE opportunities SET amount = $2, currency = $3, version = $4, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(body.amount.value)
        .bind(body.amount.currency)
        .bind(version)
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
    sqlx::query("UPDATE opportunities SET stage = $2, version = $3, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(&body.stage)
        .bind(version)
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
    sqlx::query("INSERT INTO quotes (id, opportunity_id, status, net, list, discount_percent, lines) VALUES ($1, $2, 'draft', $3, $4, $5, $6)")
        .bind(quote_id)
        .bind(id)
        .bind(net)
        .bind(list)
        .bind(discount)
        .bind(&body["lines"])
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    sqlx::query("UPDATE opportunities SET version = $2 WHERE id = $1").bind(id).bind(version).execute(&mut *tx).await.map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "version": version, "quote_id": quote_id }))).into_response())
}

/// Up to 10% needs no approval; up to 20% the team's manager; beyond, the manager and finance.
async fn submit_quote(State(pool): State<PgPool>, who: Principal, ProblemPath((id, quote)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    let mut tx = pool.begin().await.map_err(database)?;
    let version = writable(&mut tx, &who, id).await? + 1;
    let row = sqlx::query("SELECT q.discount_percent, o.team_id FROM quotes q JOIN opportunities o ON o.id = q.opportunity_id WHERE q.id = $1 AND q.opportunity_id = $2 AND q.status = 'draft'")
        .bind(quote)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "quote-not-draft", "A rule refused the command", "no draft quote to submit"))?;
    let (discount, team): (Decimal, Option<String>) = (row.get(0), row.get(1));
    let mut steps = Vec::new();
    if discount > Decimal::TEN {
        steps.push(("manager", team));
    }
    if discount > Decimal::from(20) {
        steps.push(("finance", None));
    }
    for (step, (approver, team)) in steps.iter().enumerate() {
        sqlx::query("INSERT INTO approval_steps (quote_id, step, approver, team_id) VALUES ($1, $2, $3, $4)")
            .bind(quote)
            .bind(step as i32 + 1)
            .bind(approver)
            .bind(team)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
    }
    let status = if steps.is_empty() { "approved" } else { "pending_approval" };
    sqlx::query("UPDATE quotes SET status = $2, submitted_by = $3, submitted_at = now() WHERE id = $1").bind(quote).bind(status).bind(&who.actor_id).execute(&mut *tx).await.map_err(database)?;
    sqlx::query("UPDATE opportunities SET version = $2 WHERE id = $1").bind(id).bind(version).execute(&mut *tx).await.map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version, StatusCode::OK))
}

async fn approve_quote(State(pool): State<PgPool>, who: Principal, ProblemPath((id, quote)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    let mut tx = pool.begin().await.map_err(database)?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM opportunities WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
        .bind(id)
        .bind(&who.tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    let waiting = sqlx::query("SELECT step, approver, team_id FROM approval_steps WHERE quote_id = $1 AND decided_at IS NULL ORDER BY step LIMIT 1")
        .bind(quote)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "nothing-to-approve", "A rule refused the command", "no step of this quote waits"))?;
    let (step, approver, team): (i32, String, Option<String>) = (waiting.get(0), waiting.get(1), waiting.get(2));
    let mine = who.roles.iter().any(|r| r.name() == approver) && (approver != "manager" || team == who.team);
    if !mine {
        return Err(Problem::new(StatusCode::FORBIDDEN, "not-the-approver", "Forbidden", format!("this step waits for {approver}")));
    }
    sqlx::query("UPDATE approval_steps SET decided_by = $3, decided_at = now() WHERE quote_id = $1 AND step = $2").bind(quote).bind(step).bind(&who.actor_id).execute(&mut *tx).await.map_err(database)?;
    sqlx::query("UPDATE quotes SET status = CASE WHEN EXISTS (SELECT 1 FROM approval_steps WHERE quote_id = $1 AND decided_at IS NULL) THEN status ELSE 'approved' END WHERE id = $1")
        .bind(quote)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    sqlx::query("UPDATE opportunities SET version = $2 WHERE id = $1").bind(id).bind(version + 1).execute(&mut *tx).await.map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(changed(id, version + 1, StatusCode::OK))
}

const COLUMNS: &str = "id, account_id, name, owner_id, team_id, amount::text AS amount, currency, close_date, stage, version";

fn opportunity(row: &sqlx::postgres::PgRow) -> Value {
    json!({
        "id": row.get::<Uuid, _>("id"), "account_id": row.get::<Uuid, _>("account_id"), "name": row.get::<String, _>("name"),
        "owner_id": row.get::<String, _>("owner_id"), "team_id": row.get::<Option<String>, _>("team_id"),
        "amount": {"value": row.get::<String, _>("amount"), "currency": row.get::<String, _>("currency")},
        "close_date": row.get::<NaiveDate, _>("close_date"), "stage": row.get::<String, _>("stage"), "version": row.get::<i64, _>("version"),
    })
}

async fn get_opportunity(State(pool): State<PgPool>, who: Principal, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM opportunities WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(&who.tenant_id)
        .fetch_optional(&pool)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no opportunity {id}")))?;
    let mut view = opportunity(&row);
    let quotes: Vec<Value> = sqlx::query_scalar("SELECT jsonb_build_object('id', id, 'status', status, 'net', net::text) FROM quotes WHERE opportunity_id = $1")
        .bind(id)
        .fetch_all(&pool)
        .await
        .map_err(database)?;
    view["quotes"] = json!(quotes);
    Ok(Json(json!({ "data": view })).into_response())
}

/// The caller's own opportunities (a manager's: their team's), a page of 50.
async fn list_opportunities(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1 AND (owner_id = $2 OR ($3 AND team_id = $4)) ORDER BY id LIMIT 50"
    ))
    .bind(&who.tenant_id)
    .bind(&who.actor_id)
    .bind(is_manager(&who))
    .bind(&who.team)
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": rows.iter().map(opportunity).collect::<Vec<_>>() })).into_response())
}

async fn pipeline(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let cells: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('owner_id', owner_id, 'stage', stage, 'currency', currency, 'count', count(*), 'amount', sum(amount)::text)
         FROM opportunities WHERE tenant_id = $1 AND (owner_id = $2 OR ($3 AND team_id = $4))
         GROUP BY owner_id, stage, currency ORDER BY owner_id, currency",
    )
    .bind(&who.tenant_id)
    .bind(&who.actor_id)
    .bind(is_manager(&who))
    .bind(&who.team)
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": cells })).into_response())
}

/// The steps that wait for the caller: the first undecided step of each pending quote.
async fn my_approvals(State(pool): State<PgPool>, who: Principal) -> Result<Response, Problem> {
    let roles: Vec<&str> = who.roles.iter().map(|r| r.name()).collect();
    let items: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('opportunity_id', o.id, 'quote_id', q.id, 'step', s.step, 'approver', s.approver,
                                   'requested_by', q.submitted_by, 'net_amount', q.net::text, 'discount_percent', q.discount_percent::text,
                                   'age_seconds', extract(epoch FROM now() - q.submitted_at)::bigint)
         FROM approval_steps s JOIN quotes q ON q.id = s.quote_id JOIN opportunities o ON o.id = q.opportunity_id
         WHERE o.tenant_id = $1 AND s.decided_at IS NULL AND s.approver = ANY($2) AND (s.approver <> 'manager' OR s.team_id = $3)
           AND q.submitted_by <> $4
           AND s.step = (SELECT min(step) FROM approval_steps w WHERE w.quote_id = s.quote_id AND w.decided_at IS NULL)
         ORDER BY q.submitted_at LIMIT 100",
    )
    .bind(&who.tenant_id)
    .bind(&roles)
    .bind(&who.team)
    .bind(&who.actor_id)
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(Json(json!({ "data": items })).into_response())
}
