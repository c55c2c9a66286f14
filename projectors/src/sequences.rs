//! `sequences`: the stream processor that finds rules' sequences ("an email opened, then a
//! meeting booked within 7 days"). It keeps every event that rules may name
//! (`sequence_occurrences`), pairs each new one with those it shares a contact or an
//! opportunity with, by event time, and keeps each pair found in an outbox
//! (`sequence_detections`) in the batch's transaction. The sender (`send_detections`) then
//! records them through the command API, as the automation `sequence-detector`.
//!
//! A detection's id follows from its rule and its two events, so a batch applied again, a
//! rebuild, or a replay of the whole log finds the same detections and records none twice.

use std::collections::HashMap;

use chrono::Duration;
use sqlx::types::Json;
use sqlx::PgConnection;
use tidemark_events::engagement::detection_id;
use tidemark_events::sequence::{Occurrence, Rule};
use tidemark_events::{DomainEvent, EventRecord, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Sequences;

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceSource {
    tenant_id: String,
    version: i64,
    /// The event of this aggregate that rules may name (an activity's logging, an opening).
    occurrence: Option<Occurrence>,
}

impl Projection for Sequences {
    const NAME: &'static str = "sequences";
    const TABLES: &'static [&'static str] = &["sequence_sources", "sequence_occurrences"];
    type Row = SequenceSource;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.activity.clone(), topics.engagement.clone()]
    }

    fn version(row: &SequenceSource) -> i64 {
        row.version
    }

    fn evolve(row: Option<&SequenceSource>, record: &EventRecord) -> Result<Option<SequenceSource>, String> {
        if !matches!(record.event, DomainEvent::Activity(_) | DomainEvent::Engagement(_)) {
            return Ok(None);
        }
        // Times as PostgreSQL keeps them, so that `replay verify` finds the stored rows equal.
        let occurrence = row.and_then(|r| r.occurrence.clone()).or_else(|| Occurrence::of(record).map(|o| Occurrence { at: crate::as_stored(o.at), ..o }));
        Ok(Some(SequenceSource { tenant_id: record.envelope.tenant_id.clone(), version: record.envelope.aggregate_version, occurrence }))
    }

    fn changed(before: Option<&SequenceSource>, after: &SequenceSource) -> bool {
        before.map(|b| &b.occurrence) != Some(&after.occurrence)
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, SequenceSource>> {
        let rows = sqlx::query!(
            r#"SELECT s.id AS "id!", s.tenant_id AS "tenant_id!", s.version AS "version!", o.event_id AS "event_id?", o.event_type AS "event_type?", o.kind, o.at AS "at?", o.contact_id, o.opportunity_id
               FROM sequence_sources s LEFT JOIN sequence_occurrences o ON o.aggregate_id = s.id
               WHERE s.id = ANY($1)"#,
            ids,
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let occurrence = match (r.event_id, r.event_type, r.at) {
                    (Some(event_id), Some(event_type), Some(at)) => {
                        Some(Occurrence { event_id, event_type, kind: r.kind, at, contact_id: r.contact_id, opportunity_id: r.opportunity_id })
                    }
                    _ => None,
                };
                (r.id, SequenceSource { tenant_id: r.tenant_id, version: r.version, occurrence })
            })
            .collect())
    }

    async fn store(db: &mut PgConnection, changes: &[Change<SequenceSource>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO sequence_sources (id, tenant_id, version) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[])
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.version),
        )
        .execute(&mut *db)
        .await?;
        let new: Vec<(Uuid, &str, &Occurrence)> = changes
            .iter()
            .filter(|c| c.before.as_ref().is_none_or(|b| b.occurrence.is_none()))
            .filter_map(|c| c.after.occurrence.as_ref().map(|o| (c.id, c.after.tenant_id.as_str(), o)))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        for (aggregate_id, tenant, o) in &new {
            sqlx::query!(
                "INSERT INTO sequence_occurrences (event_id, aggregate_id, tenant_id, event_type, kind, at, contact_id, opportunity_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                o.event_id,
                aggregate_id,
                tenant,
                o.event_type,
                o.kind,
                o.at,
                o.contact_id,
                o.opportunity_id,
            )
            .execute(&mut *db)
            .await?;
        }
        let rules = rules(db).await?;
        let Some(widest) = rules.iter().map(|r| r.within_days).max() else { return Ok(()) };
        for (_, tenant, o) in new {
            for other in related(db, tenant, o, Duration::days(widest.into())).await? {
                for rule in &rules {
                    for (first, then) in [(&other, o), (o, &other)] {
                        if let Some((contact_id, opportunity_id)) = rule.pairs(first, then) {
                            detected(db, tenant, rule, first, then, contact_id, opportunity_id).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The rules in force. (Tables are named with their schema: a rebuild's search path holds
/// only its own.)
async fn rules(db: &mut PgConnection) -> sqlx::Result<Vec<Rule>> {
    let rows = sqlx::query_scalar!(r#"SELECT definition AS "definition: Json<Rule>" FROM public.sequence_rules ORDER BY name"#).fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The occurrences that share a contact or an opportunity with `o`, within `window` of it.
async fn related(db: &mut PgConnection, tenant: &str, o: &Occurrence, window: Duration) -> sqlx::Result<Vec<Occurrence>> {
    let rows = sqlx::query!(
        "SELECT event_id, event_type, kind, at, contact_id, opportunity_id FROM sequence_occurrences
         WHERE tenant_id = $1 AND (contact_id = $2 OR opportunity_id = $3) AND at BETWEEN $4 AND $5 AND event_id <> $6",
        tenant,
        o.contact_id,
        o.opportunity_id,
        o.at - window,
        o.at + window,
        o.event_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Occurrence { event_id: r.event_id, event_type: r.event_type, kind: r.kind, at: r.at, contact_id: r.contact_id, opportunity_id: r.opportunity_id })
        .collect())
}

async fn detected(
    db: &mut PgConnection,
    tenant: &str,
    rule: &Rule,
    first: &Occurrence,
    then: &Occurrence,
    contact_id: Option<Uuid>,
    opportunity_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO public.sequence_detections (id, tenant_id, rule, first, "then", contact_id, opportunity_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"#,
        detection_id(tenant, &rule.name, first.event_id, then.event_id),
        tenant,
        rule.name,
        serde_json::json!(first.step()),
        serde_json::json!(then.step()),
        contact_id,
        opportunity_id,
    )
    .execute(db)
    .await?;
    tracing::info!(rule = rule.name, first = %first.event_id, then = %then.event_id, "a sequence was found");
    Ok(())
}

/// Where the sender records detections, and as whom.
pub struct Sender {
    /// The command API, e.g. `http://127.0.0.1:8080`.
    pub command_url: String,
    /// A token of the automation `sequence-detector` in a tenant.
    pub token_for: Box<dyn Fn(&str) -> String + Send + Sync>,
}

/// How often the sender looks for detections to record, and how long it waits after the
/// command API failed to answer.
const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Records every detection in the outbox through the command API, oldest first, until
/// `stop`. A detection the API recorded, found recorded already, or refused is marked with
/// that outcome; one it could not answer stays and is tried again.
pub async fn send_detections(pool: sqlx::PgPool, sender: Sender, stop: tokio_util::sync::CancellationToken) {
    let http = reqwest::Client::new();
    while !stop.is_cancelled() {
        let sent = send_some(&pool, &sender, &http).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "recording detected sequences failed; trying again");
            0
        });
        if sent == 0 {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(PAUSE) => {}
            }
        }
    }
}

async fn send_some(pool: &sqlx::PgPool, sender: &Sender, http: &reqwest::Client) -> Result<usize, String> {
    let pending = sqlx::query!(
        r#"SELECT id, tenant_id, rule, first AS "first: Json<tidemark_events::engagement::SequenceStep>",
                  "then" AS "then: Json<tidemark_events::engagement::SequenceStep>", contact_id, opportunity_id
           FROM sequence_detections WHERE sent_at IS NULL ORDER BY found_at, id LIMIT 100"#
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    let mut sent = 0;
    for d in pending {
        let (first, then) = (d.first.0, d.then.0);
        let rationale = format!(
            "rule {}: {} {} at {}, then {} {} at {}",
            d.rule,
            first.event_type,
            first.event_id,
            first.at.to_rfc3339(),
            then.event_type,
            then.event_id,
            then.at.to_rfc3339()
        );
        let body = serde_json::json!({"rule": d.rule, "first": first, "then": then, "contact_id": d.contact_id, "opportunity_id": d.opportunity_id});
        let answer = http
            .post(format!("{}/v1/engagements/detections", sender.command_url))
            .bearer_auth((sender.token_for)(&d.tenant_id))
            .header("Idempotency-Key", d.id.to_string())
            .header("X-Rationale", rationale)
            .json(&body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        // `Err`: not answered for good, so tried again.
        let outcome = match answer {
            Ok(r) if r.status().as_u16() == 201 => Ok("recorded".to_string()),
            Ok(r) if r.status().is_success() => Ok("already".to_string()),
            // Refused for good (a 4xx other than a rate limit or a token the API does not
            // take, which configuration fixes): said, and not tried again.
            Ok(r) if r.status().is_client_error() && ![401, 429].contains(&r.status().as_u16()) => {
                let outcome = format!("refused {}: {}", r.status().as_u16(), r.text().await.unwrap_or_default());
                tracing::error!(detection = %d.id, outcome, "the command API refused a detected sequence");
                Ok(outcome)
            }
            Ok(r) => Err(format!("the command API answered {}", r.status())),
            Err(e) => Err(format!("the command API did not answer: {e}")),
        };
        match &outcome {
            Ok(outcome) => {
                sqlx::query!("UPDATE sequence_detections SET attempts = attempts + 1, sent_at = now(), outcome = $2 WHERE id = $1", d.id, outcome).execute(pool).await
            }
            Err(_) => sqlx::query!("UPDATE sequence_detections SET attempts = attempts + 1 WHERE id = $1", d.id).execute(pool).await,
        }
        .map_err(|e| e.to_string())?;
        outcome?;
        sent += 1;
    }
    Ok(sent)
}

/// Puts `rules` in force: the detector pairs by these from its next batch on.
pub async fn load_rules(pool: &sqlx::PgPool, rules: &[Rule]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // Projector processes start together; without the lock, two of them both find the table
    // empty and the second one's insert fails on the first one's rows. The mode lets the
    // detector keep reading the rules meanwhile.
    sqlx::query!("LOCK TABLE sequence_rules IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM sequence_rules").execute(&mut *tx).await?;
    for rule in rules {
        sqlx::query!("INSERT INTO sequence_rules (name, definition) VALUES ($1, $2)", rule.name, serde_json::json!(rule)).execute(&mut *tx).await?;
    }
    tx.commit().await
}
