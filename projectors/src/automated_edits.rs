//! `automated_edits`: every event an automation appended (the lead router's assignments, and
//! any client acting as an automation principal), with its rationale, for auditors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tidemark_events::{ActorKind, Envelope, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct AutomatedEdits;

/// The version of one aggregate the projection has seen, and the automated edits of the
/// batch at hand (stored ones are not loaded again: edits are only ever added).
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    version: i64,
    new_edits: Vec<Envelope>,
}

impl Projection for AutomatedEdits {
    const NAME: &'static str = "automated_edits";
    const TABLES: &'static [&'static str] = &["automated_edits", "automated_edit_streams"];
    type Row = Stream;

    fn topics(topics: &Topics) -> Vec<String> {
        topics.all().iter().map(|t| t.to_string()).collect()
    }

    fn version(row: &Stream) -> i64 {
        row.version
    }

    fn evolve(row: Option<&Stream>, record: &EventRecord) -> Result<Option<Stream>, String> {
        let env = &record.envelope;
        let mut new_edits = row.map(|r| r.new_edits.clone()).unwrap_or_default();
        if env.actor_kind == ActorKind::Automation {
            new_edits.push(env.clone());
        }
        Ok(Some(Stream { version: env.aggregate_version, new_edits }))
    }

    fn changed(before: Option<&Stream>, after: &Stream) -> bool {
        after.new_edits.len() > before.map_or(0, |b| b.new_edits.len())
    }

    /// A stored stream keeps only its version (its edits are rows of their own), so the
    /// version is what there is to compare.
    fn agrees(stored: &Stream, folded: &Stream) -> bool {
        stored.version == folded.version
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Stream>> {
        let rows = sqlx::query!(
            "SELECT id, version FROM automated_edit_streams WHERE id = ANY($1)",
            ids,
        ).fetch_all(db).await?;
        Ok(rows.into_iter().map(|r| (r.id, Stream { version: r.version, new_edits: Vec::new() })).collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<Stream>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO automated_edit_streams (id, version) SELECT * FROM UNNEST($1::uuid[], $2::bigint[])
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.version),
        )
        .execute(&mut *db)
        .await?;
        let edits: Vec<&Envelope> = changes.iter().flat_map(|c| &c.after.new_edits).collect();
        if edits.is_empty() {
            return Ok(());
        }
        let text = |f: fn(&Envelope) -> String| edits.iter().map(|e| f(e)).collect::<Vec<String>>();
        sqlx::query!(
            "INSERT INTO automated_edits (event_id, tenant_id, aggregate_type, aggregate_id, aggregate_version, event_type, actor_id,
                                          client_id, command_id, correlation_id, causation_id, rationale, policy_version, recorded_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[],
                                  $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
             ON CONFLICT (event_id) DO NOTHING",
            &edits.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            &text(|e| e.tenant_id.clone()),
            &text(|e| e.aggregate_type.clone()),
            &edits.iter().map(|e| e.aggregate_id).collect::<Vec<_>>(),
            &edits.iter().map(|e| e.aggregate_version).collect::<Vec<_>>(),
            &text(|e| e.event_type.clone()),
            &text(|e| e.actor_id.clone()),
            &text(|e| e.client_id.clone()),
            &text(|e| e.command_id.clone()),
            &text(|e| e.correlation_id.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &edits.iter().map(|e| e.causation_id.clone()).collect::<Vec<_>>() as _,
            &edits.iter().map(|e| e.rationale.clone()).collect::<Vec<_>>() as _,
            &text(|e| e.policy_version.clone()),
            &edits.iter().map(|e| e.recorded_at).collect::<Vec<DateTime<Utc>>>(),
        )
        .execute(db)
        .await?;
        Ok(())
    }
}
