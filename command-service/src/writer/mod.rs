//! The single writer of the partitions it owns.
//!
//! Kafka cannot check an expected version on append, so a writer owns the partitions it
//! appends to. The writers share the shards (shard k: partition k of every event topic)
//! through Kafka's group protocol (see `ownership`). Every writer reads every partition (it
//! follows those it does not own, see `follower`), so that it can look up any aggregate and
//! take a shard over quickly. To take one, it writes a fence marker of a new epoch on each of
//! the shard's partitions, reads them past it through the shared fold rule, and then
//! serializes decisions per partition: decide against the
//! in-memory state, apply the events to it at once, and submit them to a transaction shared
//! with the commands that arrive together (see `appender`). The next command on the
//! partition is decided while that one commits. Should the append fail, the partition's
//! state goes back to before it, and the commands decided on it since are refused
//! unappended: each submission names the partition's era it was decided in, and a failure
//! starts a new era.
//!
//! A command for a shard this writer does not own is refused with `NotOwner` before any
//! decision; the HTTP edge forwards it to the owner (see `crate::forward`).
//!
//! Beside the partitions: `idempotency` (the outcomes a retry gets again) and
//! `lookups` (what commands on one aggregate need to know of others), both fed by the fold,
//! and `snapshot` (the state saved now and then, so that a start reads only the log's tail).

mod follower;
mod idempotency;
mod lookups;
mod ownership;
mod snapshot;

