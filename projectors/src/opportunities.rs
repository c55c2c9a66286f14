//! `opportunities`: one row per opportunity with its current fields, folded with the same
//! `evolve` the command service uses.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};
use tidemark_events::opportunity::{self, Opportunity, Stage};
use tidemark_events::{Currency, DomainEvent, EventRecord, Money, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Opportunities;

/// An opportunity as the read model keeps it.
#[derive(Debug, Clone)]
pub struct OpportunityRow {
    tenant_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    state: Opportunity,
}

impl Projection for Opportunities {
    const NAME: &'static str = "opportunities";
    const TABLES: &'static [&'static str] = &["opportunities"];
    type Row = OpportunityRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    fn version(row: &OpportunityRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&OpportunityRow>, record: &EventRecord) -> Result<Option<OpportunityRow>, String> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        let state = opportunity::evolve(row.map(|r| r.state.clone()), event);
        Ok(Some(OpportunityRow {
            tenant_id: env.tenant_id.clone(),
            created_at: row.map_or(env.recorded_at, |r| r.created_at),
            updated_at: env.recorded_at,
            state,
        }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, OpportunityRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                    version, team_id, shared_with, created_at, updated_at
             FROM opportunities WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(db)
        .await?;
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        rows.into_iter()
            .map(|row| {
                let state = Opportunity {
                    account_id: row.get("account_id"),
                    name: row.get("name"),
                    owner_id: row.get("owner_id"),
                    team_id: row.get("team_id"),
                    amount: Money { value: row.get::<Decimal, _>("amount"), currency: Currency::try_from(row.get::<String, _>("currency")).map_err(corrupt)? },
                    close_date: row.get::<NaiveDate, _>("close_date"),
                    stage: Stage::try_from(row.get::<String, _>("stage")).map_err(corrupt)?,
                    probability: row.get("probability"),
                    close_reason: row.get("close_reason"),
                    shared_with: row.get::<Vec<String>, _>("shared_with").into_iter().collect(),
                    version: row.get("version"),
                };
                let r = OpportunityRow { tenant_id: row.get("tenant_id"), created_at: row.get("created_at"), updated_at: row.get("updated_at"), state };
                Ok((row.get("id"), r))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<OpportunityRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO opportunities (id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage,
                                        probability, close_reason, version, created_at, updated_at, team_id, shared_with)
             SELECT id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                    version, created_at, updated_at, team_id, ARRAY(SELECT jsonb_array_elements_text(shared_with))
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::numeric[], $7::text[], $8::date[],
                         $9::text[], $10::int[], $11::text[], $12::bigint[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::jsonb[])
                  AS u(id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                       version, created_at, updated_at, team_id, shared_with)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, owner_id = EXCLUDED.owner_id, amount = EXCLUDED.amount,
                 currency = EXCLUDED.currency, close_date = EXCLUDED.close_date, stage = EXCLUDED.stage,
                 probability = EXCLUDED.probability, close_reason = EXCLUDED.close_reason, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at, shared_with = EXCLUDED.shared_with",
        )
        .bind(changes.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(column(changes, |r| r.tenant_id.clone()))
        .bind(column(changes, |r| r.state.account_id))
        .bind(column(changes, |r| r.state.name.clone()))
        .bind(column(changes, |r| r.state.owner_id.clone()))
        .bind(column(changes, |r| r.state.amount.value))
        .bind(column(changes, |r| r.state.amount.currency.to_string()))
        .bind(column(changes, |r| r.state.close_date))
        .bind(column(changes, |r| r.state.stage.name().to_string()))
        .bind(column(changes, |r| r.state.probability))
        .bind(column(changes, |r| r.state.close_reason.clone()))
        .bind(column(changes, |r| r.state.version))
        .bind(column(changes, |r| r.created_at))
        .bind(column(changes, |r| r.updated_at))
        .bind(column(changes, |r| r.state.team_id.clone()))
        // A list per row: arrays of arrays must be rectangular in PostgreSQL, JSON need not be.
        .bind(column(changes, |r| serde_json::json!(r.state.shared_with)))
        .execute(db)
        .await?;
        Ok(())
    }
}
