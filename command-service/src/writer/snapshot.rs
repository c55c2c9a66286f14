//! Writer snapshots: what the writer holds of each partition, saved now and then, so that a
//! starting writer reads the log only after the snapshot instead of from its start.
//!
//! A snapshot is a shortcut, never a source of truth. A starting writer uses one only when
//! this very build took it (the fold may differ between versions), its checksum holds (a
//! row damaged at rest), and the log still holds, at the snapshot's anchor, the record the
//! snapshot was taken after (a log recreated since). Any other snapshot is ignored, with the
//! reason in the start report, and its partition is read from the start; the next snapshot
//! replaces it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};
use tidemark_events::account::Account;
use tidemark_events::activity::Activity;
use tidemark_events::contact::Contact;
use tidemark_events::delegation::Delegation;
use tidemark_events::engagement::Engagement;
use tidemark_events::lead::Lead;
use tidemark_events::opportunity::Opportunity;
use tidemark_events::AnyAggregate;
use tidemark_schemas::Decoded;
use tokio::sync::MutexGuard;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::idempotency::Remembered;
use super::lookups::Lookups;
use super::{unavailable, ById, CommandError, Partition, PartitionState, Stream, Unreadable, Writer, BROKER_TIMEOUT};

/// How often the writer looks for partitions that have grown enough to be saved again.
const SNAPSHOT_TICK: Duration = Duration::from_millis(500);
/// The longest a snapshot holds a partition, waiting for its appends in flight to settle
/// (no new one starts meanwhile): about one transaction.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// The last record a partition's state has folded. A snapshot is valid for a log that holds
/// this record at this offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Anchor {
    pub offset: i64,
    pub record: RecordId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RecordId {
    Event(Uuid),
    /// A fence marker, by its writer epoch (one writer's markers are alike).
    Fence(i64),
}

impl RecordId {
    pub(super) fn of(decoded: &Decoded) -> RecordId {
        match decoded {
            Decoded::Fence(marker) => RecordId::Fence(marker.writer_epoch),
            Decoded::Event(record) => RecordId::Event(record.envelope.event_id),
        }
    }
}

/// How many streams a chunk holds: rows of about a megabyte, which PostgreSQL sends and the
/// start decodes without growing any buffer far.
const STREAMS_PER_CHUNK: usize = 4096;

/// What a snapshot keeps of a partition's state besides its streams. The streams follow in
/// chunks: each chunk is the anchor and then its streams one after another, decoded one at a
/// time into a map made big enough once (no vector of them all, which would grow by copying).
#[derive(Serialize, Deserialize)]
struct Head {
    anchor: Anchor,
    fence_epoch: i64,
    streams: u64,
    unreadable: Vec<(Uuid, i64, String)>,
    outcomes: Vec<Remembered>,
}

#[derive(Serialize, Deserialize)]
struct SavedStream {
    id: Uuid,
    tenant_id: String,
    version: i64,
    /// A `SavedState`, kept as it is until the stream is first needed (see `Held`).
    state: Vec<u8>,
}

/// A stream's state as the writer holds it: as folded, or as a snapshot saved it. A restored
/// stream stays in its saved form (a tenth of the memory) until a command or a read needs
/// it: most streams of a large log are never touched again, and a start that allocated every
/// state spent its time on the memory, not on decoding.
#[derive(Debug, Clone)]
pub(super) enum Held {
    Live(Box<AnyAggregate>),
    /// Decoded once at restore (so it is known to decode) and dropped again.
    Saved(Box<[u8]>),
}

impl Held {
    pub(super) fn live(state: AnyAggregate) -> Held {
        Held::Live(Box::new(state))
    }

    pub(super) fn get(&self) -> std::borrow::Cow<'_, AnyAggregate> {
        match self {
            Held::Live(state) => std::borrow::Cow::Borrowed(state),
            Held::Saved(bytes) => std::borrow::Cow::Owned(decode_state(bytes).expect("a restored state decoded at restore")),
        }
    }

    pub(super) fn into_state(self) -> AnyAggregate {
        match self {
            Held::Live(state) => *state,
            Held::Saved(bytes) => decode_state(&bytes).expect("a restored state decoded at restore"),
        }
    }

    fn saved(&self) -> Vec<u8> {
        match self {
            Held::Live(state) => postcard::to_stdvec(&SavedState::from((**state).clone())).expect("a state serializes"),
            Held::Saved(bytes) => bytes.to_vec(),
        }
    }
}

