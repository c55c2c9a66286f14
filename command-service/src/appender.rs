//! Group commit: the records of every command that arrives while a Kafka transaction is
//! under way go into the next one.
//!
//! A command's events, across records and topics, become visible together or not at all,
//! and a writer that another instance has fenced (by starting with the same transactional
//! id) can append nothing more: the broker refuses its epoch. One task owns the
//! transactional producer; commands hand it their records and wait for the commit, so a
//! transaction costs its round trips once per group of commands, not once per command.
//!
//! Each transaction also commits the shards it writes to the writers' group (see the
//! writer's `ownership`), so that a writer the group has left behind commits nothing.
//!
//! A commit returns when the coordinator has decided it; the markers that make the records
//! visible to committed readers reach the partitions a moment later. A command is answered
//! only once its records are visible, so that a strong read right after it sees them.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, Retryable};
use rdkafka::consumer::{BaseConsumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;
use tidemark_http::ServiceMetrics;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Most records in one transaction: bounds the memory and the time of one commit.
const MAX_RECORDS: usize = 2_000;

/// A record to append, to a partition chosen by the writer.
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The transaction was aborted or never began: none of the records is in the log.
    #[error("the event log is unavailable: {0}")]
    NotAppended(String),
    /// The commit's fate is unknown: the records may be in the log. The producer has been
    /// replaced, which settles the transaction; reading the log tells which way.
    #[error("the event log did not confirm the append: {0}")]
    Uncertain(String),
    /// The broker refused this producer: a newer process took over under the same name (this
    /// one must stop), or the broker aborted a transaction left open too long (this writer
    /// was paused) and the next producer goes on. The records are not in the log.
    #[error("this writer was fenced: {0}")]
    Fenced(String),
}

/// Whether a submission may still be appended when its turn comes (see [`Appender::submit`]).
pub type StillValid = Box<dyn Fn() -> bool + Send>;
/// Told the fate of a submission, in the order of submission, before the next transaction.
pub type OnFate = Box<dyn FnOnce(Result<Vec<Delivered>, AppendError>) + Send>;

struct Submission {
    records: Vec<Record>,
    still_valid: Option<StillValid>,
    on_fate: OnFate,
    /// The command's span (with its correlation id), which the transaction's span follows.
    span: tracing::Span,
    /// The command's trace context, written into each of its records' headers.
    traceparent: Option<String>,
}

/// Hands records to the committing task.
#[derive(Clone)]
pub struct Appender {
    queue: mpsc::UnboundedSender<Submission>,
    fenced: Arc<OnceLock<String>>,
}

/// What a transaction on these shards commits to the writers' group, or why it may not be
/// appended at all.
pub type Fence = Arc<dyn Fn(&[i32]) -> Result<(TopicPartitionList, ConsumerGroupMetadata), String> + Send + Sync>;

/// Whether a newer process runs under this writer's name: asked when the broker fences the
/// producer, to tell whether this writer must stop.
pub type Superseded = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync>;

/// Makes a transactional producer and registers it with the transaction coordinator, which
/// fences any earlier producer of the same id and settles its open transaction.
pub type ProducerFactory = Box<dyn Fn() -> Result<FutureProducer, KafkaError> + Send + Sync>;

impl Appender {
    /// Starts the committing task with a producer from `make` (called again to replace a
    /// producer whose transaction failed). Fails when the first producer cannot register.
    /// `reader`: a client with `tidemark_log::reader` settings.
    pub async fn start(make: ProducerFactory, (fence, superseded): (Fence, Superseded), reader: Arc<BaseConsumer>, timeout: Duration, metrics: ServiceMetrics) -> Result<Appender, KafkaError> {
        // A new broker creates its transaction log on the first registration, which can
        // take longer than one attempt's timeout.
        let producer = (|| init(&make, timeout))
            .retry(ConstantBuilder::default().with_delay(Duration::ZERO).with_max_times(5))
            .when(|e| !is_fenced(e))
            .notify(|e, _| tracing::warn!(error = %e, "registering the transactional producer failed; trying again"))
            .await?;
        let (queue, submissions) = mpsc::unbounded_channel();
        let fenced = Arc::new(OnceLock::new());
        tokio::spawn(Committer { make, fence, superseded, reader, timeout, producer: Some(producer), fenced: fenced.clone(), metrics }.run(submissions));
        Ok(Appender { queue, fenced })
    }

