//! `opportunities`: one row per opportunity with its current fields, folded with the same
//! `evolve` the command service uses.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};
use tidemark_events::opportunity::{self, Opportunity, Stage};
use tidemark_events::{Currency, DomainEvent, EventRecord, Money, Topics};
use uuid::Uuid;

use crate::Projection;

pub struct Opportunities;

impl Projection for Opportunities {
    const NAME: &'static str = "opportunities";

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    async fn applied_version(&self, db: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM opportunities WHERE id = $1").bind(id).fetch_optional(db).await?;
        Ok(version.unwrap_or(0))
    }

    async fn apply(&self, db: &mut PgConnection, record: &EventRecord) -> sqlx::Result<()> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(()) };
        let env = &record.envelope;
        let current = load(&mut *db, env.aggregate_id).await?;
        let o = opportunity::evolve(current, event);
        sqlx::query(
            "INSERT INTO opportunities (id, tenant_id, account_id, name, owner_id, amount, currency, close_date,
                                        stage, probability, close_reason, version, created_at, updated_at, team_id, shared_with)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, owner_id = EXCLUDED.owner_id, amount = EXCLUDED.amount,
                 currency = EXCLUDED.currency, close_date = EXCLUDED.close_date, stage = EXCLUDED.stage,
                 probability = EXCLUDED.probability, close_reason = EXCLUDED.close_reason, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at, shared_with = EXCLUDED.shared_with",
        )
        .bind(env.aggregate_id)
        .bind(&env.tenant_id)
        .bind(o.account_id)
        .bind(&o.name)
        .bind(&o.owner_id)
        .bind(o.amount.value)
        .bind(o.amount.currency.as_str())
        .bind(o.close_date)
        .bind(o.stage.name())
        .bind(o.probability)
        .bind(&o.close_reason)
        .bind(o.version)
        .bind(env.recorded_at)
        .bind(&o.team_id)
        .bind(o.shared_with.iter().cloned().collect::<Vec<String>>())
        .execute(db)
        .await?;
        Ok(())
    }
}

async fn load(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Opportunity>> {
    let Some(row) = sqlx::query(
        "SELECT account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason, version, team_id, shared_with
         FROM opportunities WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let corrupt = |what: String| sqlx::Error::Decode(what.into());
    let stage: String = row.get("stage");
    let currency: String = row.get("currency");
    Ok(Some(Opportunity {
        account_id: row.get("account_id"),
        name: row.get("name"),
        owner_id: row.get("owner_id"),
        team_id: row.get("team_id"),
        amount: Money { value: row.get::<Decimal, _>("amount"), currency: Currency::try_from(currency).map_err(corrupt)? },
        close_date: row.get::<NaiveDate, _>("close_date"),
        stage: Stage::try_from(stage).map_err(corrupt)?,
        probability: row.get("probability"),
        close_reason: row.get("close_reason"),
        shared_with: row.get::<Vec<String>, _>("shared_with").into_iter().collect(),
        version: row.get("version"),
    }))
}