pub use idempotency::{fingerprint, new_aggregate_id, Outcome};
pub use lookups::OpportunityCard;
pub use snapshot::StartReport;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use chrono::{NaiveDate, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use serde::Serialize;
use tidemark_privacy::PgKeyStore;
use tidemark_events::envelope::StreamPosition;
use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_events::partition::partition_for;
use tidemark_events::approval::Delegated;
use tidemark_events::{Aggregate, AnyAggregate, CommandMeta, DomainEvent, Envelope, EventRecord, Rejection, Topics};
use tidemark_schemas::{Decoded, EventCodec};
use tokio::sync::{oneshot, Mutex, MutexGuard, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::appender::{AppendError, Appender, Delivered, Record};
use idempotency::{IdempotencyKey, Outcomes};
use lookups::Lookups;
use ownership::Membership;
use snapshot::{Anchor, Held, RecordId};

/// The writer's maps by aggregate id, with a hash much cheaper than the standard one: a
/// start from snapshots inserts millions of ids, and spent a tenth of its time hashing them.
type ById<V> = HashMap<Uuid, V, foldhash::fast::RandomState>;

/// Bounds every wait on the broker, so a client gets a 503 rather than a hang.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds a command's wait for its transaction's commit.
const APPEND_TIMEOUT: Duration = Duration::from_secs(6);
/// Bounds a whole command (re-reading uncertain partitions, deciding, committing), so that
/// while the broker is away a client gets its 503 in seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub brokers: String,
    pub registry_url: String,
    pub topics: Topics,
    /// This process, in fence markers and client ids.
    pub writer_id: String,
    /// This writer's lasting name in the writers' group: a writer restarted under the same
    /// name takes its shards back at once, and fences the process it replaces.
    pub name: String,
    /// The writers' consumer group.
    pub group_id: String,
    /// Kafka's transactional id of this writer, derived from its name: a restarted writer
    /// fences its previous process through the broker.
    pub transactional_id: String,
    /// Where other writers forward the commands for this writer's shards.
    pub advertised_url: String,
    pub code_version: String,
    /// Sent to the registry when registering schemas.
    pub registry_token: Option<String>,
    /// A partition is saved again once this many records were added to it since its last
    /// snapshot (see `snapshot`).
    pub snapshot_every: u64,
    /// The command service's figures, which the writer's transactions are counted into.
    pub metrics: tidemark_http::ServiceMetrics,
}

impl WriterConfig {
    /// How this writer's Kafka clients name themselves to the broker.
    fn client_id(&self) -> String {
        format!("tidemark-writer-{}", self.writer_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("expected version {expected}, but the aggregate is at version {current}")]
    VersionConflict { expected: i64, current: i64 },
    #[error("{}", .0.reason)]
    Denied(tidemark_events::policy::Denial),
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// Another writer owns the aggregate's shard (or nobody does, for a moment).
    #[error("this writer does not own shard {shard}")]
    NotOwner { shard: i32 },
    #[error("aggregate {id} cannot be changed: {reason}")]
    Unreadable { id: Uuid, reason: String },
    /// A defect, not a condition of the world: details go to the log, not to the client.
    #[error("internal error {reference}; the details are in the service's log")]
    Internal { reference: Uuid },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach the broker at {brokers}: {detail}")]
    Broker { brokers: String, detail: String },
    #[error("the broker refused the writer's transactions: {0}")]
    Transactions(String),
    #[error("topic {0} does not exist; run `tidemark setup` to create the topics")]
    MissingTopic(String),
    #[error("every event topic and {shards} need as many partitions (one per shard); they have {counts}")]
    UnevenTopics { shards: String, counts: String },
    #[error(transparent)]
    Registry(#[from] tidemark_schemas::codec::CodecError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catching up with the log: {0}")]
    CatchUp(#[from] CommandError),
}

#[derive(Debug, Clone)]
struct Stream {
    tenant_id: String,
    version: i64,
    state: Held,
}

/// An event a command appended. Its position stays inside Tidemark (the consistency token
/// carries it sealed): the topics are shared by every tenant, so offsets would tell one
/// tenant how much the others write.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppendedEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip)]
    pub topic: String,
    #[serde(skip)]
    pub partition: i32,
    #[serde(skip)]
    pub offset: i64,
}

/// What a command wants to change.
pub struct CommandRequest {
    pub meta: CommandMeta,
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    pub expected_version: Option<i64>,
    /// Set when the client sent an Idempotency-Key (which is then `meta.command_id`).
    pub idempotent: bool,
    /// Identifies the request's content, to refuse a key reused for another request.
    pub fingerprint: u64,
}

#[derive(Default)]
struct PartitionState {
    fold: PartitionFold,
    /// The epoch this writer owns the partition under (its appends carry it).
    epoch: i64,
    /// Where to go on reading when catching up (past the markers read so far).
    next_offset: i64,
    /// An append failed without an answer: it may or may not be in the log.
    uncertain: bool,
    /// Every stream's state, including the events of appends still in flight.
    streams: ById<Stream>,
    /// The appends in flight, in the order they were submitted, with what they changed.
    in_flight: Vec<InFlight>,
    /// The era of the inbox when it was last read: what a decision now is made in.
    era: u64,
    /// Aggregates whose stream holds a record this writer cannot fold.
    unreadable: HashMap<Uuid, Unreadable>,
    /// Offsets an operator resolved by skipping them (see `tidemark quarantine`).
    skipped: HashSet<i64>,
    /// The last record folded into this state, committed or read.
    anchor: Option<Anchor>,
    /// `next_offset` when the last snapshot was taken (or restored).
    snapshot_at: i64,
    /// Bumped whenever the follower must read the partition again from `next_offset` (this
    /// writer gave it up); it folds nothing of it until it has (see `follower`).
    follow_from: u64,
    /// The follower folded a record since: its position, past the markers, is where the
    /// state stands after a quiet spell.
    position_trusted: bool,
}

/// The record that makes an aggregate unreadable, and why.
struct Unreadable {
    offset: i64,
    reason: String,
}

/// An append in flight, and the streams as they were before it, to go back to if it fails.
struct InFlight {
    entry: u64,
    before: Vec<(Uuid, Option<Stream>)>,
}

/// What became of a partition's appends. The committer posts here (it never waits for a
/// partition's lock); whoever takes the lock next applies it first.
#[derive(Default)]
struct Inbox {
    /// Bumped by every failed append: a submission decided in an earlier era may rest on it.
    era: u64,
    fates: Vec<Fate>,
}

enum Fate {
    /// `last`: the last record it appended on the partition (none if it appended nothing).
    Committed { entry: u64, last: Option<Anchor> },
    Failed { entry: u64, uncertain: bool },
}

impl PartitionState {
    fn apply(&mut self, fate: Fate) {
        match fate {
            Fate::Committed { entry, last } => {
                self.in_flight.retain(|f| f.entry != entry);
                if let Some(last) = last {
                    self.next_offset = self.next_offset.max(last.offset + 1);
                    self.anchor = Some(last);
                }
            }
            Fate::Failed { entry, uncertain } => {
                // Every later append here was decided on this one, and is refused with it.
                if let Some(at) = self.in_flight.iter().position(|f| f.entry == entry) {
                    for undone in self.in_flight.drain(at..).rev() {
                        for (id, before) in undone.before {
                            match before {
                                Some(stream) => self.streams.insert(id, stream),
                                None => self.streams.remove(&id),
                            };
                        }
                    }
                }
                self.uncertain |= uncertain;
            }
        }
    }
}

struct Partition {
    topic: String,
    partition: i32,
    /// A `Role`: read without the lock, so that a command for a shard that is moving is
    /// refused at once rather than after the move.
    role: AtomicU8,
    state: Mutex<PartitionState>,
    inbox: Arc<SyncMutex<Inbox>>,
}

/// What this writer does with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Role {
    /// Another writer (or none) owns it: this one reads it, for lookups and a quick takeover.
    Following = 0,
    /// Assigned to this writer, which fences it and reads it to its end before serving.
    Taking = 1,
    Owned = 2,
    /// Being given up: the appends in flight settle, no new command is decided.
    Leaving = 3,
}

impl Partition {
    fn role(&self) -> Role {
        match self.role.load(Ordering::SeqCst) {
            0 => Role::Following,
            1 => Role::Taking,
            2 => Role::Owned,
            _ => Role::Leaving,
        }
    }

    fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::SeqCst);
    }

    /// Locks the partition's state, brought up to date with the fates of its appends.
    async fn lock(&self) -> MutexGuard<'_, PartitionState> {
        let mut state = self.state.lock().await;
        self.take_fates(&mut state);
        state
    }

    /// Applies the fates the committer posted since the state was last brought up to date.
    fn take_fates(&self, state: &mut PartitionState) {
        let (fates, era) = {
            let mut inbox = self.inbox.lock().expect("not poisoned");
            (std::mem::take(&mut inbox.fates), inbox.era)
        };
        for fate in fates {
            state.apply(fate);
        }
        state.era = era;
    }
}

/// Decides a command against its aggregate's current state (`None`: it does not exist).
pub type Decide = Box<dyn FnOnce(Option<&AnyAggregate>) -> Result<Vec<DomainEvent>, CommandError> + Send>;

/// The commands that follow from an accepted one, given its aggregate's state after it:
/// they are appended in the same transaction, or the command fails with them.
pub type FollowUps = Box<dyn FnOnce(&AnyAggregate) -> Vec<(CommandRequest, Decide)> + Send>;

/// The commands of one transaction, each holding its partition until the commit.
#[derive(Default)]
struct Unit<'a> {
    steps: Vec<Step<'a>>,
}

struct Step<'a> {
    partition: &'a Partition,
    state: MutexGuard<'a, PartitionState>,
    tenant_id: String,
    key: IdempotencyKey,
    fingerprint: u64,
    records: Vec<EventRecord>,
    payloads: Vec<Vec<u8>>,
}

impl Step<'_> {
    /// The aggregate's state after this step's events (not yet folded into the writer's).
    fn after(&self, id: Uuid) -> Option<AnyAggregate> {
        let before = self.state.streams.get(&id).map(|s| s.state.get().into_owned());
        self.records.iter().fold(before, |state, r| Some(tidemark_events::evolve(state, &r.event)))
    }
}