    /// Makes sure no transaction of this writer is in doubt: after a commit of unknown fate,
    /// a new producer settles it (committed or aborted) before readers look at the log.
    pub async fn settle(&self) -> Result<(), AppendError> {
        self.append(Vec::new()).await.map(|_| ())
    }

    /// Why this writer may append nothing more, if a newer one fenced it.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.get().cloned()
    }

    /// Appends `records` in one transaction (shared with other commands), and says where
    /// each landed, in order, once the transaction is committed and its records are visible.
    pub async fn append(&self, records: Vec<Record>) -> Result<Vec<Delivered>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.submit(records, None, Box::new(move |fate| {
            // Whoever gave up waiting has nobody to answer.
            let _ = reply.send(fate);
        }));
        answer.await.map_err(|_| AppendError::Uncertain("the committer stopped during the commit".into()))?
    }

    /// Queues `records` for a coming transaction and returns at once, so that a caller can
    /// submit in the order it decided (holding its locks) and wait for the commit after
    /// releasing them. `on_fate` is told the outcome whether or not anyone still waits,
    /// submission by submission in order. `still_valid` is asked when the submission's
    /// turn comes: `false` (it was decided on records whose append failed since) refuses it
    /// unappended.
    pub fn submit(&self, records: Vec<Record>, still_valid: Option<StillValid>, on_fate: OnFate) {
        let count = records.len();
        let on_fate: OnFate = Box::new(move |fate| {
            match &fate {
                Ok(_) => tracing::debug!(records = count, "appended"),
                Err(e) => tracing::warn!(records = count, error = %e, "the append failed"),
            }
            on_fate(fate)
        });
        let span = tracing::Span::current();
        if let Err(refused) = self.queue.send(Submission { records, still_valid, on_fate, traceparent: tidemark_http::traces::traceparent(&span), span }) {
            (refused.0.on_fate)(Err(AppendError::NotAppended("the committer stopped".into())));
        }
    }
}

async fn init(make: &ProducerFactory, timeout: Duration) -> Result<FutureProducer, KafkaError> {
    let producer = make()?;
    let p = producer.clone();
    tokio::task::spawn_blocking(move || p.init_transactions(timeout)).await.expect("init_transactions does not panic")?;
    Ok(producer)
}

struct Committer {
    make: ProducerFactory,
    fence: Fence,
    superseded: Superseded,
    /// A committed reader's view of the log ends: when appended records become visible.
    reader: Arc<BaseConsumer>,
    timeout: Duration,
    /// `None` after a failure left no usable producer; made anew before the next commit.
    producer: Option<FutureProducer>,
    fenced: Arc<OnceLock<String>>,
    metrics: ServiceMetrics,
}

impl Committer {
    async fn run(mut self, mut submissions: mpsc::UnboundedReceiver<Submission>) {
        while let Some(first) = submissions.recv().await {
            let mut group = Vec::new();
            let mut count = 0;
            let mut next = Some(first);
            while let Some(submission) = next.take() {
                if submission.still_valid.as_ref().is_some_and(|valid| !valid()) {
                    (submission.on_fate)(Err(AppendError::NotAppended("it was decided on records whose append failed".into())));
                } else {
                    count += submission.records.len();
                    group.push(submission);
                }
                if count < MAX_RECORDS {
                    next = submissions.try_recv().ok();
                }
            }
            if group.is_empty() {
                continue;
            }
            let records: Vec<(&Record, Option<&str>)> = group.iter().flat_map(|s| s.records.iter().map(|r| (r, s.traceparent.as_deref()))).collect();
            // One transaction serves several commands: its span follows each command's, so
            // a trace leads from every command to the commit that carried it.
            let span = tracing::info_span!("commit", commands = group.len(), records = records.len());
            for submission in &group {
                span.follows_from(&submission.span);
            }
            let began = Instant::now();
            let mut result = self.commit(&records).instrument(span).await;
            self.count(&result, records.len(), began.elapsed());
            drop(records);
            for submission in group {
                let answer = result.as_mut().map(|delivered| delivered.drain(..submission.records.len()).collect()).map_err(|e| e.clone());
                (submission.on_fate)(answer);
            }
        }
    }

