//! The account overview: the account, its opportunities (those the caller may see) summed
//! by status and currency, its contacts and its latest activities.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_http::Problem;
use uuid::Uuid;

use crate::freshness::database;
use crate::{activities, contacts};

#[derive(Serialize, sqlx::FromRow)]
struct Deal {
    id: Uuid,
    name: String,
    owner_id: String,
    stage: String,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: String,
    close_date: NaiveDate,
}

#[derive(Serialize, sqlx::FromRow)]
struct Totals {
    /// open, won or lost
    status: String,
    currency: String,
    count: i64,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
}

const SHOWN: i64 = 50;

/// The overview of account `id`; `scope` filters the opportunities as everywhere else.
pub async fn overview(
    db: &mut PgConnection,
    tenant: &str,
    id: Uuid,
    (scope_owner, scope_team): (Option<&str>, Option<&str>),
    personal: bool,
    today: NaiveDate,
) -> Result<Value, Problem> {
    let account: Option<(String, DateTime<Utc>, i64)> = sqlx::query_as("SELECT name, created_at, version FROM accounts WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *db)
        .await
        .map_err(database)?;
    let (name, created_at, version) = account.ok_or_else(|| Problem::not_found(format!("no account {id} in the read model")))?;
    let visible = "tenant_id = $1 AND account_id = $2 AND ($3::text IS NULL OR owner_id = $3 OR $3 = ANY(shared_with)) AND ($4::text IS NULL OR team_id = $4)";
    let totals: Vec<Totals> = sqlx::query_as(&format!(
        "SELECT CASE stage WHEN 'Closed Won' THEN 'won' WHEN 'Closed Lost' THEN 'lost' ELSE 'open' END AS status, currency,
                count(*) AS count, round(sum(amount), 2) AS amount
         FROM opportunities WHERE {visible} GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(tenant)
    .bind(id)
    .bind(scope_owner)
    .bind(scope_team)
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let deals: Vec<Deal> = sqlx::query_as(&format!(
        "SELECT id, name, owner_id, stage, amount, currency, close_date FROM opportunities WHERE {visible} ORDER BY close_date, id LIMIT {SHOWN}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(scope_owner)
    .bind(scope_team)
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let people = contacts::contacts(db, tenant, (None, Some(id)), (None, SHOWN), personal).await?;
    let mut timeline = activities::timeline(db, tenant, id, today).await?;
    timeline.truncate(SHOWN as usize);
    Ok(json!({
        "id": id, "name": name, "created_at": created_at, "version": version,
        "opportunity_totals": totals, "opportunities": deals, "contacts": people, "activities": timeline,
    }))
}