pub struct Writer {
    config: WriterConfig,
    /// Reads the operators' skipped records, and says who owns which shard.
    pool: sqlx::PgPool,
    appender: Appender,
    /// Metadata and log-end requests.
    client: Arc<BaseConsumer>,
    codec: EventCodec,
    partitions: HashMap<(String, i32), Partition>,
    /// Partitions of each event topic: the number of shards.
    shard_count: i32,
    /// This writer's place in the writers' group, once it has read the log (joined again
    /// if the group expels it).
    membership: Arc<std::sync::RwLock<Option<Membership>>>,
    /// Whether a newer process runs under this writer's name.
    superseded: crate::appender::Superseded,
    /// Set when the group expelled this writer and a newer process has its name.
    replaced: std::sync::OnceLock<String>,
    /// The shards this writer serves, each with the epoch it owns it under.
    owned: SyncMutex<std::collections::BTreeMap<i32, i64>>,
    /// Tells the follower to read a partition again from an offset (see `give_up`).
    follow_from: tokio::sync::mpsc::UnboundedSender<follower::Seek>,
    lookups: Arc<Lookups>,
    outcomes: Arc<Outcomes>,
    /// Names each append in flight.
    next_entry: AtomicU64,
    /// Bumped whenever an append's fate becomes unknown; see `settle_uncertain`.
    uncertain_generation: Arc<AtomicU64>,
    /// The last generation whose uncertain partitions were all read again.
    settled_generation: AtomicU64,
    settling: Mutex<()>,
    /// How the start went; see `snapshot`.
    started: std::sync::OnceLock<StartReport>,
}

/// How long a start waits for the group's first word on its shards before it serves anyway
/// (forwarding, or answering 503, until it owns some).
const FIRST_ASSIGNMENT_WAIT: Duration = Duration::from_secs(30);

impl Writer {
    /// Reads every partition of the event topics to its end, joins the writers' group, and
    /// returns once it owns the shards the group gave it first (or after
    /// `FIRST_ASSIGNMENT_WAIT`). Follows the group until `shutdown`.
    pub async fn start(config: WriterConfig, pool: &sqlx::PgPool, shutdown: CancellationToken) -> Result<Arc<Writer>, StartError> {
        let codec = EventCodec::with_token(&config.registry_url, config.registry_token.as_deref())?.with_keys(std::sync::Arc::new(PgKeyStore::new(pool.clone())));
        // Services started together (Compose, a test) may find the registry not yet listening.
        (|| codec.register_all(&config.topics))
            .retry(ConstantBuilder::default().with_delay(Duration::from_secs(1)).with_max_times(30))
            .when(|e| e.is_retryable())
            .notify(|e, _| tracing::warn!(error = %e, "the schema registry does not answer yet; waiting for it"))
            .await?;
        let broker = |e: &dyn std::fmt::Display| StartError::Broker { brokers: config.brokers.clone(), detail: e.to_string() };
        let client: BaseConsumer = tidemark_log::reader(&config.brokers, &config.client_id()).create().map_err(|e| broker(&e))?;
        let mut partitions = HashMap::new();
        let mut counts = Vec::new();
        for topic in config.topics.all().into_iter().chain([config.topics.writer_shards.as_str()]) {
            let count = tidemark_log::partition_count(&client, topic, Duration::from_secs(10))
                .map_err(|e| broker(&e))?
                .ok_or_else(|| StartError::MissingTopic(topic.to_string()))?;
            counts.push((topic, count));
        }
        let shard_count = counts[0].1;
        if counts.iter().any(|(_, c)| *c != shard_count) {
            let counts = counts.iter().map(|(t, c)| format!("{t}: {c}")).collect::<Vec<_>>().join(", ");
            return Err(StartError::UnevenTopics { shards: config.topics.writer_shards.clone(), counts });
        }
        for topic in config.topics.all() {
            for p in 0..shard_count {
                let partition = Partition { topic: topic.to_string(), partition: p, role: AtomicU8::default(), state: Mutex::default(), inbox: Arc::default() };
                partitions.insert((topic.to_string(), p), partition);
            }
        }
        let producer_config = tidemark_log::client(&config.brokers, &config.client_id())
            .set("transactional.id", &config.transactional_id)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", BROKER_TIMEOUT.as_millis().to_string())
            // A writer that dies with a transaction open holds up readers of its partitions
            // (and the writer taking its shards over) until a successor of the same name
            // registers or this passes; a commit is given up after `APPEND_TIMEOUT` anyway.
            .set("transaction.timeout.ms", "7000")
            // Back-to-back transactions meet the previous one's markers still being written
            // (CONCURRENT_TRANSACTIONS on AddPartitionsToTxn); the default backoff of 100 ms,
            // doubling, would be each transaction's latency.
            .set("retry.backoff.ms", "5")
            .set("retry.backoff.max.ms", "50")
            .clone();
        let make = Box::new(move || producer_config.create::<FutureProducer>());
        let membership: Arc<std::sync::RwLock<Option<Membership>>> = Arc::default();
        let member = membership.clone();
        let fence: crate::appender::Fence = Arc::new(move |shards: &[i32]| {
            let member = member.read().expect("not poisoned");
            let member = member.as_ref().ok_or("this writer is not in the writers' group at the moment")?;
            member.fence(shards.iter().copied()).ok_or_else(|| "this writer is not in the writers' group at the moment".to_string())
        });
        let superseded = ownership::register_process(pool, &config.name, &config.writer_id).await?;
        let client = Arc::new(client);
        let appender = Appender::start(make, (fence, superseded.clone()), client.clone(), BROKER_TIMEOUT, config.metrics.clone()).await.map_err(|e| StartError::Transactions(e.to_string()))?;
        let (follow_from, seeks) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer {
            config,
            pool: pool.clone(),
            appender,
            client,
            codec,
            partitions,
            shard_count,
            membership,
            superseded,
            replaced: std::sync::OnceLock::new(),
            owned: SyncMutex::default(),
            follow_from,
            lookups: Arc::default(),
            outcomes: Arc::default(),
            next_entry: AtomicU64::new(0),
            uncertain_generation: Arc::default(),
            settled_generation: AtomicU64::new(0),
            settling: Mutex::new(()),
            started: std::sync::OnceLock::new(),
        };
        let mut report = writer.read_everything_patiently().await?;
        let writer = Arc::new(writer);
        tokio::spawn(writer.clone().follow(seeks, shutdown.clone()));
        let changes = writer.join().map_err(|e| StartError::Broker { brokers: writer.config.brokers.clone(), detail: e.to_string() })?;
        let (first, assigned) = oneshot::channel();
        tokio::spawn(writer.clone().follow_the_group(changes, first, shutdown));
        let waited = std::time::Instant::now();
        if tokio::time::timeout(FIRST_ASSIGNMENT_WAIT, writer.settle_in(assigned)).await.is_err() {
            tracing::warn!("the writers' group has not settled in time; serving anyway, forwarding the commands of shards it does not own");
        }
        report.shards = writer.owned_shards().into_keys().collect();
        report.seconds += waited.elapsed().as_secs_f64();
        tracing::info!(
            name = %writer.config.name,
            shards = ?report.shards,
            partitions = report.partitions,
            from_snapshots = report.from_snapshots,
            snapshots_ignored = report.snapshots_ignored.len(),
            records_read = report.records_read,
            seconds = report.seconds,
            "writer started"
        );
        writer.started.set(report).expect("started once");
        Ok(writer)
    }