    /// Counts a transaction by its outcome, with its size and its time to visibility.
    fn count(&self, result: &Result<Vec<Delivered>, AppendError>, records: usize, took: Duration) {
        if records == 0 {
            return; // a settling of the producer, not a transaction
        }
        let outcome = match result {
            Ok(_) => "committed",
            Err(AppendError::NotAppended(_)) => "aborted",
            Err(AppendError::Uncertain(_)) => "uncertain",
            Err(AppendError::Fenced(_)) => "fenced",
        };
        self.metrics.record(|| {
            metrics::describe_counter!(
                "tidemark_writer_transactions_total",
                "The writer's Kafka transactions by outcome: committed; aborted (nothing appended); uncertain (the next producer settled it); fenced (a newer writer took over)."
            );
            metrics::counter!("tidemark_writer_transactions_total", "outcome" => outcome).increment(1);
            metrics::describe_histogram!("tidemark_writer_transaction_records", "Records in one transaction: the commands that arrived together, and their events.");
            metrics::histogram!("tidemark_writer_transaction_records").record(records as f64);
            metrics::describe_histogram!("tidemark_writer_commit_seconds", metrics::Unit::Seconds, "From a transaction's begin to its records' visibility to committed readers.");
            metrics::histogram!("tidemark_writer_commit_seconds").record(took.as_secs_f64());
        });
    }