fn decode_state(bytes: &[u8]) -> Result<AnyAggregate, postcard::Error> {
    postcard::from_bytes::<SavedState>(bytes).map(AnyAggregate::from)
}

/// `AnyAggregate` with its kind named (the API's serialization of it is untagged).
#[derive(Serialize, Deserialize)]
enum SavedState {
    Account(Account),
    Opportunity(Opportunity),
    Delegation(Delegation),
    Activity(Activity),
    Contact(Contact),
    Lead(Lead),
    Engagement(Engagement),
}

impl From<AnyAggregate> for SavedState {
    fn from(state: AnyAggregate) -> SavedState {
        match state {
            AnyAggregate::Account(a) => SavedState::Account(a),
            AnyAggregate::Opportunity(o) => SavedState::Opportunity(o),
            AnyAggregate::Delegation(d) => SavedState::Delegation(d),
            AnyAggregate::Activity(a) => SavedState::Activity(a),
            AnyAggregate::Contact(c) => SavedState::Contact(c),
            AnyAggregate::Lead(l) => SavedState::Lead(l),
            AnyAggregate::Engagement(e) => SavedState::Engagement(e),
        }
    }
}

impl From<SavedState> for AnyAggregate {
    fn from(state: SavedState) -> AnyAggregate {
        match state {
            SavedState::Account(a) => AnyAggregate::Account(a),
            SavedState::Opportunity(o) => AnyAggregate::Opportunity(o),
            SavedState::Delegation(d) => AnyAggregate::Delegation(d),
            SavedState::Activity(a) => AnyAggregate::Activity(a),
            SavedState::Contact(c) => AnyAggregate::Contact(c),
            SavedState::Lead(l) => AnyAggregate::Lead(l),
            SavedState::Engagement(e) => AnyAggregate::Engagement(e),
        }
    }
}

/// How a writer started: the operators' view of what its snapshots saved it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartReport {
    pub partitions: usize,
    /// Partitions restored from a snapshot, then read from its anchor on.
    pub from_snapshots: usize,
    /// Snapshots found and not used, each with why.
    pub snapshots_ignored: Vec<String>,
    /// Records read from the log to catch up.
    pub records_read: u64,
    /// Of `seconds`, those spent reading, checking and restoring snapshots.
    pub snapshot_seconds: f64,
    /// Until the writer served: reading the log, then taking its first shards.
    pub seconds: f64,
    /// The shards the group gave it first.
    pub shards: Vec<i32>,
}

/// A partition's state as a trusted snapshot restores it, built off the async threads.
struct Restored {
    partition: tidemark_log::Partition,
    anchor: Anchor,
    fence_epoch: i64,
    streams: ById<Stream>,
    unreadable: HashMap<Uuid, Unreadable>,
    outcomes: Vec<Remembered>,
}

fn checksum(body: &[u8]) -> i64 {
    twox_hash::XxHash3_64::oneshot(body) as i64
}

/// A snapshot's rows as a start fetches them.
struct Fetched {
    head: Vec<u8>,
    checksum: i64,
    /// Each chunk's body and checksum, in order.
    chunks: Vec<(Vec<u8>, i64)>,
}

/// Checks and decodes one snapshot, and feeds the lookups its streams.
fn restore(name: String, partition: tidemark_log::Partition, anchor: Anchor, fetched: Fetched, lookups: &Lookups) -> Result<Restored, String> {
    let cannot_read = |e: postcard::Error| format!("{name}: cannot be read ({e})");
    if checksum(&fetched.head) != fetched.checksum || fetched.chunks.iter().any(|(body, sum)| checksum(body) != *sum) {
        return Err(format!("{name}: its checksum does not match its content"));
    }
    let head: Head = postcard::from_bytes(&fetched.head).map_err(cannot_read)?;
    let elsewhere = || format!("{name}: its content is anchored elsewhere than its row says");
    // Every part checked before the lookups are fed any of it.
    for (body, _) in &fetched.chunks {
        if postcard::take_from_bytes::<Anchor>(body).map_err(cannot_read)?.0 != anchor {
            return Err(elsewhere());
        }
    }
    if head.anchor != anchor {
        return Err(elsewhere());
    }
    let mut streams = ById::with_capacity_and_hasher(head.streams as usize, Default::default());
    for (body, _) in &fetched.chunks {
        let (_, mut rest) = postcard::take_from_bytes::<Anchor>(body).map_err(cannot_read)?;
        // Each chunk's states are decoded to feed the lookups and dropped: the next chunk's
        // reuse their memory.
        let mut decoded = Vec::with_capacity(STREAMS_PER_CHUNK);
        while !rest.is_empty() {
            let (s, after) = postcard::take_from_bytes::<SavedStream>(rest).map_err(cannot_read)?;
            decoded.push((s.id, decode_state(&s.state).map_err(cannot_read)?));
            streams.insert(s.id, Stream { tenant_id: s.tenant_id, version: s.version, state: Held::Saved(s.state.into_boxed_slice()) });
            rest = after;
        }
        lookups.fed_all(decoded.iter().map(|(id, state)| (streams[id].tenant_id.as_str(), *id, state)));
    }
    if streams.len() as u64 != head.streams {
        return Err(format!("{name}: holds {} streams where its head says {}", streams.len(), head.streams));
    }
    let unreadable = head.unreadable.into_iter().map(|(id, offset, reason)| (id, Unreadable { offset, reason })).collect();
    Ok(Restored { partition, anchor, fence_epoch: head.fence_epoch, streams, unreadable, outcomes: head.outcomes })
}

