//! The Kafka log as every part of Tidemark reaches it.
//!
//! Appends are Kafka transactions, so a partition holds commit and abort markers beside the
//! records, and records of a transaction that is still open or was aborted. Every reader
//! therefore reads `read_committed`, takes "the end" to be the last stable offset, and
//! counts its progress by the consumer's position (which steps over markers) rather than
//! by the last record's offset plus one. These rules are written here once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// A partition of a topic.
pub type Partition = (String, i32);

/// A Kafka client that is closed off the async threads when dropped. Closing a consumer
/// waits for the broker (to leave its group, to stop its fetches); while the broker is away
/// that wait is long, and on an async thread it would stall every task scheduled there.
pub struct ClosesInBackground<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> ClosesInBackground<T> {
    pub fn new(client: T) -> Self {
        ClosesInBackground(Some(client))
    }
}

impl<T: Send + 'static> std::ops::Deref for ClosesInBackground<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("taken only on drop")
    }
}

impl<T: Send + 'static> Drop for ClosesInBackground<T> {
    fn drop(&mut self) {
        let client = self.0.take();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(client))),
            Err(_) => drop(client),
        }
    }
}

/// Settings every client shares: where the brokers are and who is asking.
pub fn client(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id);
    config
}

/// A consumer's settings: committed records only, offsets kept by the caller.
pub fn reader(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = client(brokers, client_id);
    config
        .set("group.id", client_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// The number of partitions of `topic`, or `None` when it does not exist.
pub fn partition_count(client: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Option<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty()).map(|t| t.partitions().len() as i32))
}

/// The end of each of `partitions` for a committed reader (the last stable offset: below
/// it, every transaction is decided), asked of the broker in one ListOffsets request.
/// `client` must be made with [`reader`] settings, whose isolation level the request carries.
pub fn log_ends(client: &BaseConsumer, partitions: &[Partition], timeout: Duration) -> Result<BTreeMap<Partition, i64>, String> {
    // librdkafka refuses an empty list as an invalid argument.
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut asked = TopicPartitionList::new();
    for (topic, partition) in partitions {
        // As a timestamp, "end" (-1) asks for the latest offset.
        asked.add_partition_offset(topic, *partition, Offset::End).map_err(|e| e.to_string())?;
    }
    let found = client.offsets_for_times(asked, timeout).map_err(|e| e.to_string())?;
    found
        .elements()
        .iter()
        .map(|e| match (e.error(), e.offset()) {
            (Ok(()), Offset::Offset(end)) => Ok(((e.topic().to_string(), e.partition()), end)),
            (Err(error), _) => Err(format!("{}/{}: {error}", e.topic(), e.partition())),
            (_, other) => Err(format!("{}/{}: the broker gave no log end ({other:?})", e.topic(), e.partition())),
        })
        .collect()
}

/// The ends of every partition of `topics`.
pub fn topic_ends(client: &BaseConsumer, topics: &[String], timeout: Duration) -> Result<BTreeMap<Partition, i64>, String> {
    let mut partitions = Vec::new();
    for topic in topics {
        let count = partition_count(client, topic, timeout).map_err(|e| e.to_string())?.ok_or_else(|| format!("topic {topic} does not exist"))?;
        partitions.extend((0..count).map(|p| (topic.clone(), p)));
    }
    log_ends(client, &partitions, timeout)
}

/// Where `consumer` stands in each of `partitions`: the offset of the next record it would
/// deliver, past any transaction markers it has read. Partitions it has not started to
/// fetch are left out.
pub fn positions<C: rdkafka::consumer::ConsumerContext>(consumer: &impl Consumer<C>, partitions: impl IntoIterator<Item = Partition>) -> Result<BTreeMap<Partition, i64>, KafkaError> {
    let asked: BTreeSet<Partition> = partitions.into_iter().collect();
    let position = consumer.position()?;
    Ok(position
        .elements()
        .iter()
        .filter(|e| asked.contains(&(e.topic().to_string(), e.partition())))
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("no record arrived for {0:?} while {1} partition(s) hold more; is the broker up?")]
    Stalled(Duration, usize),
}

