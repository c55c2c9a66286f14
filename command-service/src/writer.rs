//! The single writer of its partitions.
//!
//! Kafka cannot check an expected version on append, so the writer owns its partitions:
//! it fences them with a new epoch, reads them to the end through the shared fold rule,
//! and then serializes commands per partition: decide against the in-memory state, append,
//! wait for the broker's acknowledgement, and only then fold the event into the state.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, RwLock};
use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tidemark_privacy::PgKeyStore;
use tidemark_events::envelope::StreamPosition;
use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_events::delegation::Delegation;
use tidemark_events::lead::Lead;
use tidemark_events::partition::partition_for;
use tidemark_events::quote::Delegated;
use tidemark_events::{Aggregate, CommandMeta, DomainEvent, Envelope, EventRecord, Rejection, Topics};
use tidemark_schemas::{Decoded, EventCodec, FenceMarker};
use tokio::sync::Mutex;
use uuid::Uuid;

/// How long an idempotency key is remembered after its command, as payment APIs do.
const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);
/// Bounds every wait on the broker, so a client gets a 503 rather than a hang.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub brokers: String,
    pub registry_url: String,
    pub topics: Topics,
    pub writer_id: String,
    pub code_version: String,
    /// Sent to the registry when registering schemas.
    pub registry_token: Option<String>,
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
    #[error("topic {0} does not exist; run `tidemark setup` to create the topics")]
    MissingTopic(String),
    #[error(transparent)]
    Registry(#[from] tidemark_schemas::codec::CodecError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catching up with the log: {0}")]
    CatchUp(#[from] CommandError),
}

/// What commands on other aggregates need to know of an opportunity (an activity's target).
#[derive(Debug, Clone)]
pub struct OpportunityCard {
    pub tenant_id: String,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub shared_with: Vec<String>,
    pub closed: bool,
}

#[derive(Debug, Clone)]
struct Stream {
    tenant_id: String,
    version: i64,
    state: Aggregate,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppendedEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The result of an accepted command; a retry with the same Idempotency-Key gets it again.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub created: bool,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub events: Vec<AppendedEvent>,
    pub replayed: bool,
    fingerprint: Option<u64>,
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

pub fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

#[derive(Default)]
struct PartitionState {
    fold: PartitionFold,
    /// The next offset to read when catching up.
    next_offset: i64,
    /// An append failed without an answer: it may or may not be in the log.
    uncertain: bool,
    streams: HashMap<Uuid, Stream>,
    /// Aggregates whose stream holds a record this writer cannot fold, with the reason.
    unreadable: HashMap<Uuid, String>,
}

struct Partition {
    topic: String,
    partition: i32,
    state: Mutex<PartitionState>,
}

type IdempotencyKey = (String, String);

pub struct Writer {
    config: WriterConfig,
    epoch: i64,
    producer: FutureProducer,
    codec: EventCodec,
    partitions: HashMap<(String, i32), Partition>,
    partition_counts: HashMap<String, i32>,
    /// Accounts and contacts, with their tenant and type: they are never removed, so other
    /// aggregates' commands can check them without a partition lock.
    records: RwLock<HashMap<Uuid, (String, &'static str)>>,
    /// What other aggregates' commands need to know of each opportunity, across partitions.
    opportunities: RwLock<HashMap<Uuid, OpportunityCard>>,
    /// Every delegation, by id, with its tenant: approvals consult them across partitions.
    delegations: RwLock<HashMap<Uuid, (String, Delegation)>>,
    /// Outcomes of commands by (tenant, command id), from the log and from this writer.
    outcomes: SyncMutex<HashMap<IdempotencyKey, Outcome>>,
    /// Serializes requests that carry the same Idempotency-Key.
    in_flight: SyncMutex<HashMap<IdempotencyKey, Arc<Mutex<()>>>>,
    /// Bumped whenever an append's fate becomes unknown; see `settle_uncertain`.
    uncertain_generation: AtomicU64,
    /// The last generation whose uncertain partitions were all read again.
    settled_generation: AtomicU64,
    settling: Mutex<()>,
}

fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id);
    config
}

impl Writer {
    /// Takes ownership of every partition of the event topics: a new epoch, a fence marker
    /// on each partition, then the partition read to its end. Serves only after that.
    pub async fn start(config: WriterConfig, pool: &sqlx::PgPool) -> Result<Writer, StartError> {
        let epoch: i64 = sqlx::query_scalar("SELECT nextval('writer_epochs')").fetch_one(pool).await?;
        let codec = EventCodec::with_token(&config.registry_url, config.registry_token.as_deref())?.with_keys(std::sync::Arc::new(PgKeyStore::new(pool.clone())));
        codec.register_all(&config.topics).await?;
        let producer: FutureProducer = client_config(&config.brokers, &config.writer_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", BROKER_TIMEOUT.as_millis().to_string())
            .create()
            .map_err(|e| StartError::Broker { brokers: config.brokers.clone(), detail: e.to_string() })?;
        let mut partitions = HashMap::new();
        let mut partition_counts = HashMap::new();
        for topic in config.topics.all() {
            let count = partition_count(&producer, topic, &config.brokers)?;
            partition_counts.insert(topic.to_string(), count);
            for p in 0..count {
                let partition = Partition { topic: topic.to_string(), partition: p, state: Mutex::default() };
                partitions.insert((topic.to_string(), p), partition);
            }
        }
        let writer = Writer {
            config,
            epoch,
            producer,
            codec,
            partitions,
            partition_counts,
            records: RwLock::default(),
            delegations: RwLock::default(),
            opportunities: RwLock::default(),
            outcomes: SyncMutex::default(),
            in_flight: SyncMutex::default(),
            uncertain_generation: AtomicU64::new(0),
            settled_generation: AtomicU64::new(0),
            settling: Mutex::new(()),
        };
        futures::future::try_join_all(writer.partitions.values().map(|p| writer.take_ownership_patiently(p))).await?;
        tracing::info!(epoch, partitions = writer.partitions.len(), "writer owns its partitions");
        Ok(writer)
    }

    pub fn code_version(&self) -> &str {
        &self.config.code_version
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// A broker that is slow to answer at start-up (it is busy, or just started) gets a few
    /// more chances before the writer gives up. A second fence marker of the same epoch is
    /// harmless: readers keep the highest.
    async fn take_ownership_patiently(&self, partition: &Partition) -> Result<(), CommandError> {
        const TRIES: u32 = 3;
        for attempt in 1.. {
            match self.take_ownership(partition).await {
                Err(CommandError::Unavailable(reason)) if attempt < TRIES => {
                    tracing::warn!(topic = %partition.topic, partition = partition.partition, attempt, %reason, "taking ownership failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                result => return result,
            }
        }
        unreachable!("the loop returns")
    }

    async fn take_ownership(&self, partition: &Partition) -> Result<(), CommandError> {
        let mut state = partition.state.lock().await;
        let marker = FenceMarker { writer_epoch: self.epoch, writer_id: self.config.writer_id.clone(), fenced_at: Utc::now() };
        let payload = self.codec.encode_fence(&partition.topic, &marker).await.map_err(codec_failure)?;
        let record = FutureRecord::<(), _>::to(&partition.topic).partition(partition.partition).payload(&payload);
        self.producer.send(record, BROKER_TIMEOUT).await.map_err(|(e, _)| unavailable(e))?;
        self.catch_up(partition, &mut state).await
    }

    /// Reads the partition from `next_offset` to its current end, folding every record.
    async fn catch_up(&self, partition: &Partition, state: &mut PartitionState) -> Result<(), CommandError> {
        // A client of its own, made now: after an outage, a fresh connection answers at once.
        let consumer: StreamConsumer = client_config(&self.config.brokers, &self.config.writer_id)
            .set("group.id", format!("tidemark-writer-{}", self.config.writer_id))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(unavailable)?;
        let (_, high) = consumer.fetch_watermarks(&partition.topic, partition.partition, BROKER_TIMEOUT).map_err(unavailable)?;
        if state.next_offset < high {
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&partition.topic, partition.partition, Offset::Offset(state.next_offset))
                .map_err(unavailable)?;
            consumer.assign(&assignment).map_err(unavailable)?;
            while state.next_offset < high {
                let message = tokio::time::timeout(BROKER_TIMEOUT, consumer.recv())
                    .await
                    .map_err(|_| unavailable("timed out reading the partition"))?
                    .map_err(unavailable)?;
                let decoded = self.codec.decode(message.payload()).await;
                if let Err(e) = &decoded {
                    if e.is_retryable() {
                        return Err(unavailable(e));
                    }
                }
                let at = (partition.topic.as_str(), partition.partition, message.offset());
                self.fold_record(state, at, message.key(), decoded);
                state.next_offset = message.offset() + 1;
            }
        }
        state.uncertain = false;
        Ok(())
    }

    /// Applies the shared fold rule to one record read from the log.
    fn fold_record(
        &self,
        state: &mut PartitionState,
        (topic, partition, offset): (&str, i32, i64),
        key: Option<&[u8]>,
        decoded: Result<Decoded, tidemark_schemas::codec::CodecError>,
    ) {
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
                    state.unreadable.insert(id, reason);
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
                state.unreadable.insert(env.aggregate_id, reason);
                return;
            }
        }
        let kind = match &record.event {
            DomainEvent::Account(_) => Some(tidemark_events::account::AGGREGATE_TYPE),
            DomainEvent::Contact(_) => Some(tidemark_events::contact::AGGREGATE_TYPE),
            _ => None,
        };
        if let Some(kind) = kind {
            self.records.write().expect("not poisoned").insert(env.aggregate_id, (env.tenant_id.clone(), kind));
        }
        let previous = state.streams.remove(&env.aggregate_id).map(|s| s.state);
        let evolved = tidemark_events::evolve(previous, &record.event);
        if let Aggregate::Opportunity(o) = &evolved {
            let card = OpportunityCard {
                tenant_id: env.tenant_id.clone(),
                owner_id: o.owner_id.clone(),
                team_id: o.team_id.clone(),
                shared_with: o.shared_with.iter().cloned().collect(),
                closed: o.stage.is_closed(),
            };
            self.opportunities.write().expect("not poisoned").insert(env.aggregate_id, card);
        }
        if let Aggregate::Delegation(d) = &evolved {
            // Approvals on any partition consult delegations: keep them where all can look.
            self.delegations.write().expect("not poisoned").insert(env.aggregate_id, (env.tenant_id.clone(), d.clone()));
        }
        state.streams.insert(
            env.aggregate_id,
            Stream { tenant_id: env.tenant_id.clone(), version: env.aggregate_version, state: evolved },
        );
        self.remember_outcome(env, position);
    }

    fn remember_outcome(&self, env: &Envelope, position: AppendedEvent) {
        if Utc::now() - env.recorded_at > IDEMPOTENCY_WINDOW {
            return;
        }
        let mut outcomes = self.outcomes.lock().expect("not poisoned");
        let outcome = outcomes.entry((env.tenant_id.clone(), env.command_id.clone())).or_insert_with(|| Outcome {
            created: env.aggregate_version == 1,
            aggregate_id: env.aggregate_id,
            version: env.aggregate_version,
            events: Vec::new(),
            replayed: false,
            fingerprint: None,
        });
        outcome.version = outcome.version.max(env.aggregate_version);
        outcome.events.push(position);
    }

    /// The current state of one aggregate of the tenant, as this writer holds it.
    pub async fn state_of(&self, aggregate_type: &str, tenant_id: &str, id: Uuid) -> Option<Aggregate> {
        let state = self.partition_of(aggregate_type, id).state.lock().await;
        state.streams.get(&id).filter(|s| s.tenant_id == tenant_id).map(|s| s.state.clone())
    }

    /// Every aggregate of a type this writer holds, with its tenant and id.
    pub async fn all_of(&self, aggregate_type: &str) -> Vec<(String, Uuid, Aggregate)> {
        let topic = self.config.topics.for_aggregate(aggregate_type).unwrap_or_default();
        let mut found = Vec::new();
        for partition in self.partitions.values().filter(|p| p.topic == topic) {
            let state = partition.state.lock().await;
            found.extend(state.streams.iter().map(|(id, s)| (s.tenant_id.clone(), *id, s.state.clone())));
        }
        found
    }

    /// Every lead this writer holds, with its tenant and id: the lead router works from these.
    pub async fn leads(&self) -> Vec<(String, Uuid, Lead)> {
        let all = self.all_of(tidemark_events::lead::AGGREGATE_TYPE).await;
        all.into_iter()
            .filter_map(|(tenant, id, state)| match state {
                Aggregate::Lead(lead) => Some((tenant, id, lead)),
                _ => None,
            })
            .collect()
    }

    /// The approval authority delegated to `user` for `day`, by whom, in the tenant.
    pub fn delegated_to(&self, tenant_id: &str, user: &str, day: NaiveDate) -> Vec<Delegated> {
        let delegations = self.delegations.read().expect("not poisoned");
        let mut found: Vec<Delegated> = delegations
            .values()
            .filter(|(tenant, d)| tenant == tenant_id && d.delegate == user && d.active_on(day))
            .map(|(_, d)| d.authority())
            .collect();
        // The same answer whatever the map's order, so decisions are reproducible.
        found.sort_by(|a, b| a.delegator.cmp(&b.delegator));
        found
    }

    /// The opportunity's owner, team, readers and whether it is closed, in the tenant.
    pub fn opportunity_card(&self, tenant_id: &str, id: Uuid) -> Option<OpportunityCard> {
        self.opportunities.read().expect("not poisoned").get(&id).filter(|c| c.tenant_id == tenant_id).cloned()
    }

    /// Whether the account (or contact: `aggregate_type`) exists in the tenant.
    pub fn exists(&self, tenant_id: &str, aggregate_type: &str, id: Uuid) -> bool {
        self.records.read().expect("not poisoned").get(&id).is_some_and(|(t, kind)| t == tenant_id && *kind == aggregate_type)
    }

    /// Runs one command: decide against the current state, append, wait for the broker.
    pub async fn execute(
        &self,
        request: CommandRequest,
        decide: impl FnOnce(Option<&Aggregate>) -> Result<Vec<DomainEvent>, CommandError>,
    ) -> Result<Outcome, CommandError> {
        let meta = &request.meta;
        let key = (meta.tenant_id.clone(), meta.command_id.clone());
        let _same_key = if request.idempotent { Some(self.lock_key(&key).await) } else { None };
        self.settle_uncertain().await?;
        if request.idempotent {
            if let Some(first) = self.outcomes.lock().expect("not poisoned").get(&key) {
                if first.fingerprint.is_some_and(|f| f != request.fingerprint) {
                    return Err(CommandError::IdempotencyKeyReused);
                }
                return Ok(Outcome { replayed: true, ..first.clone() });
            }
        }

        let id = request.aggregate_id;
        let partition = self.partition_of(request.aggregate_type, id);
        let mut state = partition.state.lock().await;
        if state.uncertain {
            self.catch_up(partition, &mut state).await?;
        }
        if let Some(reason) = state.unreadable.get(&id) {
            return Err(CommandError::Unreadable { id, reason: reason.clone() });
        }
        // Another tenant's aggregate does not exist for this one.
        let stream = state.streams.get(&id).filter(|s| s.tenant_id == meta.tenant_id);
        let current = stream.map_or(0, |s| s.version);
        if let Some(expected) = request.expected_version {
            if expected != current {
                return Err(CommandError::VersionConflict { expected, current });
            }
        }
        let events = decide(stream.map(|s| &s.state))?;

        let mut positions = Vec::with_capacity(events.len());
        let recorded_at = Utc::now();
        for (i, event) in events.into_iter().enumerate() {
            let at = StreamPosition {
                aggregate_type: request.aggregate_type,
                aggregate_id: id,
                version: current + 1 + i as i64,
                writer_epoch: self.epoch,
            };
            let record = EventRecord { envelope: Envelope::new(meta, at, event.event_type(), recorded_at), event };
            let position = match self.append(partition, &record).await {
                Ok(position) => position,
                Err(e) => {
                    // The append may still land; read the partition again before deciding more.
                    state.uncertain = true;
                    self.uncertain_generation.fetch_add(1, Ordering::SeqCst);
                    return Err(e);
                }
            };
            state.next_offset = position.offset + 1;
            self.fold_event(&mut state, record, position.clone());
            positions.push(position);
        }
        let mut outcomes = self.outcomes.lock().expect("not poisoned");
        let outcome = outcomes.get_mut(&key).expect("the fold remembered the outcome");
        outcome.fingerprint = Some(request.fingerprint);
        Ok(outcome.clone())
    }

    async fn append(&self, partition: &Partition, record: &EventRecord) -> Result<AppendedEvent, CommandError> {
        let payload = self.codec.encode_event(&partition.topic, record).await.map_err(codec_failure)?;
        let key = record.envelope.aggregate_id.to_string();
        let message = FutureRecord::to(&partition.topic).partition(partition.partition).key(&key).payload(&payload);
        // librdkafka may hold an in-flight request past message.timeout.ms; the client's wait
        // is bounded here. If this bound fires, the append's fate is unknown: the caller
        // marks the partition uncertain and re-reads it before deciding anything else.
        let delivery = tokio::time::timeout(BROKER_TIMEOUT, self.producer.send(message, BROKER_TIMEOUT))
            .await
            .map_err(|_| unavailable("the broker did not acknowledge the append in time"))?
            .map_err(|(e, _)| unavailable(e))?;
        Ok(AppendedEvent {
            event_type: record.envelope.event_type.clone(),
            topic: partition.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
        })
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
        for partition in self.partitions.values() {
            let mut state = partition.state.lock().await;
            if state.uncertain {
                self.catch_up(partition, &mut state).await?;
            }
        }
        Ok(())
    }

    async fn lock_key(&self, key: &IdempotencyKey) -> tokio::sync::OwnedMutexGuard<()> {
        let slot = {
            let mut in_flight = self.in_flight.lock().expect("not poisoned");
            in_flight.retain(|_, slot| Arc::strong_count(slot) > 1);
            in_flight.entry(key.clone()).or_default().clone()
        };
        slot.lock_owned().await
    }

    fn partition_of(&self, aggregate_type: &str, id: Uuid) -> &Partition {
        let topic = self.config.topics.for_aggregate(aggregate_type).expect("a known aggregate type");
        let count = self.partition_counts[topic];
        let p = partition_for(id.to_string().as_bytes(), count);
        &self.partitions[&(topic.to_string(), p)]
    }

    /// Whether the broker answers a metadata request.
    pub fn broker_answers(&self) -> Result<(), String> {
        self.producer.client().fetch_metadata(None, Duration::from_secs(2)).map(|_| ()).map_err(|e| e.to_string())
    }
}

fn unavailable(e: impl std::fmt::Display) -> CommandError {
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

fn partition_count(producer: &FutureProducer, topic: &str, brokers: &str) -> Result<i32, StartError> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| StartError::Broker { brokers: brokers.to_string(), detail: e.to_string() })?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
        _ => Err(StartError::MissingTopic(topic.to_string())),
    }
}