/// Reads one snapshot's head and chunks.
async fn fetch(pool: &sqlx::PgPool, (topic, partition): &tidemark_log::Partition) -> Result<Option<Fetched>, sqlx::Error> {
    let Some(row) = sqlx::query!("SELECT head, checksum, chunks FROM writer_snapshots WHERE topic = $1 AND partition = $2", topic, partition).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let chunks = sqlx::query!("SELECT body, checksum FROM writer_snapshot_chunks WHERE topic = $1 AND partition = $2 ORDER BY chunk", topic, partition)
        .fetch_all(pool)
        .await?;
    // A snapshot replaced between the two reads shows as chunks anchored elsewhere.
    let chunks: Vec<(Vec<u8>, i64)> = chunks.into_iter().map(|c| (c.body, c.checksum)).collect();
    if chunks.len() != row.chunks as usize {
        return Ok(None);
    }
    Ok(Some(Fetched { head: row.head, checksum: row.checksum, chunks }))
}

impl Writer {
    /// Restores each partition that is still empty from its snapshot, where the snapshot
    /// can be trusted; says which snapshots it ignored and why.
    pub(super) async fn restore_snapshots(&self, parts: &mut [(&Partition, MutexGuard<'_, PartitionState>)], report: &mut StartReport) -> Result<(), CommandError> {
        let topics: Vec<String> = self.config.topics.all().iter().map(|t| t.to_string()).collect();
        let rows = sqlx::query!(
            "SELECT topic, partition, code_version, anchor_offset, anchor_record, streams FROM writer_snapshots WHERE topic = ANY($1)",
            &topics
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let empty: Vec<tidemark_log::Partition> = parts.iter().filter(|(_, s)| s.next_offset == 0).map(|(p, _)| (p.topic.clone(), p.partition)).collect();
        // Checked against the log before anything is decoded: the anchor is in the row too.
        let mut candidates = Vec::new();
        for row in rows.into_iter().filter(|r| empty.contains(&(r.topic.clone(), r.partition))) {
            let name = format!("{}/{}", row.topic, row.partition);
            let anchor = serde_json::from_str(&row.anchor_record).map(|record| Anchor { offset: row.anchor_offset, record });
            match anchor {
                _ if row.code_version != self.config.code_version => {
                    report.snapshots_ignored.push(format!("{name}: taken by version {}, this is {}", row.code_version, self.config.code_version))
                }
                Err(e) => report.snapshots_ignored.push(format!("{name}: its anchor cannot be read ({e})")),
                Ok(anchor) => candidates.push(((row.topic, row.partition), anchor, row.streams)),
            }
        }
        let anchors: BTreeMap<tidemark_log::Partition, Anchor> = candidates.iter().map(|(p, a, _)| (p.clone(), *a)).collect();
        self.lookups.reserve(candidates.iter().map(|(_, _, streams)| *streams as usize).sum());
        let refused = self.anchors_in_log(&anchors).await?;
        // Each snapshot is fetched on a connection of its own and decoded as soon as it arrives:
        // PostgreSQL reads one while another is decoded.
        let mut restoring = tokio::task::JoinSet::new();
        for (partition, anchor, _) in candidates {
            let name = format!("{}/{}", partition.0, partition.1);
            if let Some(reason) = refused.get(&partition) {
                report.snapshots_ignored.push(format!("{name}: {reason}"));
                continue;
            }
            let (lookups, pool) = (self.lookups.clone(), self.pool.clone());
            restoring.spawn(async move {
                let fetched = fetch(&pool, &partition)
                    .await
                    .map_err(|e| format!("{name}: cannot be fetched ({e})"))?
                    .ok_or_else(|| format!("{name}: was replaced or removed meanwhile"))?;
                let decoded = tokio::task::spawn_blocking(move || restore(name, partition, anchor, fetched, &lookups)).await;
                decoded.map_err(|e| e.to_string())?
            });
        }
        while let Some(restored) = restoring.join_next().await {
            match restored.map_err(unavailable)? {
                Ok(restored) => {
                    let (topic, partition) = &restored.partition;
                    let Some((_, state)) = parts.iter_mut().find(|(p, _)| &p.topic == topic && p.partition == *partition) else { continue };
                    self.outcomes.restore(topic, *partition, restored.outcomes);
                    // The partition is read from the anchor on (folding its record again changes nothing).
                    state.fold.fence_epoch = restored.fence_epoch;
                    state.next_offset = restored.anchor.offset;
                    state.snapshot_at = restored.anchor.offset;
                    state.anchor = Some(restored.anchor);
                    state.streams = restored.streams;
                    state.unreadable = restored.unreadable;
                    report.from_snapshots += 1;
                }
                Err(reason) => report.snapshots_ignored.push(reason),
            }
        }
        report.snapshots_ignored.sort();
        for reason in &report.snapshots_ignored {
            tracing::warn!(%reason, "a writer snapshot was ignored; its partition is read from the start");
        }
        Ok(())
    }

    /// For each anchor, why the log does not hold its record, if it does not.
    async fn anchors_in_log(&self, anchors: &BTreeMap<tidemark_log::Partition, Anchor>) -> Result<HashMap<tidemark_log::Partition, String>, CommandError> {
        let mut refused = HashMap::new();
        if anchors.is_empty() {
            return Ok(refused);
        }
        let asked: Vec<tidemark_log::Partition> = anchors.keys().cloned().collect();
        let client = self.client.clone();
        let ends = tokio::task::spawn_blocking(move || tidemark_log::log_ends(&client, &asked, BROKER_TIMEOUT)).await.map_err(unavailable)?.map_err(unavailable)?;
        let mut from = BTreeMap::new();
        let mut until = BTreeMap::new();
        for (partition, anchor) in anchors {
            if ends[partition] <= anchor.offset {
                refused.insert(partition.clone(), format!("the log ends at {}, before the snapshot's anchor at {}", ends[partition], anchor.offset));
            } else {
                from.insert(partition.clone(), anchor.offset);
                until.insert(partition.clone(), anchor.offset + 1);
            }
        }
        let mut unseen: HashMap<tidemark_log::Partition, Anchor> = from.keys().map(|p| (p.clone(), anchors[p])).collect();
        let config = tidemark_log::reader(&self.config.brokers, &self.config.client_id());
        let mut log = tidemark_log::ToEnd::new(config, &from, until, BROKER_TIMEOUT).map_err(unavailable)?;
        while let Some(message) = log.next().await.map_err(unavailable)? {
            let key = (message.topic().to_string(), message.partition());
            let Some(anchor) = unseen.remove(&key) else { continue };
            match self.codec.decode(message.payload()).await {
                Ok(decoded) if message.offset() == anchor.offset && RecordId::of(&decoded) == anchor.record => {}
                Ok(_) => drop(refused.insert(key, format!("the log holds another record at the snapshot's anchor {}", anchor.offset))),
                Err(e) if e.is_retryable() => return Err(unavailable(e)),
                Err(e) => drop(refused.insert(key, format!("the record at the snapshot's anchor cannot be read: {e}"))),
            }
        }
        // A marker where the anchor's record should be: the read ends without a record.
        for (key, anchor) in unseen {
            refused.insert(key, format!("the log holds no record at the snapshot's anchor {}", anchor.offset));
        }
        Ok(refused)
    }

    /// Saves a snapshot of each partition that has grown by `snapshot_every` records since
    /// its last one, every few seconds, until `shutdown` (a service task: it never ends
    /// before).
    pub async fn keep_snapshots(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SNAPSHOT_TICK) => {}
            }
            // A writer that a newer one fenced holds an old state. (It keeps running: its
            // health check tells operators it is fenced.)
            if self.fenced().is_some() {
                continue;
            }
            self.outcomes.forget_expired();
            // The owner saves its partitions; the writers that follow them need not.
            for partition in self.partitions.values().filter(|p| p.role() == super::Role::Owned) {
                if let Err(e) = self.snapshot(partition).await {
                    tracing::warn!(topic = %partition.topic, partition = partition.partition, error = %e, "saving a writer snapshot failed; trying again later");
                }
            }
        }
    }