/// How long a read waits quietly before it asks the consumer's position whether only
/// markers were left: the cost of reaching an end that a marker closes.
const QUIET: Duration = Duration::from_millis(20);

/// Reads partitions from given offsets to given ends: the records that were committed below
/// those ends when they were taken. Done when the consumer's position reaches each end,
/// whether the last thing before it is a record or a transaction marker.
pub struct ToEnd {
    consumer: ClosesInBackground<StreamConsumer>,
    ends: BTreeMap<Partition, i64>,
    open: BTreeSet<Partition>,
    /// The longest wait for a record while some partition is still short of its end.
    patience: Duration,
}

impl ToEnd {
    /// `config`: [`reader`] settings. `from`: where to start in each partition (partitions
    /// already at their end are not read).
    pub fn new(config: ClientConfig, from: &BTreeMap<Partition, i64>, ends: BTreeMap<Partition, i64>, patience: Duration) -> Result<ToEnd, KafkaError> {
        let consumer: StreamConsumer = config.create()?;
        let open: BTreeSet<Partition> = ends.iter().filter(|(p, end)| from.get(*p).copied().unwrap_or(0) < **end).map(|(p, _)| p.clone()).collect();
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &open {
            let start = from.get(&(topic.clone(), *partition)).copied().unwrap_or(0);
            assignment.add_partition_offset(topic, *partition, Offset::Offset(start))?;
        }
        consumer.assign(&assignment)?;
        Ok(ToEnd { consumer: ClosesInBackground::new(consumer), ends, open, patience })
    }

    /// The next record below the ends, or `None` when every partition has reached its end.
    pub async fn next(&mut self) -> Result<Option<OwnedMessage>, ReadError> {
        match self.next_within(self.patience).await? {
            Some(message) => Ok(Some(message)),
            None if self.open.is_empty() => Ok(None),
            None => Err(ReadError::Stalled(self.patience, self.open.len())),
        }
    }

    /// Like `next`, but gives up after `wait` with `Ok(None)` while partitions are still
    /// open (see [`ToEnd::is_done`]): for callers that gather records into batches.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<OwnedMessage>, ReadError> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.open.is_empty() {
            let slice = deadline.min(tokio::time::Instant::now() + QUIET);
            match tokio::time::timeout_at(slice, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    if let Some(owned) = take(&mut self.open, &self.ends, &message) {
                        return Ok(Some(owned));
                    }
                }
                Ok(Err(e)) if lost_connection(&e) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    // Markers are never delivered: a partition whose last entries are
                    // markers is done once the position says so.
                    self.close_reached()?;
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Whether every partition has reached its end.
    pub fn is_done(&self) -> bool {
        self.open.is_empty()
    }

    /// The consumer's position in every partition it reads, past markers.
    pub fn positions(&self) -> Result<BTreeMap<Partition, i64>, KafkaError> {
        positions(&*self.consumer, self.ends.keys().cloned())
    }

    fn close_reached(&mut self) -> Result<(), KafkaError> {
        let at = positions(&*self.consumer, self.open.iter().cloned())?;
        self.open.retain(|p| at.get(p).is_none_or(|o| *o < self.ends[p]));
        Ok(())
    }
}

/// librdkafka tells a consumer that it lost its connections, then reconnects by itself: a
/// read goes on, and gives up only when no record has come for its patience.
fn lost_connection(e: &KafkaError) -> bool {
    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure))
}

/// The message, if it lies below its partition's end; closes the partition at its end.
fn take(open: &mut BTreeSet<Partition>, ends: &BTreeMap<Partition, i64>, message: &BorrowedMessage<'_>) -> Option<OwnedMessage> {
    let key = (message.topic().to_string(), message.partition());
    let end = *ends.get(&key)?;
    if message.offset() + 1 >= end {
        open.remove(&key);
    }
    // A record at or past the end was committed after the ends were taken: not part of this read.
    (message.offset() < end).then(|| message.detach())
}
