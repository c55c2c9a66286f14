//! `pipeline`: count and amount of opportunities per owner, stage and currency (amounts in
//! different currencies are never added up).

use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};
use tidemark_events::opportunity::OpportunityEvent;
use tidemark_events::{DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::Projection;

pub struct Pipeline;

/// Where one opportunity counts in the pipeline.
#[derive(Clone)]
struct Member {
    tenant_id: String,
    team_id: String,
    owner_id: String,
    stage: String,
    currency: String,
    amount: Decimal,
}

impl Projection for Pipeline {
    const NAME: &'static str = "pipeline";

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    async fn applied_version(&self, db: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM pipeline_members WHERE id = $1").bind(id).fetch_optional(db).await?;
        Ok(version.unwrap_or(0))
    }

    async fn apply(&self, db: &mut PgConnection, record: &EventRecord) -> sqlx::Result<()> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(()) };
        let env = &record.envelope;
        let before = load(&mut *db, env.aggregate_id).await?;
        let after = match (event, &before) {
            (OpportunityEvent::Created(e), _) => Member {
                tenant_id: env.tenant_id.clone(),
                team_id: e.team_id.clone().unwrap_or_default(),
                owner_id: e.owner_id.clone(),
                stage: e.stage.name().to_string(),
                currency: e.amount.currency.to_string(),
                amount: e.amount.value,
            },
            (_, None) => return Err(sqlx::Error::Protocol(format!("{} before OpportunityCreated", env.event_type))),
            (OpportunityEvent::AmountChanged(e), Some(m)) => Member { amount: e.amount.value, ..m.clone() },
            (OpportunityEvent::StageMoved(e), Some(m)) => Member { stage: e.stage.name().to_string(), ..m.clone() },
            (OpportunityEvent::Closed(e), Some(m)) => Member { stage: e.stage.name().to_string(), ..m.clone() },
            (OpportunityEvent::CloseDateChanged(_) | OpportunityEvent::Shared(_) | OpportunityEvent::Unshared(_), Some(m)) => m.clone(),
        };
        if let Some(m) = &before {
            add(&mut *db, m, -1, -m.amount).await?;
        }
        add(&mut *db, &after, 1, after.amount).await?;
        sqlx::query(
            "INSERT INTO pipeline_members (id, tenant_id, owner_id, stage, currency, amount, version, team_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, stage = EXCLUDED.stage,
                 currency = EXCLUDED.currency, amount = EXCLUDED.amount, version = EXCLUDED.version",
        )
        .bind(env.aggregate_id)
        .bind(&after.tenant_id)
        .bind(&after.owner_id)
        .bind(&after.stage)
        .bind(&after.currency)
        .bind(after.amount)
        .bind(env.aggregate_version)
        .bind(&after.team_id)
        .execute(db)
        .await?;
        Ok(())
    }
}

async fn load(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Member>> {
    let row = sqlx::query("SELECT tenant_id, owner_id, stage, currency, amount, team_id FROM pipeline_members WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| Member {
        tenant_id: r.get(0),
        owner_id: r.get(1),
        stage: r.get(2),
        currency: r.get(3),
        amount: r.get(4),
        team_id: r.get(5),
    }))
}

/// Adds `count` and `amount` to a member's cell; a cell that drops to zero is removed.
async fn add(db: &mut PgConnection, m: &Member, count: i64, amount: Decimal) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pipeline (tenant_id, owner_id, stage, currency, count, amount, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, team_id, owner_id, stage, currency)
         DO UPDATE SET count = pipeline.count + EXCLUDED.count, amount = pipeline.amount + EXCLUDED.amount",
    )
    .bind(&m.tenant_id)
    .bind(&m.owner_id)
    .bind(&m.stage)
    .bind(&m.currency)
    .bind(count)
    .bind(amount)
    .bind(&m.team_id)
    .execute(&mut *db)
    .await?;
    sqlx::query("DELETE FROM pipeline WHERE tenant_id = $1 AND owner_id = $2 AND stage = $3 AND currency = $4 AND team_id = $5 AND count = 0")
        .bind(&m.tenant_id)
        .bind(&m.owner_id)
        .bind(&m.stage)
        .bind(&m.currency)
        .bind(&m.team_id)
        .execute(db)
        .await?;
    Ok(())
}
