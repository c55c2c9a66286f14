//! Where the log ends, where a projection stands, and how old the records it has not
//! applied are: everything a staleness note and a bound need, gathered per request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot, watch};
use tidemark_http::{ConsistencyToken, Problem};
use utoipa::ToSchema;

use crate::bound::{self, Bound, BoundView, Observation, PartitionView};

const POLL: Duration = Duration::from_millis(20);
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, ToSchema)]
/// How stale an answer may be. It speaks of lag and age, never of offsets: the topics are
/// shared by every tenant, and their offsets would tell one tenant how much the others
/// write (operators see them in `/metrics`).
pub struct Staleness {
    pub projection: String,
    /// Offsets in the log at arrival that the answer does not reflect: the events, and the
    /// commit marker of each transaction among them (so at most this many events).
    pub lag_events: i64,
    /// Age of the oldest record in the log at arrival that the answer does not reflect;
    /// 0 when it reflects them all; null when that age cannot be known.
    pub lag_ms: Option<i64>,
    pub bound: BoundView,
    /// Whether the answer meets the bound asked for.
    pub fresh: bool,
    /// When `fresh` is false, what is missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<String>,
    pub read_at: DateTime<Utc>,
}

/// A projection's stored position in one partition.
#[derive(Debug, Clone)]
pub struct Standing {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// Whatever is not applied in this partition was appended after this moment.
    pub caught_up_at: Option<DateTime<Utc>>,
    /// The last time the projection applied a batch or found itself caught up here.
    pub last_progress: DateTime<Utc>,
    /// How many times a rebuild replaced the projection's tables.
    pub generation: i64,
    /// The trace context of the batch that last moved it, when traces are recorded.
    pub traceparent: Option<String>,
}

pub async fn standings(db: &mut PgConnection, projection: &str) -> sqlx::Result<Vec<Standing>> {
    // GREATEST ignores a null caught_up_at; updated_at is never null.
    sqlx::query_as!(
        Standing,
        r#"SELECT topic, partition, next_offset, caught_up_at, GREATEST(updated_at, caught_up_at) AS "last_progress!", generation, traceparent
           FROM projection_offsets WHERE projection = $1"#,
        projection,
    )
    .fetch_all(db)
    .await
}

#[derive(Clone)]
pub struct Freshness {
    /// Used for liveness checks; the log-end lookups own a client of their own.
    watermarks: Arc<BaseConsumer>,
    log_end_lookups: mpsc::UnboundedSender<LogEndsAsked>,
    /// Reads single records to learn when they were appended; one assignment at a time.
    peek: Arc<Mutex<BaseConsumer>>,
    /// When the record at (topic, partition, offset) was appended: a fact, cached for good.
    append_times: moka::sync::Cache<(String, i32, i64), DateTime<Utc>>,
    /// By projection: its standing, read every `POLL` while some read waits for a bound.
    standing_watches: Arc<Mutex<HashMap<String, watch::Sender<Arc<Vec<Standing>>>>>>,
}

/// One read's request for log ends, answered by the lookup loop.
struct LogEndsAsked {
    topics: Vec<String>,
    reply: oneshot::Sender<Result<BTreeMap<(String, i32), i64>, String>>,
}

fn consumer(brokers: &str, purpose: &str) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    tidemark_log::reader(brokers, &format!("tidemark-query-service-{purpose}"))
        // A peek wants one record that exists: no reason to wait for more, or to fetch much.
        .set("fetch.wait.max.ms", "1")
        .set("max.partition.fetch.bytes", "65536")
        .set("queued.max.messages.kbytes", "1024")
        .create()
}

impl Freshness {
    pub fn new(brokers: &str) -> Result<Freshness, rdkafka::error::KafkaError> {
        let (log_end_lookups, asked) = mpsc::unbounded_channel();
        tokio::spawn(look_up_log_ends(asked, consumer(brokers, "log-ends")?));
        Ok(Freshness {
            watermarks: Arc::new(consumer(brokers, "watermarks")?),
            log_end_lookups,
            peek: Arc::new(Mutex::new(consumer(brokers, "peek")?)),
            append_times: moka::sync::Cache::new(100_000),
            standing_watches: Arc::default(),
        })
    }

    /// The end offset of every partition of `topics`, asked of the broker after this call
    /// began: the log end at arrival or later, as a strong read needs.
    pub async fn log_end_offsets(&self, topics: &[String]) -> Result<BTreeMap<(String, i32), i64>, Problem> {
        let (reply, answer) = oneshot::channel();
        let asked = LogEndsAsked { topics: topics.to_vec(), reply };
        self.log_end_lookups.send(asked).map_err(|_| Problem::unavailable("the log-end lookups stopped"))?;
        answer
            .await
            .map_err(|_| Problem::unavailable("the log-end lookups stopped"))?
            .map_err(|e| Problem::unavailable(format!("the broker does not answer: {e}")))
    }