    pub fn code_version(&self) -> &str {
        &self.config.code_version
    }

    /// This writer's name in the writers' group.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The shards this writer serves, each with the epoch it owns it under.
    pub fn owned_shards(&self) -> std::collections::BTreeMap<i32, i64> {
        self.owned.lock().expect("not poisoned").clone()
    }

    /// The command service's figures (the writer counts its transactions there).
    pub fn metrics(&self) -> &tidemark_http::ServiceMetrics {
        &self.config.metrics
    }

    /// How this writer started: how long it took, and what the snapshots saved it.
    pub fn start_report(&self) -> &StartReport {
        self.started.get().expect("a writer is returned once started")
    }

    /// A broker that is slow to answer at start-up (it is busy, or just started) gets a few
    /// more chances before the writer gives up.
    async fn read_everything_patiently(&self) -> Result<StartReport, CommandError> {
        (|| self.read_everything())
            .retry(ConstantBuilder::default().with_delay(Duration::from_secs(1)).with_max_times(2))
            .when(|e| matches!(e, CommandError::Unavailable(_)))
            .notify(|e, _| tracing::warn!(error = %e, "reading the log failed; trying again"))
            .await
    }

    /// Restores what the snapshots hold and reads every partition from there to its end.
    async fn read_everything(&self) -> Result<StartReport, CommandError> {
        let started = std::time::Instant::now();
        let mut all = Vec::with_capacity(self.partitions.len());
        for partition in self.partitions.values() {
            all.push((partition, partition.lock().await));
        }
        let mut report = StartReport { partitions: all.len(), ..StartReport::default() };
        let restoring = std::time::Instant::now();
        self.restore_snapshots(&mut all, &mut report).await?;
        report.snapshot_seconds = restoring.elapsed().as_secs_f64();
        report.records_read = self.catch_up(&mut all).await?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Reads each partition from its `next_offset` to the log end as it is now, folding
    /// every committed record; says how many it read.
    async fn catch_up(&self, parts: &mut [(&Partition, MutexGuard<'_, PartitionState>)]) -> Result<u64, CommandError> {
        let keys: Vec<tidemark_log::Partition> = parts.iter().map(|(p, _)| (p.topic.clone(), p.partition)).collect();
        let asked = keys.clone();
        let client = self.client.clone();
        let ends = tokio::task::spawn_blocking(move || tidemark_log::log_ends(&client, &asked, BROKER_TIMEOUT))
            .await
            .map_err(|e| unavailable(e))?
            .map_err(unavailable)?;
        let skipped = sqlx::query!(r#"SELECT topic, partition, "offset" FROM skipped_records"#).fetch_all(&self.pool).await.map_err(unavailable)?;
        for (partition, state) in parts.iter_mut() {
            state.skipped = skipped.iter().filter(|s| s.topic == partition.topic && s.partition == partition.partition).map(|s| s.offset).collect();
        }
        let from = parts.iter().map(|(p, s)| ((p.topic.clone(), p.partition), s.next_offset)).collect();
        let config = tidemark_log::reader(&self.config.brokers, &self.config.client_id());
        let mut log = tidemark_log::ToEnd::new(config, &from, ends.clone(), BROKER_TIMEOUT).map_err(unavailable)?;
        let index: HashMap<tidemark_log::Partition, usize> = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut read = 0;
        while let Some(message) = log.next().await.map_err(unavailable)? {
            read += 1;
            let decoded = self.codec.decode(message.payload()).await;
            if let Err(e) = &decoded {
                if e.is_retryable() {
                    return Err(unavailable(e));
                }
            }
            let state = &mut parts[index[&(message.topic().to_string(), message.partition())]].1;
            self.fold_record(state, (message.topic(), message.partition(), message.offset()), message.key(), decoded);
            state.next_offset = message.offset() + 1;
        }
        for (partition, state) in parts.iter_mut() {
            state.next_offset = state.next_offset.max(ends[&(partition.topic.clone(), partition.partition)]);
            state.uncertain = false;
        }
        Ok(read)
    }

    /// Applies the shared fold rule to one record read from the log.
    fn fold_record(
        &self,
        state: &mut PartitionState,
        (topic, partition, offset): (&str, i32, i64),
        key: Option<&[u8]>,
        decoded: Result<Decoded, tidemark_schemas::codec::CodecError>,
    ) {
        if state.skipped.contains(&offset) {
            tracing::info!(topic, partition, offset, "passed a record an operator skipped");
            return;
        }
        if let Ok(decoded) = &decoded {
            state.anchor = Some(Anchor { offset, record: RecordId::of(decoded) });
        }
        match decoded {
            Ok(Decoded::Fence(marker)) => state.fold.observe_fence(marker.writer_epoch),
            Ok(Decoded::Event(record)) => {
                let position = AppendedEvent {
                    event_type: record.envelope.event_type.clone(),
                    topic: topic.to_string(),
                    partition,
                    offset,
                };
                self.fold_event(state, record, position);
            }
            Err(error) => {
                let reason = format!("record {topic}/{partition}@{offset} cannot be decoded: {error}");
                tracing::error!(%reason, "unreadable record in an owned partition");
                if let Some(id) = key.and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.parse().ok()) {
                    state.unreadable.insert(id, Unreadable { offset, reason });
                }
            }
        }
    }

    fn fold_event(&self, state: &mut PartitionState, record: EventRecord, position: AppendedEvent) {
        let env = &record.envelope;
        let applied = state.streams.get(&env.aggregate_id).map_or(0, |s| s.version);
        match state.fold.judge(env.writer_epoch, applied, env.aggregate_version) {
            Verdict::Apply => {}
            Verdict::Duplicate | Verdict::Fenced { .. } => return,
            Verdict::Gap { expected, found } => {
                let reason = format!("version {found} at {}/{}@{} follows version {}", position.topic, position.partition, position.offset, expected - 1);
                tracing::error!(aggregate_id = %env.aggregate_id, %reason, "gap in an aggregate's stream");
                state.unreadable.insert(env.aggregate_id, Unreadable { offset: position.offset, reason });
                return;
            }
        }
        let previous = state.streams.remove(&env.aggregate_id).map(|s| s.state.into_state());
        let evolved = tidemark_events::evolve(previous, &record.event);
        self.lookups.fed(&env.tenant_id, env.aggregate_id, &evolved);
        state.streams.insert(
            env.aggregate_id,
            Stream { tenant_id: env.tenant_id.clone(), version: env.aggregate_version, state: Held::live(evolved) },
        );
        self.outcomes.remember(env, position);
    }

    /// The current state of one aggregate of the tenant, as this writer holds it (read to
    /// the log's end first if another writer owns it).
    pub async fn state_of(&self, aggregate_type: &str, tenant_id: &str, id: Uuid) -> Option<AnyAggregate> {
        let partition = self.partition_of(aggregate_type, id);
        self.read_to_end(std::iter::once(partition)).await;
        let state = partition.lock().await;
        state.streams.get(&id).filter(|s| s.tenant_id == tenant_id).map(|s| s.state.get().into_owned())
    }

    /// Every aggregate of a type this writer holds, with its tenant and id; only those of
    /// its own shards when `owned_only`.
    pub async fn all_of(&self, aggregate_type: &str, owned_only: bool) -> Vec<(String, Uuid, AnyAggregate)> {
        let topic = self.config.topics.for_aggregate(aggregate_type).unwrap_or_default();
        let mut found = Vec::new();
        for partition in self.partitions.values().filter(|p| p.topic == topic && (!owned_only || p.role() == Role::Owned)) {
            let state = partition.lock().await;
            found.extend(state.streams.iter().map(|(id, s)| (s.tenant_id.clone(), *id, s.state.get().into_owned())));
        }
        found
    }

    /// The current state of one aggregate of `A`'s kind in the tenant.
    pub async fn state<A: Aggregate>(&self, tenant_id: &str, id: Uuid) -> Option<A> {
        self.state_of(A::TYPE, tenant_id, id).await.and_then(A::from_any)
    }

    /// Every aggregate of `A`'s kind this writer holds, with its tenant and id (as far as it
    /// has read the partitions it does not own).
    pub async fn all<A: Aggregate>(&self) -> Vec<(String, Uuid, A)> {
        self.all_of(A::TYPE, false).await.into_iter().filter_map(|(tenant, id, state)| Some((tenant, id, A::from_any(state)?))).collect()
    }

    /// Every aggregate of `A`'s kind in the shards this writer owns, with its tenant and id.
    pub async fn all_owned<A: Aggregate>(&self) -> Vec<(String, Uuid, A)> {
        self.all_of(A::TYPE, true).await.into_iter().filter_map(|(tenant, id, state)| Some((tenant, id, A::from_any(state)?))).collect()
    }

    /// The approval authority delegated to `user` for `day`, by whom, in the tenant.
    pub async fn delegated_to(&self, tenant_id: &str, user: &str, day: NaiveDate) -> Vec<Delegated> {
        self.read_to_end(self.partitions.values().filter(|p| p.topic == self.config.topics.delegation)).await;
        self.lookups.delegated_to(tenant_id, user, day)
    }

    /// The opportunity's owner, team, readers and whether it is closed, in the tenant.
    pub async fn opportunity_card(&self, tenant_id: &str, id: Uuid) -> Option<OpportunityCard> {
        self.read_to_end(std::iter::once(self.partition_of(tidemark_events::opportunity::AGGREGATE_TYPE, id))).await;
        self.lookups.opportunity_card(tenant_id, id)
    }

    /// Whether the account (or contact: `aggregate_type`) exists in the tenant.
    pub async fn exists(&self, tenant_id: &str, aggregate_type: &str, id: Uuid) -> bool {
        // They are never removed: only a miss needs the log's end.
        if self.lookups.exists(tenant_id, aggregate_type, id) {
            return true;
        }
        self.read_to_end(std::iter::once(self.partition_of(aggregate_type, id))).await;
        self.lookups.exists(tenant_id, aggregate_type, id)
    }

    /// Reads the partitions this writer does not own up to the log's end as it is now, so
    /// that a lookup sees what their owners committed before it. Should the log not answer,
    /// the lookup goes on with what was read (the decision it serves fails to append then).
    async fn read_to_end<'a>(&'a self, partitions: impl Iterator<Item = &'a Partition>) {
        let mut followed = Vec::new();
        for partition in partitions.filter(|p| p.role() != Role::Owned) {
            followed.push((partition, partition.lock().await));
        }
        if followed.is_empty() {
            return;
        }
        let asked: Vec<tidemark_log::Partition> = followed.iter().map(|(p, _)| (p.topic.clone(), p.partition)).collect();
        let client = self.client.clone();
        let ends = match tokio::task::spawn_blocking(move || tidemark_log::log_ends(&client, &asked, BROKER_TIMEOUT)).await {
            Ok(Ok(ends)) => ends,
            Ok(Err(e)) => return tracing::warn!(error = %e, "a lookup goes on without the log's end"),
            Err(e) => return tracing::warn!(error = %e, "a lookup goes on without the log's end"),
        };
        followed.retain(|(p, s)| s.next_offset < ends[&(p.topic.clone(), p.partition)]);
        if !followed.is_empty() {
            if let Err(e) = self.catch_up(&mut followed).await {
                tracing::warn!(error = %e, "a lookup goes on without the log's end");
            }
        }
    }

    /// Runs one command: decide against the current state, append, wait for the commit.
    pub async fn execute(
        &self,
        request: CommandRequest,
        decide: impl FnOnce(Option<&AnyAggregate>) -> Result<Vec<DomainEvent>, CommandError> + Send + 'static,
    ) -> Result<Outcome, CommandError> {
        self.execute_with(request, Box::new(decide), None).await
    }

    /// Runs one command and the commands that follow from it, in one transaction. A follow-up
    /// that was done before (its key has an outcome) or whose record exists already is
    /// left out; any other refusal of a follow-up fails the whole command.
    #[tracing::instrument(name = "execute", skip_all, fields(aggregate = request.aggregate_type, id = %request.aggregate_id, follow_ups = follow_ups.is_some()))]
    pub async fn execute_with(&self, request: CommandRequest, decide: Decide, follow_ups: Option<FollowUps>) -> Result<Outcome, CommandError> {
        // Cancelling is safe at any await: a partition is marked uncertain before its
        // append and cleared only once the append's fate is known (see `commit`).
        tokio::time::timeout(COMMAND_TIMEOUT, self.execute_unbounded(request, decide, follow_ups))
            .await
            .unwrap_or_else(|_| Err(unavailable("the event log did not answer in time")))
    }

    async fn execute_unbounded(&self, request: CommandRequest, decide: Decide, follow_ups: Option<FollowUps>) -> Result<Outcome, CommandError> {
        self.owner_of(self.partition_of(request.aggregate_type, request.aggregate_id))?;
        let key = IdempotencyKey::of_request(&request);
        let same_key = if request.idempotent { Some(self.outcomes.lock(&key).await) } else { None };
        self.settle_uncertain().await?;
        if request.idempotent {
            let first = self.outcomes.get(&key);
            if let Some(first) = first {
                if first.fingerprint.is_some_and(|f| f != request.fingerprint) {
                    return Err(CommandError::IdempotencyKeyReused);
                }
                // Authorization comes first, for a retry too: a change is decided again
                // against the current state, and only a denial counts (the change is done).
                // A creation was authorized before it reached the writer.
                if !first.created {
                    let current = self.state_of(request.aggregate_type, &request.meta.tenant_id, request.aggregate_id).await;
                    if let Err(denied @ (CommandError::Denied(_) | CommandError::Rejected(Rejection::NotYours { .. }))) = decide(current.as_ref()) {
                        return Err(denied);
                    }
                }
                return Ok(Outcome { replayed: true, ..first });
            }
        }
        let mut unit = Unit::default();
        let id = request.aggregate_id;
        self.stage(&mut unit, request, decide).await?;
        // The state after is worked out only for commands that have follow-ups.
        if let Some((follow_ups, after)) = follow_ups.and_then(|f| Some((f, unit.steps[0].after(id)?))) {
            for (request, decide) in follow_ups(&after) {
                let done = self.outcomes.contains(&IdempotencyKey::of_request(&request));
                if done {
                    continue;
                }
                match self.stage(&mut unit, request, decide).await {
                    Ok(_) | Err(CommandError::Rejected(Rejection::AlreadyExists)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let fate = self.submit(unit, same_key);
        // The fate is settled by the committer whether or not this command still waits for
        // it; a retry with the same key waits until then.
        tokio::time::timeout(APPEND_TIMEOUT, fate)
            .await
            .map_err(|_| unavailable("the broker did not confirm the commit in time"))?
            .map_err(|_| unavailable("the committer stopped during the commit"))?
    }

    /// Decides one command of `unit` and keeps its partition locked until the submission.
    async fn stage<'a>(&'a self, unit: &mut Unit<'a>, request: CommandRequest, decide: Decide) -> Result<(), CommandError> {
        let id = request.aggregate_id;
        let partition = self.partition_of(request.aggregate_type, id);
        if unit.steps.iter().any(|s| std::ptr::eq(s.partition, partition)) {
            // Locking it again would wait for ourselves.
            let reference = Uuid::now_v7();
            tracing::error!(%reference, topic = %partition.topic, partition = partition.partition, "one transaction's commands share a partition");
            return Err(CommandError::Internal { reference });
        }
        self.owner_of(partition)?;
        let mut locked = [(partition, partition.lock().await)];
        // The shard may have moved while this waited for the lock.
        self.owner_of(partition)?;
        if locked[0].1.uncertain {
            self.recover(&mut locked).await?;
        }
        if let Some(blocked) = locked[0].1.unreadable.get(&id) {
            if !self.is_skipped(partition, blocked.offset).await? {
                return Err(CommandError::Unreadable { id, reason: blocked.reason.clone() });
            }
            if !locked[0].1.in_flight.is_empty() {
                return Err(unavailable("the partition is busy; try again"));
            }
            // An operator skipped it since: read the partition again from its start.
            *locked[0].1 = PartitionState::default();
            self.catch_up(&mut locked).await?;
            if let Some(blocked) = locked[0].1.unreadable.get(&id) {
                return Err(CommandError::Unreadable { id, reason: blocked.reason.clone() });
            }
        }
        let [(_, state)] = locked;
        let meta = &request.meta;
        // Another tenant's aggregate does not exist for this one.
        let stream = state.streams.get(&id).filter(|s| s.tenant_id == meta.tenant_id);
        let current = stream.map_or(0, |s| s.version);
        if let Some(expected) = request.expected_version {
            if expected != current {
                return Err(CommandError::VersionConflict { expected, current });
            }
        }
        let current_state = stream.map(|s| s.state.get());
        let events = decide(current_state.as_deref())?;
        let recorded_at = Utc::now();
        let mut records = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let at = StreamPosition {
                aggregate_type: request.aggregate_type,
                aggregate_id: id,
                version: current + 1 + i as i64,
                writer_epoch: state.epoch,
            };
            let record = EventRecord { envelope: Envelope::new(meta, at, event.event_type(), recorded_at), event };
            payloads.push(self.codec.encode_event(&partition.topic, &record).await.map_err(codec_failure)?);
            records.push(record);
        }
        let key = IdempotencyKey::of_request(&request);
        unit.steps.push(Step { partition, state, tenant_id: meta.tenant_id.clone(), key, fingerprint: request.fingerprint, records, payloads });
        Ok(())
    }

    /// Applies `unit`'s events to its partitions' state and submits them to one transaction,
    /// then lets the partitions go. The answer comes once the committer knows the fate;
    /// `same_key` is held until then, so that a retry finds the outcome.
    fn submit(&self, unit: Unit<'_>, same_key: Option<OwnedMutexGuard<()>>) -> oneshot::Receiver<Result<Outcome, CommandError>> {
        let mut appended = Vec::new();
        let mut eras = Vec::new();
        let mut steps = Vec::new();
        // Held until the records are queued: the next decision on a partition must queue after.
        let mut locks = Vec::new();
        for mut step in unit.steps {
            let entry = self.next_entry.fetch_add(1, Ordering::SeqCst);
            let mut before: Vec<(Uuid, Option<Stream>)> = Vec::new();
            for (record, payload) in step.records.iter().zip(step.payloads.drain(..)) {
                let env = &record.envelope;
                if !before.iter().any(|(id, _)| *id == env.aggregate_id) {
                    before.push((env.aggregate_id, step.state.streams.get(&env.aggregate_id).cloned()));
                }
                let previous = step.state.streams.remove(&env.aggregate_id).map(|s| s.state.into_state());
                let state = Held::live(tidemark_events::evolve(previous, &record.event));
                step.state.streams.insert(env.aggregate_id, Stream { tenant_id: step.tenant_id.clone(), version: env.aggregate_version, state });
                appended.push(Record { topic: step.partition.topic.clone(), partition: step.partition.partition, key: Some(env.aggregate_id.to_string()), payload });
            }
            let after: Vec<(Uuid, AnyAggregate)> = before.iter().map(|(id, _)| (*id, step.state.streams[id].state.get().into_owned())).collect();
            step.state.in_flight.push(InFlight { entry, before });
            eras.push((step.partition.inbox.clone(), step.state.era));
            steps.push(Submitted { entry, topic: step.partition.topic.clone(), inbox: step.partition.inbox.clone(), tenant_id: step.tenant_id, key: step.key, fingerprint: step.fingerprint, records: step.records, after });
            locks.push(step.state);
        }
        let (answer, fate) = oneshot::channel();
        let settle = Settle { lookups: self.lookups.clone(), outcomes: self.outcomes.clone(), uncertain_generation: self.uncertain_generation.clone() };
        let still_valid = Box::new(move || eras.iter().all(|(inbox, era)| inbox.lock().expect("not poisoned").era == *era));
        self.appender.submit(
            appended,
            Some(still_valid),
            Box::new(move |result| {
                let outcome = settle.fate(steps, result);
                drop(same_key);
                let _ = answer.send(outcome);
            }),
        );
        drop(locks);
        fate
    }

    /// Before any decision, re-reads partitions where an append's fate is unknown, so that
    /// a retried command finds its first attempt if that attempt landed after all.
    async fn settle_uncertain(&self) -> Result<(), CommandError> {
        // The common case costs two loads and takes no partition lock, so commands on
        // different partitions never wait for each other here.
        if self.settled_generation.load(Ordering::SeqCst) == self.uncertain_generation.load(Ordering::SeqCst) {
            return Ok(());
        }
        // While one request reads the partitions again, the others wait for it: none may
        // decide from outcomes that are not known yet.
        let _one_at_a_time = self.settling.lock().await;
        let target = self.uncertain_generation.load(Ordering::SeqCst);
        if self.settled_generation.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        self.settle_each().await?;
        self.settled_generation.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    async fn settle_each(&self) -> Result<(), CommandError> {
        let mut uncertain = Vec::new();
        for partition in self.partitions.values() {
            let state = partition.lock().await;
            if state.uncertain {
                uncertain.push((partition, state));
            }
        }
        // A command that met its partition uncertain has read it again already (`stage`).
        if uncertain.is_empty() {
            return Ok(());
        }
        self.recover(&mut uncertain).await
    }

    /// Reads partitions again where an append's fate is unknown. The transaction in doubt
    /// must be decided first (the appender's next producer does that): an open one hides
    /// its records from a committed reader.
    async fn recover(&self, parts: &mut [(&Partition, MutexGuard<'_, PartitionState>)]) -> Result<(), CommandError> {
        tokio::time::timeout(APPEND_TIMEOUT, self.appender.settle())
            .await
            .map_err(|_| unavailable("the broker did not confirm the last transaction's fate in time"))?
            .map_err(append_failure)?;
        self.catch_up(parts).await.map(|_| ())
    }

    async fn is_skipped(&self, partition: &Partition, offset: i64) -> Result<bool, CommandError> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM skipped_records WHERE topic = $1 AND partition = $2 AND "offset" = $3) AS "skipped!""#,
            partition.topic,
            partition.partition,
            offset,
        )
        .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    /// A new aggregate id in a shard this writer owns (any id when it owns none).
    pub fn new_id(&self) -> Uuid {
        let owned = self.owned_shards();
        loop {
            let id = Uuid::now_v7();
            if owned.is_empty() || owned.contains_key(&partition_for(id.to_string().as_bytes(), self.shard_count)) {
                return id;
            }
        }
    }

    /// The first of `candidates` that falls in the shard of aggregate `id`.
    pub fn id_beside(&self, aggregate_type: &str, id: Uuid, candidates: impl Fn(u32) -> Uuid) -> Uuid {
        tidemark_events::partition::id_in_partition(self.partition_of(aggregate_type, id).partition, self.shard_count, candidates)
    }

    /// Refuses a command for a partition this writer does not serve now.
    fn owner_of(&self, partition: &Partition) -> Result<(), CommandError> {
        match partition.role() {
            Role::Owned => Ok(()),
            _ => Err(CommandError::NotOwner { shard: partition.partition }),
        }
    }

    fn partition_of(&self, aggregate_type: &str, id: Uuid) -> &Partition {
        let topic = self.config.topics.for_aggregate(aggregate_type).expect("a known aggregate type");
        let p = partition_for(id.to_string().as_bytes(), self.shard_count);
        &self.partitions[&(topic.to_string(), p)]
    }

    /// Whether the broker answers a metadata request.
    pub fn broker_answers(&self) -> Result<(), String> {
        self.client.fetch_metadata(None, Duration::from_secs(2)).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Why this writer may append nothing more, if a newer process of its name took over.
    pub fn fenced(&self) -> Option<String> {
        self.appender.fenced().or_else(|| self.replaced.get().cloned())
    }
}

fn unavailable(e: impl std::fmt::Display) -> CommandError {
    CommandError::Unavailable(e.to_string())
}

fn append_failure(e: AppendError) -> CommandError {
    CommandError::Unavailable(e.to_string())
}

/// A registry that does not answer is a 503; a record that will not encode is a defect.
fn codec_failure(e: tidemark_schemas::codec::CodecError) -> CommandError {
    if e.is_retryable() {
        return unavailable(e);
    }
    let reference = Uuid::now_v7();
    tracing::error!(%reference, error = %e, "cannot encode a record");
    CommandError::Internal { reference }
}

/// A command's part of a submission, as the committer settles it.
struct Submitted {
    entry: u64,
    topic: String,
    inbox: Arc<SyncMutex<Inbox>>,
    tenant_id: String,
    key: IdempotencyKey,
    fingerprint: u64,
    records: Vec<EventRecord>,
    /// Each changed stream's state after the command, for the lookups.
    after: Vec<(Uuid, AnyAggregate)>,
}

/// What an append's fate changes: run by the committer, in the order of the submissions,
/// so that the lookups and outcomes follow the log's order.
struct Settle {
    lookups: Arc<Lookups>,
    outcomes: Arc<Outcomes>,
    uncertain_generation: Arc<AtomicU64>,
}

impl Settle {
    fn fate(&self, steps: Vec<Submitted>, result: Result<Vec<Delivered>, AppendError>) -> Result<Outcome, CommandError> {
        let delivered = match result {
            Ok(delivered) => delivered,
            Err(e) => {
                // Not appended: nothing is in the log. Otherwise the records may be there,
                // and the partitions are read again before anything else is decided on them.
                let uncertain = !matches!(e, AppendError::NotAppended(_));
                for step in &steps {
                    let mut inbox = step.inbox.lock().expect("not poisoned");
                    inbox.fates.push(Fate::Failed { entry: step.entry, uncertain });
                    inbox.era += 1;
                }
                if uncertain {
                    self.uncertain_generation.fetch_add(1, Ordering::SeqCst);
                }
                return Err(append_failure(e));
            }
        };
        let mut delivered = delivered.into_iter();
        let mut first = None;
        for step in steps {
            let mut last = None;
            for record in &step.records {
                let at = delivered.next().expect("one delivery per record");
                last = Some(Anchor { offset: at.offset, record: RecordId::Event(record.envelope.event_id) });
                let position = AppendedEvent { event_type: record.envelope.event_type.clone(), topic: step.topic.clone(), partition: at.partition, offset: at.offset };
                self.outcomes.remember(&record.envelope, position);
            }
            for (id, state) in &step.after {
                self.lookups.fed(&step.tenant_id, *id, state);
            }
            // Marked before the fate is posted: a snapshot then keeps the request's content.
            let outcome = self.outcomes.committed(&step.key, step.fingerprint);
            step.inbox.lock().expect("not poisoned").fates.push(Fate::Committed { entry: step.entry, last });
            first.get_or_insert(outcome);
        }
        Ok(first.expect("a unit has a command"))
    }
}
