//! Applies a batch of records to a projection, in the caller's transaction: the live
//! projector and a rebuild both go through here, so they cannot disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rdkafka::message::{Message, OwnedMessage};
use sqlx::{Acquire, PgConnection};
use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_schemas::codec::CodecError;
use tidemark_schemas::{Decoded, EventCodec};
use uuid::Uuid;

use crate::{quarantine, Change, Projection};

/// A record as read from the log, decoded when it could be.
pub struct Received {
    pub message: OwnedMessage,
    pub decoded: Result<Decoded, String>,
}

/// Decodes a batch. Fails only when the registry cannot be reached: the batch is then
/// retried, never quarantined.
pub async fn decode(codec: &EventCodec, batch: Vec<OwnedMessage>) -> Result<Vec<Received>, CodecError> {
    let mut received = Vec::with_capacity(batch.len());
    for message in batch {
        let decoded = match codec.decode(message.payload()).await {
            Err(e) if e.is_retryable() => return Err(e),
            result => result.map_err(|e| e.to_string()),
        };
        received.push(Received { message, decoded });
    }
    Ok(received)
}

/// Applies `batch` and the offsets it reaches. The rows the batch touches are loaded and
/// stored once each. When the database refuses the batch's rows, the records are applied one
/// at a time and the one refused is quarantined, so one bad event cannot stop a projection.
pub async fn apply_batch<P: Projection>(db: &mut PgConnection, batch: &[Received]) -> sqlx::Result<BTreeMap<(String, i32), i64>> {
    let mut savepoint = db.begin().await?;
    match fold_and_store::<P>(&mut savepoint, batch).await {
        Ok(offsets) => {
            savepoint.commit().await?;
            return Ok(offsets);
        }
        // A batch of one goes the same way: its record is quarantined below.
        Err(e) if is_refusal(&e) => {
            tracing::warn!(projection = P::NAME, error = %e, records = batch.len(), "the database refused a batch; applying it one record at a time");
            savepoint.rollback().await?;
        }
        Err(e) => return Err(e),
    }
    let mut offsets = BTreeMap::new();
    for record in batch {
        let mut savepoint = db.begin().await?;
        match fold_and_store::<P>(&mut savepoint, std::slice::from_ref(record)).await {
            Ok(reached) => {
                savepoint.commit().await?;
                offsets.extend(reached);
            }
            Err(e) if is_refusal(&e) => {
                savepoint.rollback().await?;
                let what = match &record.decoded {
                    Ok(Decoded::Event(r)) => r.envelope.event_type.clone(),
                    _ => "the record".to_string(),
                };
                quarantine::hold(&mut *db, P::NAME, record, &format!("cannot apply {what}: {e}")).await?;
                let m = &record.message;
                sqlx::query!(
                    "UPDATE projection_offsets SET next_offset = GREATEST(next_offset, $4), updated_at = now()
                     WHERE projection = $1 AND topic = $2 AND partition = $3",
                    P::NAME,
                    m.topic(),
                    m.partition(),
                    m.offset() + 1,
                )
                .execute(&mut *db)
                .await?;
                offsets.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(offsets)
}

/// What one decoded record did to a projection's rows.
pub enum Folded {
    /// The event changed this aggregate's row.
    Applied(Uuid),
    /// A fence marker, an event that is not the projection's business, or one the fold rule
    /// skips (a duplicate, a fenced writer's).
    Skipped,
    /// The event cannot apply (a gap in the stream, or `evolve` refuses it): the runner
    /// quarantines it.
    Refused(String),
}

/// Folds one record of a partition into `rows` under the fold rule, as every reader of a
/// projection does: the runner, and `replay verify`. Pure.
pub fn fold_record<P: Projection>(fold: &mut PartitionFold, rows: &mut HashMap<Uuid, P::Row>, decoded: &Decoded) -> Folded {
    let record = match decoded {
        Decoded::Fence(marker) => {
            fold.observe_fence(marker.writer_epoch);
            return Folded::Skipped;
        }
        Decoded::Event(record) => record,
    };
    let env = &record.envelope;
    let row = rows.get(&env.aggregate_id);
    match fold.judge(env.writer_epoch, row.map_or(0, P::version), env.aggregate_version) {
        Verdict::Apply => match P::evolve(row, record) {
            Ok(Some(after)) => {
                rows.insert(env.aggregate_id, after);
                Folded::Applied(env.aggregate_id)
            }
            Ok(None) => Folded::Skipped,
            Err(reason) => Folded::Refused(format!("cannot apply {}: {reason}", env.event_type)),
        },
        Verdict::Duplicate | Verdict::Fenced { .. } => Folded::Skipped,
        Verdict::Gap { expected, found } => Folded::Refused(format!("gap: expected version {expected} of {}, found {found}", env.aggregate_id)),
    }
}

/// Errors that name something wrong with the data rather than with the connection.
fn is_refusal(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_) | sqlx::Error::Decode(_) | sqlx::Error::Protocol(_))
}

/// Where the projection stands in one partition, as stored.
struct Standing {
    next_offset: i64,
    fold: PartitionFold,
}

async fn fold_and_store<P: Projection>(db: &mut PgConnection, batch: &[Received]) -> sqlx::Result<BTreeMap<(String, i32), i64>> {
    let mut standings: BTreeMap<(String, i32), Standing> = BTreeMap::new();
    for r in batch {
        standings.entry((r.message.topic().to_string(), r.message.partition())).or_insert(Standing { next_offset: 0, fold: PartitionFold::default() });
    }
    // Locked in a fixed order, so that two workers of one projection (during a rebalance)
    // neither deadlock nor both apply the same records.
    for ((topic, partition), standing) in standings.iter_mut() {
        *standing = lock_standing(&mut *db, P::NAME, topic, *partition).await?;
    }
    let fresh = |r: &Received, standings: &BTreeMap<(String, i32), Standing>| {
        r.message.offset() >= standings[&(r.message.topic().to_string(), r.message.partition())].next_offset
    };
    let mut ids: Vec<Uuid> = batch
        .iter()
        .filter(|r| fresh(r, &standings))
        .filter_map(|r| match &r.decoded {
            Ok(Decoded::Event(e)) => Some(e.envelope.aggregate_id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    let stored = P::load(&mut *db, &ids).await?;
    let mut rows: HashMap<Uuid, P::Row> = stored.clone();
    let mut touched: BTreeSet<Uuid> = BTreeSet::new();
    let mut refused: Vec<(&Received, String)> = Vec::new();
    for r in batch {
        if !fresh(r, &standings) {
            continue; // applied before a crash or rebalance; PostgreSQL says so
        }
        let standing = standings.get_mut(&(r.message.topic().to_string(), r.message.partition())).expect("added above");
        match &r.decoded {
            Ok(decoded) => match fold_record::<P>(&mut standing.fold, &mut rows, decoded) {
                Folded::Applied(id) => {
                    touched.insert(id);
                }
                Folded::Skipped => tracing::debug!(projection = P::NAME, offset = r.message.offset(), "not applied: a fence marker, another projection's event, or skipped by the fold rule"),
                Folded::Refused(reason) => refused.push((r, reason)),
            },
            Err(reason) => refused.push((r, format!("cannot decode: {reason}"))),
        }
        standing.next_offset = r.message.offset() + 1;
    }
    let changes: Vec<Change<P::Row>> =
        touched.iter().map(|id| Change { id: *id, before: stored.get(id).cloned(), after: rows[id].clone() }).collect();
    P::store(&mut *db, &changes).await?;
    for (r, reason) in refused {
        quarantine::hold(&mut *db, P::NAME, r, &reason).await?;
    }
    for ((topic, partition), standing) in &standings {
        sqlx::query!(
            "UPDATE projection_offsets SET next_offset = $4, fence_epoch = $5, updated_at = now()
             WHERE projection = $1 AND topic = $2 AND partition = $3",
            P::NAME,
            topic,
            partition,
            standing.next_offset,
            standing.fold.fence_epoch,
        )
        .execute(&mut *db)
        .await?;
    }
    Ok(standings.into_iter().map(|(key, s)| (key, s.next_offset)).collect())
}

/// Moves the projection's offsets up to the consumer's `positions` where they are ahead:
/// past transaction markers, which are never delivered as records. Only for positions taken
/// when every record the consumer delivered below them has been applied.
pub async fn advance(db: &mut PgConnection, projection: &str, positions: &BTreeMap<(String, i32), i64>) -> sqlx::Result<()> {
    for ((topic, partition), position) in positions {
        sqlx::query!(
            "UPDATE projection_offsets SET next_offset = $4, updated_at = now()
             WHERE projection = $1 AND topic = $2 AND partition = $3 AND next_offset < $4",
            projection,
            topic,
            partition,
            position,
        )
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

/// Names the batch that last moved `partitions`: `traceparent` is its span's context.
pub async fn mark_batch<'a>(db: &mut PgConnection, projection: &str, partitions: impl Iterator<Item = &'a (String, i32)>, traceparent: &str) -> sqlx::Result<()> {
    let (topics, numbers): (Vec<String>, Vec<i32>) = partitions.cloned().unzip();
    sqlx::query!(
        "UPDATE projection_offsets SET traceparent = $2
         WHERE projection = $1 AND (topic, partition) IN (SELECT * FROM UNNEST($3::text[], $4::int[]))",
        projection,
        traceparent,
        &topics,
        &numbers,
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn ensure_standing(db: &mut PgConnection, projection: &str, topic: &str, partition: i32) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO projection_offsets (projection, topic, partition) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        projection,
        topic,
        partition,
    )
    .execute(db)
    .await
    .map(|_| ())
}

async fn lock_standing(db: &mut PgConnection, projection: &str, topic: &str, partition: i32) -> sqlx::Result<Standing> {
    ensure_standing(&mut *db, projection, topic, partition).await?;
    let standing = sqlx::query!(
        "SELECT next_offset, fence_epoch FROM projection_offsets WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
        projection,
        topic,
        partition,
    )
    .fetch_one(db)
    .await?;
    Ok(Standing { next_offset: standing.next_offset, fold: PartitionFold { fence_epoch: standing.fence_epoch } })
}