    pub fn broker_answers(&self) -> Result<(), String> {
        self.watermarks.fetch_metadata(None, BROKER_TIMEOUT).map(|_| ()).map_err(|e| e.to_string())
    }

    /// When the record at `offset` was appended (its log timestamp), if the broker says so.
    async fn append_time(&self, topic: &str, partition: i32, offset: i64) -> Option<DateTime<Utc>> {
        let key = (topic.to_string(), partition, offset);
        if let Some(at) = self.append_times.get(&key) {
            return Some(at);
        }
        let peek = self.peek.clone();
        let (t, p) = (topic.to_string(), partition);
        let at = tokio::task::spawn_blocking(move || {
            // One peek at a time; a read that would queue behind it takes the upper bound
            // instead (see `observe`), so that a lagging projection cannot slow every answer.
            let consumer = peek.try_lock().ok()?;
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&t, p, Offset::Offset(offset)).ok()?;
            consumer.assign(&assignment).ok()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            let mut at = None;
            while at.is_none() && std::time::Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    // The first record from there on (transaction markers and aborted records
                    // are not records); none of an earlier assignment, which would mislead.
                    if message.topic() == t && message.partition() == p && message.offset() >= offset {
                        at = message.timestamp().to_millis().and_then(DateTime::from_timestamp_millis);
                    }
                }
            }
            // An assigned partition is fetched on and on; the next peek's fetch would queue
            // behind that one on the broker connection.
            let _ = consumer.unassign();
            at
        })
        .await
        .ok()
        .flatten()?;
        self.append_times.insert(key, at);
        Some(at)
    }

    /// Joins the log ends at arrival with the projection's standings. With `times`, looks up
    /// when each lagging partition's oldest unapplied record was appended; where the broker
    /// cannot say, the projection's last caught-up moment stands in (an older moment, so the
    /// age it gives is an upper bound).
    pub async fn observe(&self, ends: &BTreeMap<(String, i32), i64>, standings: &[Standing], times: bool) -> Observation {
        let mut observation = Observation::new();
        for ((topic, partition), end) in ends {
            let standing = standings.iter().find(|s| s.topic == *topic && s.partition == *partition);
            let reflected = standing.map_or(0, |s| s.next_offset);
            let mut oldest_unreflected_at = None;
            if times && reflected < *end {
                oldest_unreflected_at = match self.append_time(topic, *partition, reflected).await {
                    Some(at) => Some(at),
                    None => standing.and_then(|s| s.caught_up_at),
                };
            }
            observation.insert((topic.clone(), *partition), PartitionView { end: *end, reflected, oldest_unreflected_at });
        }
        observation
    }

    /// Waits until `projection` meets `bound`, for at most the bound's wait. A bound that
    /// cannot be met in time fails with 503, unless the caller asked to be served anyway.
    pub async fn await_bound(
        &self,
        pool: &sqlx::PgPool,
        projection: &str,
        ends: &BTreeMap<(String, i32), i64>,
        bound: &Bound,
    ) -> Result<(), Problem> {
        if bound.is_eventual() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + bound.wait;
        let mut updates = self.standing_updates(pool, projection);
        let mut db = pool.acquire().await.map_err(database)?;
        let mut standing = Arc::new(standings(&mut db, projection).await.map_err(database)?);
        drop(db);
        loop {
            let observation = self.observe(ends, &standing, bound.max_staleness.is_some()).await;
            if let Some(token) = &bound.token {
                if let Some(reason) = bound::beyond_the_log(token, &observation) {
                    return Err(Problem::bad_request(format!("consistency token: {reason}")));
                }
            }
            let unmet = bound::unmet(bound, &observation, Utc::now());
            if unmet.is_empty() || (tokio::time::Instant::now() >= deadline && bound.serve_stale) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "bound-not-met",
                    "The read model could not meet the bound in time",
                    format!("projection {projection} after {} ms: {}", bound.wait.as_millis(), unmet.join("; ")),
                )
                .with("bound", serde_json::to_value(bound.view()).expect("serializable"))
                .retry_after(1));
            }
            // At the deadline, the last standing seen answers.
            match tokio::time::timeout_at(deadline, updates.changed()).await {
                Ok(Ok(())) => standing = updates.borrow_and_update().clone(),
                Ok(Err(_)) => tokio::time::sleep(POLL).await,
                Err(_) => {}
            }
        }
    }

    /// The standing of `projection` as one task polls it for every waiting read: each read
    /// polling on its own made the waiting reads much of the database's work under load,
    /// slowing the very projectors they waited for.
    fn standing_updates(&self, pool: &sqlx::PgPool, projection: &str) -> watch::Receiver<Arc<Vec<Standing>>> {
        let mut watches = self.standing_watches.lock().expect("not poisoned");
        if let Some(watch) = watches.get(projection) {
            return watch.subscribe();
        }
        let (watch, updates) = watch::channel(Arc::new(Vec::new()));
        tokio::spawn(poll_standing(pool.clone(), projection.to_string(), watch.clone()));
        watches.insert(projection.to_string(), watch);
        updates
    }

    /// The note for an answer based on `standing` (read in the answer's snapshot).
    pub async fn note(&self, projection: &str, ends: &BTreeMap<(String, i32), i64>, standing: &[Standing], bound: &Bound) -> Staleness {
        let now = Utc::now();
        let observation = self.observe(ends, standing, true).await;
        let unmet = bound::unmet(bound, &observation, now);
        Staleness {
            projection: projection.to_string(),
            lag_events: observation.values().map(PartitionView::lag).sum(),
            lag_ms: bound::lag_ms(&observation, now),
            bound: bound.view(),
            fresh: unmet.is_empty(),
            unmet,
            read_at: now,
        }
    }
}

