//! `leads`: one row per lead, with its owner, status, assignment latency and what its
//! conversion created.

use std::collections::HashMap;

use sqlx::PgConnection;
use tidemark_events::lead::Lead;
use tidemark_events::{Aggregate, DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Leads;

/// The lead as the domain folds it, kept whole (as JSON) so the projection can fold on;
/// the columns beside it are for queries.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    tenant_id: String,
    state: Lead,
    /// The LeadConverted payload, and the lead itself, as JSON.
    document: serde_json::Value,
}

impl Projection for Leads {
    const NAME: &'static str = "leads";
    const TABLES: &'static [&'static str] = &["leads"];
    type Row = LeadRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.lead.clone()]
    }

    fn version(row: &LeadRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&LeadRow>, record: &EventRecord) -> Result<Option<LeadRow>, String> {
        let DomainEvent::Lead(event) = &record.event else { return Ok(None) };
        let state = Lead::evolve(row.map(|r| r.state.clone()), event);
        Ok(Some(LeadRow { tenant_id: record.envelope.tenant_id.clone(), document: serde_json::json!(state), state }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, LeadRow>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, document FROM leads WHERE id = ANY($1)",
            ids,
        ).fetch_all(db).await?;
        rows.into_iter()
            .map(|r| {
                let document: serde_json::Value = r.document;
                let state = serde_json::from_value(document.clone()).map_err(|e| sqlx::Error::Decode(format!("lead: {e}").into()))?;
                Ok((r.id, LeadRow { tenant_id: r.tenant_id, state, document }))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<LeadRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let status = |l: &Lead| serde_json::json!(l.status).as_str().unwrap_or_default().to_string();
        sqlx::query!(
            "INSERT INTO leads (id, tenant_id, name, company, email, phone, territory, segment, source, captured_at, owner_id, team_id,
                                assigned_at, assignment_latency_ms, status, disqualify_reason, account_id, contact_id, opportunity_id,
                                version, document, erased_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::timestamptz[], $11::text[], $12::text[], $13::timestamptz[], $14::bigint[], $15::text[], $16::text[],
                                  $17::uuid[], $18::uuid[], $19::uuid[], $20::bigint[], $21::jsonb[], $22::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone,
                 erased_at = EXCLUDED.erased_at, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, assigned_at = EXCLUDED.assigned_at,
                 assignment_latency_ms = EXCLUDED.assignment_latency_ms, status = EXCLUDED.status,
                 disqualify_reason = EXCLUDED.disqualify_reason, account_id = EXCLUDED.account_id, contact_id = EXCLUDED.contact_id,
                 opportunity_id = EXCLUDED.opportunity_id, version = EXCLUDED.version, document = EXCLUDED.document",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.name.clone()),
            &column(changes, |r| r.state.company.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.email.clone()) as _,
            &column(changes, |r| r.state.phone.clone()) as _,
            &column(changes, |r| r.state.territory.clone()),
            &column(changes, |r| r.state.segment.clone()),
            &column(changes, |r| r.state.source.clone()),
            &column(changes, |r| r.state.captured_at),
            &column(changes, |r| r.state.owner_id.clone()) as _,
            &column(changes, |r| r.state.team_id.clone()) as _,
            &column(changes, |r| r.state.assigned_at) as _,
            &column(changes, |r| r.state.assigned_at.map(|a| (a - r.state.captured_at).num_milliseconds())) as _,
            &column(changes, |r| status(&r.state)),
            &column(changes, |r| r.state.disqualify_reason.clone()) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.account_id)) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.contact_id)) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.opportunity_id)) as _,
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.document.clone()),
            &column(changes, |r| r.state.erased_at) as _,
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
