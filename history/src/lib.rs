//! The log read as history: the system of record itself, rather than any read model.
//! Every reader's fold, an aggregate as it stood at a moment, the lineage of its values,
//! `verify` against a read model, and (with the `export` feature) export for other tools.
//! The commands that print these live with the CLI (`tidemark replay …`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use serde_json::{json, Value};
use tidemark_events::account::AccountEvent;
use tidemark_events::{DomainEvent, EventRecord, Topics};
use tidemark_privacy::KeyStore;
use tidemark_schemas::{Decoded, EventCodec};
use uuid::Uuid;

pub mod as_of;
#[cfg(feature = "export")]
pub mod export;
pub mod fold;
pub mod lineage;
pub mod verify;

/// One record of an event topic, where it lies, and what it holds.
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub decoded: Result<Decoded, String>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn client(brokers: &str, purpose: &str) -> anyhow::Result<BaseConsumer> {
    Ok(tidemark_log::reader(brokers, &format!("tidemark-replay-{purpose}")).create()?)
}

pub fn partition_count(brokers: &str, topic: &str) -> anyhow::Result<i32> {
    let client = client(brokers, "metadata")?;
    let count = tidemark_log::partition_count(&client, topic, TIMEOUT).with_context(|| format!("cannot reach the broker at {brokers}"))?;
    count.with_context(|| format!("topic {topic} does not exist"))
}

/// The committed end of each of `partitions` of `topic`, now.
pub fn log_ends(brokers: &str, topic: &str, partitions: impl IntoIterator<Item = i32>) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let asked: Vec<(String, i32)> = partitions.into_iter().map(|p| (topic.to_string(), p)).collect();
    tidemark_log::log_ends(&client(brokers, "log-ends")?, &asked, TIMEOUT).map_err(|e| anyhow::anyhow!("cannot learn where {topic} ends: {e}"))
}

/// Hands every committed record of `topic` (or of one of its partitions) that exists now to
/// `each`, one at a time: memory does not grow with the log. Each partition's records come
/// in offset order; partitions interleave.
pub async fn each_record(brokers: &str, codec: &EventCodec, topic: &str, only: Option<i32>, mut each: impl FnMut(LogRecord) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let partitions: Vec<i32> = match only {
        Some(p) => vec![p],
        None => (0..partition_count(brokers, topic)?).collect(),
    };
    let ends = log_ends(brokers, topic, partitions)?;
    let mut log = tidemark_log::ToEnd::new(tidemark_log::reader(brokers, "tidemark-replay"), &BTreeMap::new(), ends, TIMEOUT)?;
    while let Some(message) = log.next().await? {
        let decoded = codec.decode(message.payload()).await.map_err(|e| e.to_string());
        each(LogRecord { partition: message.partition(), offset: message.offset(), decoded })?;
    }
    Ok(())
}

/// Reads every committed record of `topic` (or of one of its partitions) that exists now,
/// in partition and offset order. With `of`, it keeps only those aggregates' events and the
/// writers' fences (all the fold rule needs for them), so that memory follows their history
/// and not the log's.
pub async fn read_partitions(brokers: &str, codec: &EventCodec, topic: &str, only: Option<i32>, of: Option<&[Uuid]>) -> anyhow::Result<Vec<LogRecord>> {
    let mut records = Vec::new();
    each_record(brokers, codec, topic, only, |record| {
        let kept = match (of, &record.decoded) {
            (None, _) | (Some(_), Ok(Decoded::Fence(_))) => true,
            (Some(ids), Ok(Decoded::Event(event))) => ids.contains(&event.envelope.aggregate_id),
            (Some(_), Err(_)) => false,
        };
        if kept {
            records.push(record);
        }
        Ok(())
    })
    .await?;
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// How many offsets the partitions of `topic` span now (records and transaction markers).
pub fn log_end_total(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    Ok(log_ends(brokers, topic, 0..partitions)?.values().sum())
}

/// Every record of `topic` that exists now, in partition and offset order.
pub async fn read_topic(brokers: &str, codec: &EventCodec, topic: &str) -> anyhow::Result<Vec<LogRecord>> {
    read_partitions(brokers, codec, topic, None, None).await
}

/// What a reader of the log's history needs to reach it.
pub struct Replayer {
    pub brokers: String,
    pub codec: EventCodec,
    pub topics: Topics,
}

impl Replayer {
    /// `registry_token`: for registries that want one before a schema is registered (only
    /// `generate` registers).
    /// `keys`: to open personal values; the tools show only whether they were erased.
    pub fn new(brokers: &str, registry_url: &str, registry_token: Option<&str>, topics: Topics, keys: Arc<dyn KeyStore>) -> anyhow::Result<Replayer> {
        Ok(Replayer { brokers: brokers.to_string(), codec: EventCodec::with_token(registry_url, registry_token)?.with_keys(keys), topics })
    }

    pub fn topic(&self, aggregate: &str) -> anyhow::Result<String> {
        self.topics.for_aggregate(aggregate).map(String::from).with_context(|| format!("no aggregate type '{aggregate}'; try account, opportunity, delegation, activity, contact or lead"))
    }
}

/// An event as JSON: its envelope and its data. Personal fields are left out (null): the
/// tools serve analysts and auditors, whom the policy shows no personal data.
pub fn event_json(record: &EventRecord) -> Value {
    let mut data = match &record.event {
        DomainEvent::Account(AccountEvent::Opened(d)) => json!(d),
        DomainEvent::Opportunity(e) => json!(e),
        DomainEvent::Delegation(e) => json!(e),
        DomainEvent::Activity(e) => json!(e),
        DomainEvent::Contact(e) => json!(e),
        DomainEvent::Lead(e) => json!(e),
        DomainEvent::Engagement(e) => json!(e),
    };
    withhold_personal(&mut data, std::slice::from_ref(&record));
    json!({"envelope": record.envelope, "data": data})
}

/// Sets to null, in `value` (an event's data or an aggregate's state), every field that
/// any of `events` marks personal; an erased one keeps showing that it was erased.
pub fn withhold_personal(value: &mut Value, events: &[&EventRecord]) {
    for event in events {
        for field in tidemark_events::personal_fields(&event.envelope.event_type) {
            if let Some(v) = value.get_mut(*field).filter(|v| v.as_str() != Some(tidemark_events::ERASED)) {
                *v = Value::Null;
            }
        }
    }
}

/// Fields of a state that only the writer needs (`Opportunity::ledger`, its memory for
/// merging offline intents): no value anyone reads, so history leaves them out.
pub(crate) const WRITER_ONLY: &[&str] = &["ledger"];
