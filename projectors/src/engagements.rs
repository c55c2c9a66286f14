//! `engagements`: every sequence the detector recorded (`EngagementDetected`), for the
//! opportunity it is about. (Openings themselves are the detector's input, not shown.)

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use tidemark_events::engagement::{EngagementDetected, EngagementEvent, SequenceStep};
use tidemark_events::{DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{Change, Projection};

pub struct Engagements;

#[derive(Debug, Clone, PartialEq)]
pub struct DetectionRow {
    tenant_id: String,
    detected: EngagementDetected,
    rationale: Option<String>,
    recorded_at: DateTime<Utc>,
}

impl Projection for Engagements {
    const NAME: &'static str = "engagements";
    const TABLES: &'static [&'static str] = &["engagement_detections"];
    type Row = DetectionRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.engagement.clone()]
    }

    /// An engagement has one event.
    fn version(_: &DetectionRow) -> i64 {
        1
    }

    fn evolve(_: Option<&DetectionRow>, record: &EventRecord) -> Result<Option<DetectionRow>, String> {
        let DomainEvent::Engagement(EngagementEvent::Detected(detected)) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        Ok(Some(DetectionRow { tenant_id: env.tenant_id.clone(), detected: detected.clone(), rationale: env.rationale.clone(), recorded_at: crate::as_stored(env.recorded_at) }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, DetectionRow>> {
        let rows = sqlx::query!(
            r#"SELECT id, tenant_id, rule, first AS "first: Json<SequenceStep>", "then" AS "then: Json<SequenceStep>", contact_id, opportunity_id,
                      rationale, recorded_at
               FROM engagement_detections WHERE id = ANY($1)"#,
            ids,
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let detected = EngagementDetected { rule: r.rule, first: r.first.0, then: r.then.0, contact_id: r.contact_id, opportunity_id: r.opportunity_id };
                (r.id, DetectionRow { tenant_id: r.tenant_id, detected, rationale: r.rationale, recorded_at: r.recorded_at })
            })
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<DetectionRow>]) -> sqlx::Result<()> {
        // One event each: a row is written once and never changes.
        for c in changes {
            let (r, d) = (&c.after, &c.after.detected);
            sqlx::query!(
                r#"INSERT INTO engagement_detections (id, tenant_id, rule, first, "then", contact_id, opportunity_id, rationale, recorded_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"#,
                c.id,
                r.tenant_id,
                d.rule,
                serde_json::json!(d.first),
                serde_json::json!(d.then),
                d.contact_id,
                d.opportunity_id,
                r.rationale,
                r.recorded_at,
            )
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    }
}