    /// Appends `records`, each with its command's trace context, in one transaction.
    async fn commit(&mut self, records: &[(&Record, Option<&str>)]) -> Result<Vec<Delivered>, AppendError> {
        if let Some(reason) = self.fenced.get() {
            return Err(AppendError::Fenced(reason.clone()));
        }
        let producer = match self.producer.clone() {
            Some(producer) => producer,
            None => {
                let producer = match init(&self.make, self.timeout).await {
                    Ok(producer) => producer,
                    Err(e) => return Err(self.failed_before_any_append(e).await),
                };
                self.producer = Some(producer.clone());
                producer
            }
        };
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut shards: Vec<i32> = records.iter().map(|(r, _)| r.partition).collect();
        shards.sort_unstable();
        shards.dedup();
        let (offsets, member) = (self.fence)(&shards).map_err(AppendError::NotAppended)?;
        let began = Instant::now();
        if let Err(e) = producer.begin_transaction() {
            return Err(self.failed_before_any_append(e).await);
        }
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
        for (record, traceparent) in records {
            let mut future = FutureRecord::to(&record.topic).partition(record.partition).payload(&record.payload);
            if let Some(key) = &record.key {
                future = future.key(key);
            }
            if let Some(value) = traceparent {
                future = future.headers(OwnedHeaders::new().insert(Header { key: tidemark_http::traces::TRACEPARENT, value: Some(*value) }));
            }
            match producer.send_result(future) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => return Err(self.abort(&producer, e).await),
            }
        }
        // Every delivery first: rdkafka's commit flushes, and a flush that finds a delivery
        // report not yet served waits up to 100 ms for the producer's polling thread.
        let mut delivered = Vec::with_capacity(deliveries.len());
        let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for ((record, _), delivery) in records.iter().zip(deliveries) {
            match delivery.await {
                Ok(Ok(d)) => {
                    delivered.push(Delivered { partition: d.partition, offset: d.offset });
                    let at = last.entry((record.topic.clone(), d.partition)).or_insert(d.offset);
                    *at = (*at).max(d.offset);
                }
                Ok(Err((e, _))) => return Err(self.abort(&producer, e).await),
                Err(_) => return Err(self.abort(&producer, KafkaError::Canceled).await),
            }
        }
        // The last delivery future resolves inside rdkafka's delivery callback, a moment
        // before librdkafka counts the message as gone. A commit in that moment finds the
        // producer not flushed and waits 100 ms in rdkafka's flush loop for an event that
        // never comes; waiting here for the count costs microseconds.
        while producer.in_flight_count() > 0 {
            if began.elapsed() >= self.timeout {
                break; // the commit's own flush then reports what is stuck
            }
            tokio::task::yield_now().await;
        }
        // After every delivery: a record still on its way could land behind the next
        // owner's fence marker once the group has let this one commit.
        let (p, timeout) = (producer.clone(), self.timeout);
        let committed = tokio::task::spawn_blocking(move || p.send_offsets_to_transaction(&offsets, &member, timeout).and_then(|()| p.commit_transaction(timeout)))
            .await
            .expect("commit_transaction does not panic");
        if let Err(e) = committed {
            return Err(self.abort(&producer, e).await);
        }
        if let Err(reason) = self.await_visible(&last).await {
            // A new producer waits for the transaction to be completed before it registers.
            self.producer = init(&self.make, self.timeout).await.ok();
            return Err(AppendError::Uncertain(reason));
        }
        Ok(delivered)
    }

    /// Waits until a committed reader's log end is past `last` in each partition.
    async fn await_visible(&self, last: &BTreeMap<(String, i32), i64>) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let partitions: Vec<(String, i32)> = last.keys().cloned().collect();
        loop {
            let (reader, asked, timeout) = (self.reader.clone(), partitions.clone(), self.timeout);
            let ends = tokio::task::spawn_blocking(move || tidemark_log::log_ends(&reader, &asked, timeout)).await.expect("a lookup does not panic");
            if let Ok(ends) = &ends {
                if last.iter().all(|(key, offset)| ends.get(key).is_some_and(|end| end > offset)) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("the committed records did not become visible in time: {ends:?}"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Nothing was sent: the records are certainly not in the log.
    async fn failed_before_any_append(&mut self, e: KafkaError) -> AppendError {
        if is_fenced(&e) {
            return self.fence(e.to_string()).await;
        }
        self.producer = None;
        AppendError::NotAppended(e.to_string())
    }

    /// After a failed send, delivery or commit: aborts when the client allows it (then
    /// nothing is visible); otherwise replaces the producer, which settles the transaction.
    async fn abort(&mut self, producer: &FutureProducer, e: KafkaError) -> AppendError {
        if is_fenced(&e) {
            return self.fence(e.to_string()).await;
        }
        // A fenced producer's records fail before its commit does (purged from its queue);
        // the fence shows as the client's fatal error.
        if let Some((code, reason)) = producer.client().fatal_error().filter(|(code, _)| FENCED.contains(code)) {
            return self.fence(format!("{code}: {reason}")).await;
        }
        tracing::warn!(error = %e, "a transaction failed; aborting it");
        let abortable = matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort());
        if abortable {
            let (p, timeout) = (producer.clone(), self.timeout);
            if tokio::task::spawn_blocking(move || p.abort_transaction(timeout)).await.expect("abort does not panic").is_ok() {
                return AppendError::NotAppended(e.to_string());
            }
        }
        // The next producer settles the transaction when it registers; do that now, so that
        // the caller reads a log where the transaction is decided.
        self.producer = init(&self.make, self.timeout).await.ok();
        AppendError::Uncertain(e.to_string())
    }

    /// The transaction is aborted. Registering again would fence a newer process of this
    /// writer's name in turn, so the next transaction registers only if there is none.
    async fn fence(&mut self, reason: String) -> AppendError {
        self.producer = None;
        if (self.superseded)().await {
            tracing::error!(%reason, "a newer process took over under this writer's name; this one appends nothing more");
            let _ = self.fenced.set(reason.clone());
        } else {
            tracing::warn!(%reason, "the broker fenced this writer's producer (a transaction was left open too long: the writer was paused or cut off); the next transaction registers a new one");
        }
        AppendError::Fenced(reason)
    }
}

/// The broker's ways of saying that this producer's epoch is over: a newer producer of the
/// same transactional id exists, or the coordinator aborted its transaction.
const FENCED: [RDKafkaErrorCode; 3] = [RDKafkaErrorCode::Fenced, RDKafkaErrorCode::ProducerFenced, RDKafkaErrorCode::InvalidProducerEpoch];

fn is_fenced(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(|code| FENCED.contains(&code))
}
