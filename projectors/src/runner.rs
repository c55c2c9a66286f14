//! Runs one projection: consume in batches, apply each batch and the offsets it reached in
//! one PostgreSQL transaction, and keep a note of when the projection was last caught up.
//!
//! PostgreSQL, not Kafka, is the record of what was applied: a record below the stored
//! offset is skipped, so a redelivery after a crash is harmless. Offsets are also committed
//! to Kafka after each batch, but only so that a restart does not read from the beginning.
//!
//! The stored offset is the consumer's position, which steps over transaction markers, so a
//! projection that has applied everything stands exactly at the log end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tidemark_events::Topics;
use tidemark_http::ServiceMetrics;
use tidemark_log::ClosesInBackground;
use tidemark_privacy::PgKeyStore;
use tidemark_schemas::EventCodec;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{self, ensure_standing};
use crate::{Projection, ProjectionError};

const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often an idle projector looks whether its position moved past markers alone.
const IDLE_CHECK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub brokers: String,
    pub registry_url: String,
    pub topics: Topics,
    /// Consumer groups are named `<group_prefix><projection>`.
    pub group_prefix: String,
    /// Most records applied in one transaction.
    pub batch_size: usize,
    /// The projector's figures: records and batches applied, rebalances, restarts.
    pub metrics: ServiceMetrics,
}

/// Runs the projection until `shutdown`, restarting after any failure (broker or database
/// gone, …) with a growing pause, so a projector outlives the outages of its dependencies.
pub async fn run<P: Projection>(config: RunnerConfig, pool: PgPool, shutdown: CancellationToken) {
    let attempt = || async {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        run_once::<P>(&config, &pool, &shutdown).await
    };
    // A pause that a shutdown cuts short.
    let cuts_short = shutdown.clone();
    let pause = move |pause: Duration| {
        let shutdown = cuts_short.clone();
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    };
    let pauses = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_delay(Duration::from_secs(10)).without_max_times();
    let _ = attempt
        .retry(pauses)
        .sleep(pause)
        .notify(|e, pause| {
            tracing::warn!(projection = P::NAME, error = %e, retry_in_ms = pause.as_millis() as u64, "projector failed; restarting");
            config.metrics.record(|| {
                metrics::describe_counter!("tidemark_projector_restarts_total", "Times a projection's worker failed (broker or database away, …) and started again.");
                metrics::counter!("tidemark_projector_restarts_total", "projection" => P::NAME).increment(1);
            });
        })
        .await;
}

struct Worker<'a, P> {
    projection: std::marker::PhantomData<P>,
    pool: &'a PgPool,
    codec: EventCodec,
    consumer: Arc<ClosesInBackground<StreamConsumer<Rebalances>>>,
    metrics: ServiceMetrics,
    /// The positions this worker stored last, so an idle check writes only what moved.
    advanced: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
}

async fn run_once<P: Projection>(config: &RunnerConfig, pool: &PgPool, shutdown: &CancellationToken) -> Result<(), ProjectionError> {
    let consumer: StreamConsumer<Rebalances> = tidemark_log::reader(&config.brokers, &format!("tidemark-projector-{}", P::NAME))
        .set("group.id", format!("{}{}", config.group_prefix, P::NAME))
        // A crashed projector's partitions move to a live one after this long (default 45 s).
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        // What a lagging projector fetches ahead waits in memory: the default of 64 MB per
        // projection held gigabytes when the projections fell behind a burst of commands.
        .set("queued.max.messages.kbytes", "8192")
        .create_with_context(Rebalances { projection: P::NAME, metrics: config.metrics.clone() })?;
    let topics = P::topics(&config.topics);
    consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
    // Whichever task lets go of it last, it is closed off the async threads.
    let consumer = Arc::new(ClosesInBackground::new(consumer));
    let batch_size = config.batch_size;
    let worker = Worker::<P> { projection: std::marker::PhantomData, pool, codec: EventCodec::new(&config.registry_url)?.with_keys(std::sync::Arc::new(PgKeyStore::new(pool.clone()))), consumer: consumer.clone(), metrics: config.metrics.clone(), advanced: Default::default() };
    // Watermark requests get their own connection: on the consumer's, they would queue
    // behind its fetch long-polls, and the heartbeat gets its own task so it never delays
    // consumption.
    let watermarks: BaseConsumer = tidemark_log::reader(&config.brokers, &format!("tidemark-projector-{}-watermarks", P::NAME)).create()?;
    let watermarks = ClosesInBackground::new(watermarks);
    let mut heartbeat = AbortOnDrop(tokio::spawn(heartbeat::<P>(consumer, watermarks, pool.clone())));
    tracing::info!(projection = P::NAME, ?topics, "projector started");
    let mut idle = tokio::time::interval(IDLE_CHECK);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            result = &mut heartbeat.0 => return Err(match result { Ok(Err(e)) => e, _ => ProjectionError::Heartbeat }),
            // Between batches, every record delivered is applied: a position past them moved
            // over markers only (a transaction's commit marker that came after its records).
            _ = idle.tick() => worker.advance_to_position().await?,
            first = worker.consumer.recv() => {
                let mut batch = vec![first?.detach()];
                while batch.len() < batch_size {
                    match tokio::time::timeout(Duration::from_millis(2), worker.consumer.recv()).await {
                        Ok(message) => batch.push(message?.detach()),
                        Err(_) => break,
                    }
                }
                worker.apply_batch(batch).await?;
            }
        }
    }
}