/// Reads the projection's standing every `POLL` while anyone waits for it; lives as long as
/// the service (one per projection).
async fn poll_standing(pool: sqlx::PgPool, projection: String, watch: watch::Sender<Arc<Vec<Standing>>>) {
    loop {
        tokio::time::sleep(POLL).await;
        if watch.receiver_count() == 0 {
            continue;
        }
        let read = async { standings(&mut *pool.acquire().await?, &projection).await };
        match read.await {
            Ok(standing) => {
                watch.send_replace(Arc::new(standing));
            }
            // The waiting reads answer at their deadline.
            Err(e) => tracing::warn!(%projection, error = %e, "cannot read the projection's standing"),
        }
    }
}

/// Answers log-end requests in rounds: each round takes every request waiting, asks the
/// broker once for all their topics, and answers them all. A request that arrives while a
/// round is under way waits for the next, whose lookup starts after it arrived, so no read
/// gets ends older than itself. Under load the broker answers one lookup per round trip
/// instead of one per read.
async fn look_up_log_ends(mut asked: mpsc::UnboundedReceiver<LogEndsAsked>, consumer: BaseConsumer) {
    let consumer = Arc::new(consumer);
    // Partitions per topic: asked of the broker again after a while, as they may be added.
    let partition_counts: moka::sync::Cache<String, i32> = moka::sync::Cache::builder().time_to_live(Duration::from_secs(10)).build();
    while let Some(first) = asked.recv().await {
        let mut round = vec![first];
        while let Ok(more) = asked.try_recv() {
            round.push(more);
        }
        let topics: BTreeSet<String> = round.iter().flat_map(|a| a.topics.iter().cloned()).collect();
        let (consumer, counts) = (consumer.clone(), partition_counts.clone());
        let ends = tokio::task::spawn_blocking(move || {
            let mut partitions = Vec::new();
            for topic in topics {
                let count = match counts.get(&topic) {
                    Some(count) => count,
                    None => {
                        let count = tidemark_log::partition_count(&consumer, &topic, BROKER_TIMEOUT).map_err(|e| e.to_string())?.unwrap_or(0);
                        counts.insert(topic.clone(), count);
                        count
                    }
                };
                partitions.extend((0..count).map(|p| (topic.clone(), p)));
            }
            tidemark_log::log_ends(&consumer, &partitions, BROKER_TIMEOUT)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the lookup failed: {e}")));
        for LogEndsAsked { topics, reply } in round {
            let answer = ends.clone().map(|ends| ends.into_iter().filter(|((topic, _), _)| topics.contains(topic)).collect());
            // The reader may have given up (its client went away); nothing to answer then.
            let _ = reply.send(answer);
        }
    }
}

/// The token an answer hands back: what the caller's token asked for, plus everything
/// the answer reflects, so a later read with it never sees an older state.
pub fn answer_token(asked: Option<&ConsistencyToken>, standing: &[Standing]) -> ConsistencyToken {
    let mut token = asked.cloned().unwrap_or_default();
    for s in standing.iter().filter(|s| s.next_offset > 0) {
        token.include(&s.topic, s.partition, s.next_offset - 1);
    }
    token
}

/// The database's own words stay in the log, under a reference the client is given.
pub fn database(e: sqlx::Error) -> Problem {
    let reference = uuid::Uuid::now_v7();
    tracing::error!(%reference, error = %e, "the read model database failed");
    Problem::unavailable("the read model database does not answer").with("reference", reference.to_string())
}