    async fn snapshot(&self, partition: &Partition) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let ((head, saved), next_offset) = {
            let mut state = partition.lock().await;
            if state.next_offset - state.snapshot_at < self.config.snapshot_every as i64 {
                return Ok(());
            }
            // Holding the lock, no append starts: the ones in flight settle in about one
            // transaction, and the state is then exactly the fold of the log to its anchor.
            let deadline = Instant::now() + SETTLE_WAIT;
            while !state.in_flight.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                partition.take_fates(&mut state);
            }
            let Some(anchor) = state.anchor else { return Ok(()) };
            if !state.in_flight.is_empty() || state.uncertain {
                return Ok(());
            }
            // Cloned under the lock, serialized after it.
            let head = Head {
                anchor,
                fence_epoch: state.fold.fence_epoch,
                streams: state.streams.len() as u64,
                unreadable: state.unreadable.iter().map(|(id, u)| (*id, u.offset, u.reason.clone())).collect(),
                outcomes: self.outcomes.of_partition(&partition.topic, partition.partition),
            };
            let streams: Vec<(Uuid, Stream)> = state.streams.iter().map(|(id, s)| (*id, s.clone())).collect();
            ((head, streams), state.next_offset)
        };
        let held = started.elapsed();
        let anchor = head.anchor;
        let anchor_record = serde_json::to_string(&anchor.record).expect("an anchor serializes");
        let streams = saved.len() as i32;
        let (head, chunks) = tokio::task::spawn_blocking(move || {
            let chunks: Vec<Vec<u8>> = saved
                .chunks(STREAMS_PER_CHUNK)
                .map(|chunk| {
                    let bytes = postcard::to_extend(&anchor, Vec::new()).expect("a snapshot serializes");
                    chunk.iter().fold(bytes, |bytes, (id, s)| {
                        let saved = SavedStream { id: *id, tenant_id: s.tenant_id.clone(), version: s.version, state: s.state.saved() };
                        postcard::to_extend(&saved, bytes).expect("a snapshot serializes")
                    })
                })
                .collect();
            (postcard::to_stdvec(&head).expect("a snapshot serializes"), chunks)
        })
        .await
        .expect("serializing a snapshot does not panic");
        let bytes: usize = head.len() + chunks.iter().map(Vec::len).sum::<usize>();
        let numbers: Vec<i32> = (0..chunks.len() as i32).collect();
        let sums: Vec<i64> = chunks.iter().map(|c| checksum(c)).collect();
        let mut tx = self.pool.begin().await?;
        // A slower writer's older snapshot never replaces a newer one.
        let replaced = sqlx::query!(
            "INSERT INTO writer_snapshots (topic, partition, code_version, anchor_offset, anchor_record, streams, chunks, taken_at, head, checksum)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (topic, partition) DO UPDATE
             SET code_version = EXCLUDED.code_version, anchor_offset = EXCLUDED.anchor_offset, anchor_record = EXCLUDED.anchor_record,
                 streams = EXCLUDED.streams, chunks = EXCLUDED.chunks, taken_at = EXCLUDED.taken_at, head = EXCLUDED.head, checksum = EXCLUDED.checksum
             WHERE writer_snapshots.anchor_offset <= EXCLUDED.anchor_offset OR writer_snapshots.code_version <> EXCLUDED.code_version",
            partition.topic,
            partition.partition,
            self.config.code_version,
            anchor.offset,
            anchor_record,
            streams,
            chunks.len() as i32,
            Utc::now(),
            &head,
            checksum(&head),
        )
        .execute(&mut *tx)
        .await?;
        if replaced.rows_affected() == 1 {
            sqlx::query!("DELETE FROM writer_snapshot_chunks WHERE topic = $1 AND partition = $2", partition.topic, partition.partition).execute(&mut *tx).await?;
            sqlx::query!(
                "INSERT INTO writer_snapshot_chunks (topic, partition, chunk, body, checksum)
                 SELECT $1, $2, chunk, body, checksum FROM UNNEST($3::int[], $4::bytea[], $5::bigint[]) AS c (chunk, body, checksum)",
                partition.topic,
                partition.partition,
                &numbers,
                &chunks,
                &sums,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut state = partition.lock().await;
        state.snapshot_at = state.snapshot_at.max(next_offset);
        tracing::info!(
            topic = %partition.topic,
            partition = partition.partition,
            anchor_offset = anchor.offset,
            streams,
            bytes,
            held_ms = held.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "saved a writer snapshot"
        );
        Ok(())
    }
}