impl<P: Projection> Worker<'_, P> {
    /// Stores the consumer's positions where they moved past what is stored without a
    /// record (markers only).
    async fn advance_to_position(&self) -> Result<(), ProjectionError> {
        let assigned: Vec<(String, i32)> = self.consumer.assignment()?.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let positions = tidemark_log::positions(&**self.consumer, assigned)?;
        let moved: BTreeMap<(String, i32), i64> = {
            let advanced = self.advanced.lock().expect("not poisoned");
            positions.into_iter().filter(|(key, at)| advanced.get(key).is_none_or(|stored| at > stored)).collect()
        };
        if moved.is_empty() {
            return Ok(());
        }
        let mut db = self.pool.acquire().await?;
        apply::advance(&mut db, P::NAME, &moved).await?;
        self.advanced.lock().expect("not poisoned").extend(moved);
        Ok(())
    }

    /// Applies a batch in one transaction. Its span links to the trace of every command
    /// whose records it applies: a batch serves many traces at once.
    async fn apply_batch(&self, batch: Vec<OwnedMessage>) -> Result<(), ProjectionError> {
        let span = tracing::info_span!("apply", projection = P::NAME, records = batch.len());
        for traceparent in batch.iter().filter_map(|m| m.headers()?.iter().find(|h| h.key == tidemark_http::traces::TRACEPARENT)?.value) {
            if let Ok(traceparent) = std::str::from_utf8(traceparent) {
                tidemark_http::traces::link(&span, traceparent);
            }
        }
        self.apply_batch_in_span(batch).instrument(span).await
    }

    async fn apply_batch_in_span(&self, batch: Vec<OwnedMessage>) -> Result<(), ProjectionError> {
        let (began, records) = (std::time::Instant::now(), batch.len());
        let received = apply::decode(&self.codec, batch).await?;
        let mut tx = self.pool.begin().await?;
        let mut reached = apply::apply_batch::<P>(&mut tx, &received).await?;
        let positions = tidemark_log::positions(&**self.consumer, reached.keys().cloned())?;
        apply::advance(&mut tx, P::NAME, &positions).await?;
        // A read that waited for these records links to this batch (see the query service).
        if let Some(traceparent) = tidemark_http::traces::traceparent(&tracing::Span::current()) {
            apply::mark_batch(&mut tx, P::NAME, reached.keys(), &traceparent).await?;
        }
        tx.commit().await?;
        self.metrics.record(|| {
            metrics::describe_counter!("tidemark_projector_records_total", "Records a projection applied (or skipped as applied before), in committed batches.");
            metrics::counter!("tidemark_projector_records_total", "projection" => P::NAME).increment(records as u64);
            metrics::describe_histogram!("tidemark_projector_batch_records", "Records in one batch: one PostgreSQL transaction.");
            metrics::histogram!("tidemark_projector_batch_records", "projection" => P::NAME).record(records as f64);
            metrics::describe_histogram!("tidemark_projector_batch_seconds", metrics::Unit::Seconds, "From a batch's decoding to its commit.");
            metrics::histogram!("tidemark_projector_batch_seconds", "projection" => P::NAME).record(began.elapsed().as_secs_f64());
        });
        // What is stored now: the batch's offsets, moved up to the positions where ahead.
        for (key, at) in positions {
            reached.entry(key).and_modify(|offset| *offset = (*offset).max(at));
        }
        self.advanced.lock().expect("not poisoned").extend(reached.clone());
        // Built only now: a TopicPartitionList must not live across an await (it is not Send).
        let mut commit = TopicPartitionList::new();
        for ((topic, partition), next_offset) in &reached {
            commit.add_partition_offset(topic, *partition, Offset::Offset(*next_offset))?;
        }
        if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
            tracing::debug!(error = %e, "committing offsets to Kafka failed; PostgreSQL holds the truth");
        }
        Ok(())
    }
}

