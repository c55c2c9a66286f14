//! `tidemark replay export`: decoded events with their envelope, for other tools. The start
//! in each partition comes from offsets-for-times, so a window late in a long log costs
//! what follows it, not what came before. It reads to the log end as it was when the
//! export began, and keeps the records whose time is in the window. (Tansu 0.6.0 answers
//! offsets-for-times with offset 0 for any time, so there the export reads from the start;
//! the time filter keeps the answer right.) The same log and arguments always give the
//! same bytes: records go out in topic, partition and offset order.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tidemark_schemas::Decoded;

use crate::{event_json, Replayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Event types to keep; all when empty.
    pub types: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(10);
const CSV_HEADER: [&str; 22] = [
    "topic", "partition", "offset", "event_id", "event_type", "aggregate_type", "aggregate_id", "aggregate_version",
    "tenant_id", "occurred_at", "recorded_at", "command_id", "correlation_id", "causation_id", "actor_id", "actor_kind",
    "client_id", "policy_version", "code_version", "writer_epoch", "rationale", "data",
];

/// The first offset at or after `at` in each partition, as the broker says (the log end
/// when there is none).
fn offsets_at(consumer: &BaseConsumer, topic: &str, partitions: i32, at: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
    let mut query = TopicPartitionList::new();
    for p in 0..partitions {
        query.add_partition_offset(topic, p, Offset::Offset(at.timestamp_millis()))?;
    }
    let found = consumer.offsets_for_times(query, TIMEOUT).context("offsets for times")?;
    (0..partitions)
        .map(|p| {
            let element = found.find_partition(topic, p).context("an answer for every partition")?;
            Ok(match element.offset() {
                Offset::Offset(o) => o,
                _ => consumer.fetch_watermarks(topic, p, TIMEOUT)?.1,
            })
        })
        .collect()
}

/// Writes the window's events to `out`; returns how many it wrote.
pub async fn export(replayer: &Replayer, window: &Window, format: Format, out: &mut dyn Write) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &replayer.brokers)
        .set("group.id", "tidemark-export")
        .set("enable.auto.commit", "false")
        // Partitions are read one after another: do not linger at the end of each.
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut csv = (format == Format::Csv).then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = csv.as_mut() {
        w.write_record(CSV_HEADER)?;
    }
    let mut written = 0;
    let mut topics: Vec<String> = replayer.topics.all().iter().map(|t| t.to_string()).collect();
    topics.sort();
    for topic in topics {
        let partitions = crate::partition_count(&replayer.brokers, &topic)?;
        let starts = offsets_at(&consumer, &topic, partitions, window.from)?;
        let ends = (0..partitions).map(|p| Ok(consumer.fetch_watermarks(&topic, p, TIMEOUT)?.1)).collect::<anyhow::Result<Vec<i64>>>()?;
        let total: i64 = starts.iter().zip(&ends).map(|(s, e)| (e - s).max(0)).sum();
        let progress = indicatif::ProgressBar::new(total as u64).with_message(topic.clone());
        progress.set_style(indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} records, {per_sec}").expect("a valid template"));
        for p in 0..partitions {
            let (start, end) = (starts[p as usize], ends[p as usize]);
            if start >= end {
                continue;
            }
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, p, Offset::Offset(start))?;
            consumer.assign(&assignment)?;
            let mut next = start;
            while next < end {
                let message = match consumer.poll(TIMEOUT) {
                    Some(m) => m?,
                    None => anyhow::bail!("timed out reading {topic}/{p} at offset {next}"),
                };
                next = message.offset() + 1;
                progress.inc(1);
                let Ok(Decoded::Event(event)) = replayer.codec.decode(message.payload()).await else { continue };
                let env = &event.envelope;
                let in_window = env.recorded_at >= window.from && env.recorded_at < window.to;
                if !in_window || (!window.types.is_empty() && !window.types.contains(&env.event_type)) {
                    continue;
                }
                let json = event_json(&event);
                match csv.as_mut() {
                    Some(w) => w.write_record([
                        topic.clone(), p.to_string(), message.offset().to_string(), env.event_id.to_string(), env.event_type.clone(),
                        env.aggregate_type.clone(), env.aggregate_id.to_string(), env.aggregate_version.to_string(), env.tenant_id.clone(),
                        env.occurred_at.to_rfc3339(), env.recorded_at.to_rfc3339(), env.command_id.clone(), env.correlation_id.clone(),
                        env.causation_id.clone().unwrap_or_default(), env.actor_id.clone(), env.actor_kind.name().to_string(),
                        env.client_id.clone(), env.policy_version.clone(), env.code_version.clone(), env.writer_epoch.to_string(),
                        env.rationale.clone().unwrap_or_default(), json["data"].to_string(),
                    ])?,
                    None => {
                        let line = serde_json::json!({"topic": topic, "partition": p, "offset": message.offset(), "envelope": json["envelope"], "data": json["data"]});
                        writeln!(out, "{line}")?;
                    }
                }
                written += 1;
            }
        }
        progress.finish_and_clear();
    }
    if let Some(w) = csv {
        out.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    Ok(written)
}
