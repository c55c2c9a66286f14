//! The account overview: the account, its opportunities (those the caller may see) summed
//! by status and currency, its contacts and its latest activities.

use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_http::Problem;
use uuid::Uuid;

use axum::extract::State;
use axum::response::Response;
use tidemark_events::policy::Scope;
use tidemark_http::{Principal, ProblemPath};
use tidemark_projectors::{Accounts, Activities, Contacts, Opportunities};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{contact_reader, list_scope, scope_filter};
use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{seen, AskedBound, BoundParams, Refusal, Standings};
use crate::routes::{activities, contacts};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_account))
}

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
async fn overview(
    db: &mut PgConnection,
    tenant: &str,
    id: Uuid,
    (scope_owner, scope_team): (Option<&str>, Option<&str>),
    personal: bool,
    today: NaiveDate,
) -> Result<Value, Problem> {
    let account = sqlx::query!("SELECT name, created_at, version FROM accounts WHERE id = $1 AND tenant_id = $2", id, tenant)
        .fetch_optional(&mut *db)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no account {id} in the read model")))?;
    let (name, created_at, version) = (account.name, account.created_at, account.version);
    // Both read the opportunities the caller may see, as every list does (`scope_filter`).
    let totals = sqlx::query_as!(
        Totals,
        r#"SELECT CASE stage WHEN 'Closed Won' THEN 'won' WHEN 'Closed Lost' THEN 'lost' ELSE 'open' END AS "status!", currency,
                  count(*) AS "count!", round(sum(amount), 2) AS "amount!"
           FROM opportunities
           WHERE tenant_id = $1 AND account_id = $2 AND ($3::text IS NULL OR owner_id = $3 OR $3 = ANY(shared_with)) AND ($4::text IS NULL OR team_id = $4)
           GROUP BY 1, 2 ORDER BY 1, 2"#,
        tenant,
        id,
        scope_owner,
        scope_team,
    )
    .fetch_all(&mut *db)
    .await
    .map_err(database)?;
    let deals = sqlx::query_as!(
        Deal,
        "SELECT id, name, owner_id, stage, amount, currency, close_date FROM opportunities
         WHERE tenant_id = $1 AND account_id = $2 AND ($3::text IS NULL OR owner_id = $3 OR $3 = ANY(shared_with)) AND ($4::text IS NULL OR team_id = $4)
         ORDER BY close_date, id LIMIT $5",
        tenant,
        id,
        scope_owner,
        scope_team,
        SHOWN,
    )
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

/// The overview of one account in `scope`; `personal` as for contacts. `others`: where the
/// opportunities, contacts and activities projections stood.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Overview {
    id: Uuid,
    scope: Scope,
    personal: bool,
    today: NaiveDate,
    others: [Standings; 3],
}

impl Overview {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(overview(db, tenant, self.id, scope_filter(&self.scope), self.personal, self.today).await?))
    }
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
    let query = Overview { id, scope, personal, today: Utc::now().date_naive(), others };
    seen(&state, &who, format!("contacts of account/{id}"), state.read::<Accounts>(&who, bound, query).await).await
}
