//! Records that a projection could not decode or apply, and their resolution by an
//! operator. A quarantined record does not stop its projection, but a record that cannot
//! be decoded blocks its aggregate in the writer. An operator resolves such a record by
//! skipping it: the writer and every projection then fold past it as if it were not in the
//! log (`public.skipped_records`, which a rebuild's search path does not hide).
//!
//! An event that decodes but that a projection cannot apply is not skipped: the writer
//! has folded it, so a projection without it would count the aggregate's versions
//! differently from the writer. Its remedy is a fix of the projection and a rebuild.

use chrono::{DateTime, Utc};
use rdkafka::message::{Message, OwnedMessage};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// A quarantined record as an operator sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    pub id: i64,
    pub projection: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's key: the id of the aggregate it blocks.
    pub aggregate_id: Option<String>,
    /// The aggregate version the record carries, when it could be decoded.
    pub aggregate_version: Option<i64>,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
    /// How an operator resolved it; absent while it is open.
    pub skip: Option<Skip>,
}

/// An operator's decision to fold past a record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Skip {
    pub skipped_by: String,
    pub reason: String,
    pub skipped_at: DateTime<Utc>,
}

/// Which quarantined records to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub projection: Option<String>,
    /// Open ones only (not skipped).
    pub open: bool,
    pub limit: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SkipError {
    #[error("no quarantined record has id {0}")]
    NotQuarantined(i64),
    #[error("say why the record may be skipped: the reason is kept with the decision")]
    NoReason,
    #[error("the record is version {0} of its aggregate, which the writer has folded: skipping it would put the projections' versions out of step with the writer's. Fix what refused it and rebuild the projection (`tidemark replay rebuild`)")]
    IsAnEvent(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const SELECT: &str = "SELECT q.id, q.projection, q.topic, q.partition, q.\"offset\", q.key AS aggregate_id, q.aggregate_version,
        q.reason, q.quarantined_at, s.skipped_by, s.reason AS skip_reason, s.skipped_at
     FROM quarantine q LEFT JOIN public.skipped_records s USING (topic, partition, \"offset\")";

/// Quarantined records, newest first.
pub async fn list(db: &PgPool, filter: &Filter) -> sqlx::Result<Vec<Quarantined>> {
    sqlx::query_as::<_, Row>(&format!(
        "{SELECT} WHERE ($1::text IS NULL OR q.projection = $1) AND (NOT $2 OR s.skipped_at IS NULL) ORDER BY q.id DESC LIMIT $3"
    ))
    .bind(&filter.projection)
    .bind(filter.open)
    .bind(filter.limit)
    .fetch_all(db)
    .await
    .map(|rows| rows.into_iter().map(Row::into_quarantined).collect())
}

/// Skips the record quarantined as `id` (in every projection that quarantined it, and in
/// the writer), recording who decided and why. Skipping a skipped record changes nothing.
/// Returns every quarantine entry of that record.
pub async fn skip(db: &PgPool, id: i64, by: &str, reason: &str) -> Result<Vec<Quarantined>, SkipError> {
    if reason.trim().is_empty() {
        return Err(SkipError::NoReason);
    }
    let mut tx = db.begin().await?;
    let position = sqlx::query!(r#"SELECT topic, partition, "offset", aggregate_version FROM quarantine WHERE id = $1"#, id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(SkipError::NotQuarantined(id))?;
    let (topic, partition, offset, version) = (position.topic, position.partition, position.offset, position.aggregate_version);
    if let Some(version) = version {
        return Err(SkipError::IsAnEvent(version));
    }
    sqlx::query!(
        "INSERT INTO public.skipped_records (topic, partition, \"offset\", aggregate_id, skipped_by, reason)
         SELECT topic, partition, \"offset\", key, $2, $3 FROM quarantine WHERE id = $1
         ON CONFLICT DO NOTHING",
        id,
        by,
        reason.trim(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(id, %topic, partition, offset, by, reason, "an operator skipped a quarantined record");
    let entries = sqlx::query_as::<_, Row>(&format!("{SELECT} WHERE q.topic = $1 AND q.partition = $2 AND q.\"offset\" = $3 ORDER BY q.id"))
        .bind(&topic)
        .bind(partition)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok(entries.into_iter().map(Row::into_quarantined).collect())
}

/// Quarantines `message` for `projection`, unless an operator has skipped it already.
pub(crate) async fn hold(db: &mut PgConnection, projection: &str, record: &crate::apply::Received, reason: &str) -> sqlx::Result<()> {
    let message = &record.message;
    let aggregate_version = match &record.decoded {
        Ok(tidemark_schemas::Decoded::Event(e)) => Some(e.envelope.aggregate_version),
        _ => None,
    };
    if is_skipped(&mut *db, message).await? {
        tracing::info!(projection, topic = message.topic(), partition = message.partition(), offset = message.offset(), "passed a skipped record");
        return Ok(());
    }
    tracing::error!(projection, topic = message.topic(), partition = message.partition(), offset = message.offset(), reason, "quarantined a record");
    sqlx::query!(
        "INSERT INTO quarantine (projection, topic, partition, \"offset\", key, aggregate_version, reason, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        projection,
        message.topic(),
        message.partition(),
        message.offset(),
        message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        aggregate_version,
        reason,
        message.payload(),
    )
    .execute(db)
    .await
    .map(|_| ())
}

async fn is_skipped(db: &mut PgConnection, message: &OwnedMessage) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM public.skipped_records WHERE topic = $1 AND partition = $2 AND "offset" = $3) AS "skipped!""#,
        message.topic(),
        message.partition(),
        message.offset(),
    )
    .fetch_one(db)
    .await
}

/// The row as selected, before the skip's columns become an `Option`.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    projection: String,
    topic: String,
    partition: i32,
    offset: i64,
    aggregate_id: Option<String>,
    aggregate_version: Option<i64>,
    reason: String,
    quarantined_at: DateTime<Utc>,
    skipped_by: Option<String>,
    skip_reason: Option<String>,
    skipped_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_quarantined(self) -> Quarantined {
        let skip = match (self.skipped_by, self.skip_reason, self.skipped_at) {
            (Some(skipped_by), Some(reason), Some(skipped_at)) => Some(Skip { skipped_by, reason, skipped_at }),
            _ => None,
        };
        Quarantined {
            id: self.id,
            projection: self.projection,
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            aggregate_id: self.aggregate_id,
            aggregate_version: self.aggregate_version,
            reason: self.reason,
            quarantined_at: self.quarantined_at,
            skip,
        }
    }
}