/// Marks, every second, the partitions where nothing is left to apply: whatever the
/// projection has not applied there yet was appended after `checked_at`, which bounds the
/// staleness of its answers.
async fn heartbeat<P: Projection>(consumer: Arc<ClosesInBackground<StreamConsumer<Rebalances>>>, watermarks: ClosesInBackground<BaseConsumer>, pool: PgPool) -> Result<(), ProjectionError> {
    let watermarks = Arc::new(watermarks);
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let assigned: Vec<(String, i32)> =
            consumer.assignment()?.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let checked_at = Utc::now();
        // What is applied first, then the log ends: the other way round, records applied in
        // between would stand past an end read before them, and look like a reset log.
        let mut applied = BTreeMap::new();
        let mut db = pool.acquire().await?;
        for (topic, partition) in &assigned {
            ensure_standing(&mut db, P::NAME, topic, *partition).await?;
            let next_offset: i64 = sqlx::query_scalar!(
                "SELECT next_offset FROM projection_offsets WHERE projection = $1 AND topic = $2 AND partition = $3",
                P::NAME,
                topic,
                partition,
            )
            .fetch_one(&mut *db)
            .await?;
            applied.insert((topic.clone(), *partition), next_offset);
        }
        drop(db);
        let client = watermarks.clone();
        let asked = assigned.clone();
        let ends = match tokio::task::spawn_blocking(move || tidemark_log::log_ends(&client, &asked, Duration::from_secs(2))).await {
            Ok(Ok(ends)) => ends,
            _ => continue, // no answer: claim nothing
        };
        for ((topic, partition), high) in ends {
            let mut db = pool.acquire().await?;
            let applied = applied.get(&(topic.clone(), partition)).copied().unwrap_or(0);
            if applied > high {
                // Records the projection skips as applied do not exist: new ones would be lost.
                tracing::error!(projection = P::NAME, topic, partition, applied, log_end = high,
                    "the log is shorter than what this projection applied: was the broker's data reset without the database?");
            }
            sqlx::query!(
                "UPDATE projection_offsets SET caught_up_at = $4
                 WHERE projection = $1 AND topic = $2 AND partition = $3 AND next_offset >= $5",
                P::NAME,
                topic,
                partition,
                checked_at,
                high,
            )
            .execute(&mut *db)
            .await?;
        }
    }
}

/// Counts the consumer group's rebalances as this projection's consumer lives them.
struct Rebalances {
    projection: &'static str,
    metrics: ServiceMetrics,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (kind, partitions) = match rebalance {
            Rebalance::Assign(list) => ("assigned", list.count()),
            Rebalance::Revoke(list) => ("revoked", list.count()),
            Rebalance::Error(_) => ("failed", 0),
        };
        tracing::info!(projection = self.projection, kind, partitions, "rebalance");
        self.metrics.record(|| {
            metrics::describe_counter!("tidemark_projector_rebalances_total", "Rebalances of a projection's consumer group as one worker lived them: partitions assigned, revoked, or a failed rebalance.");
            metrics::counter!("tidemark_projector_rebalances_total", "projection" => self.projection, "kind" => kind).increment(1);
        });
    }
}

/// Stops a spawned task when its owner stops.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
