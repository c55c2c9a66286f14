//! `pipeline`: count and amount of opportunities per owner, stage and currency (amounts in
//! different currencies are never added up).

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tidemark_events::opportunity::OpportunityEvent;
use tidemark_events::{DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Pipeline;

/// Where one opportunity counts in the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    tenant_id: String,
    team_id: String,
    owner_id: String,
    stage: String,
    currency: String,
    amount: Decimal,
    version: i64,
}

impl Member {
    fn cell(&self) -> (String, String, String, String, String) {
        (self.tenant_id.clone(), self.team_id.clone(), self.owner_id.clone(), self.stage.clone(), self.currency.clone())
    }
}

impl Projection for Pipeline {
    const NAME: &'static str = "pipeline";
    const TABLES: &'static [&'static str] = &["pipeline", "pipeline_members"];
    type Row = Member;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    fn version(row: &Member) -> i64 {
        row.version
    }

    fn evolve(row: Option<&Member>, record: &EventRecord) -> Result<Option<Member>, String> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        let version = env.aggregate_version;
        let member = match (event, row) {
            (OpportunityEvent::Created(e), _) => Member {
                tenant_id: env.tenant_id.clone(),
                team_id: e.team_id.clone().unwrap_or_default(),
                owner_id: e.owner_id.clone(),
                stage: e.stage.name().to_string(),
                currency: e.amount.currency.to_string(),
                amount: e.amount.value,
                version,
            },
            (_, None) => return Err(format!("{} before OpportunityCreated", env.event_type)),
            (OpportunityEvent::AmountChanged(e), Some(m)) => {
                Member { amount: e.amount.value, currency: e.amount.currency.to_string(), version, ..m.clone() }
            }
            (OpportunityEvent::StageMoved(e), Some(m)) => Member { stage: e.stage.name().to_string(), version, ..m.clone() },
            (OpportunityEvent::Closed(e), Some(m)) => Member { stage: e.stage.name().to_string(), version, ..m.clone() },
            // Quotes move no deal between cells; an accepted one changes the amount in an
            // OpportunityAmountChanged of its own.
            (_, Some(m)) => Member { version, ..m.clone() },
        };
        Ok(Some(member))
    }

    fn changed(before: Option<&Member>, after: &Member) -> bool {
        before.is_none_or(|b| (b.cell(), b.amount) != (after.cell(), after.amount))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Member>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, team_id, owner_id, stage, currency, amount, version FROM pipeline_members WHERE id = ANY($1)",
            ids,
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let member = Member {
                    tenant_id: r.tenant_id,
                    team_id: r.team_id,
                    owner_id: r.owner_id,
                    stage: r.stage,
                    currency: r.currency,
                    amount: r.amount,
                    version: r.version,
                };
                (r.id, member)
            })
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<Member>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // Each changed opportunity leaves its old cell and joins its new one; the batch's moves
        // are summed per cell first, so each cell is written once.
        let mut deltas: BTreeMap<(String, String, String, String, String), (i64, Decimal)> = BTreeMap::new();
        for c in changes {
            if let Some(before) = &c.before {
                let d = deltas.entry(before.cell()).or_default();
                *d = (d.0 - 1, d.1 - before.amount);
            }
            let d = deltas.entry(c.after.cell()).or_default();
            *d = (d.0 + 1, d.1 + c.after.amount);
        }
        deltas.retain(|_, (count, amount)| *count != 0 || !amount.is_zero());
        let cells: Vec<_> = deltas.into_iter().collect();
        let part = |f: fn(&(String, String, String, String, String)) -> &String| cells.iter().map(|(k, _)| f(k).clone()).collect::<Vec<_>>();
        // A sum's scale depends on the order of the additions (1.50 - 1.50 + 2 is 2.00), and so
        // on how the log was cut into batches; amounts are stored in one canonical form, with
        // at least two decimals, so that any batching gives the same rows.
        sqlx::query!(
            "INSERT INTO pipeline (tenant_id, team_id, owner_id, stage, currency, count, amount)
             SELECT tenant_id, team_id, owner_id, stage, currency, count, round(amount, greatest(2, scale(trim_scale(amount))))
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::numeric[])
                  AS u(tenant_id, team_id, owner_id, stage, currency, count, amount)
             ON CONFLICT (tenant_id, team_id, owner_id, stage, currency)
             DO UPDATE SET count = pipeline.count + EXCLUDED.count,
                 amount = round(pipeline.amount + EXCLUDED.amount, greatest(2, scale(trim_scale(pipeline.amount + EXCLUDED.amount))))",
            &part(|k| &k.0),
            &part(|k| &k.1),
            &part(|k| &k.2),
            &part(|k| &k.3),
            &part(|k| &k.4),
            &cells.iter().map(|(_, d)| d.0).collect::<Vec<_>>(),
            &cells.iter().map(|(_, d)| d.1).collect::<Vec<_>>(),
        )
        .execute(&mut *db)
        .await?;
        // A cell nobody counts in any more goes away.
        sqlx::query!(
            "DELETE FROM pipeline p USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(tenant_id, team_id, owner_id, stage, currency)
             WHERE p.count = 0 AND (p.tenant_id, p.team_id, p.owner_id, p.stage, p.currency) = (u.tenant_id, u.team_id, u.owner_id, u.stage, u.currency)",
            &part(|k| &k.0),
            &part(|k| &k.1),
            &part(|k| &k.2),
            &part(|k| &k.3),
            &part(|k| &k.4),
        )
        .execute(&mut *db)
        .await?;
        sqlx::query!(
            "INSERT INTO pipeline_members (id, tenant_id, team_id, owner_id, stage, currency, amount, version)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::bigint[])
             ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, stage = EXCLUDED.stage,
                 currency = EXCLUDED.currency, amount = EXCLUDED.amount, version = EXCLUDED.version",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |m| m.tenant_id.clone()),
            &column(changes, |m| m.team_id.clone()),
            &column(changes, |m| m.owner_id.clone()),
            &column(changes, |m| m.stage.clone()),
            &column(changes, |m| m.currency.clone()),
            &column(changes, |m| m.amount),
            &column(changes, |m| m.version),
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
