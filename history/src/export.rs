//! `tidemark replay export`: decoded events with their envelope, for other tools. The start
//! in each partition comes from offsets-for-times, so a window late in a long log costs
//! what follows it, not what came before. It reads to the log end as it was when the
//! export began, and keeps the records whose time is in the window (a record's log time
//! and its `recorded_at` differ by moments, so the filter decides at the edges). The same
//! log and arguments always give the same bytes: records go out in topic, partition and
//! offset order.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::record::RecordWriter;
use parquet_derive::ParquetRecordWriter;
use tidemark_events::EventRecord;
use tidemark_schemas::Decoded;

use crate::{event_json, Replayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Format, String> {
        match name {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!("'{name}' is not one of jsonl, csv, parquet")),
        }
    }
}

pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Event types to keep; all when empty.
    pub types: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per Parquet row group: large enough for good compression, small enough to hold in memory.
const ROW_GROUP: usize = 100_000;

/// One event as a flat row: its position, every envelope field, and its data as JSON. The
/// columns of CSV and Parquet, in this order.
#[derive(Debug, serde::Serialize, ParquetRecordWriter)]
struct Row {
    topic: String,
    partition: i32,
    offset: i64,
    event_id: String,
    event_type: String,
    aggregate_type: String,
    aggregate_id: String,
    aggregate_version: i64,
    tenant_id: String,
    occurred_at: String,
    recorded_at: String,
    command_id: String,
    correlation_id: String,
    causation_id: Option<String>,
    actor_id: String,
    actor_kind: String,
    client_id: String,
    policy_version: String,
    code_version: String,
    writer_epoch: i64,
    rationale: Option<String>,
    data: String,
}

impl Row {
    fn new(topic: &str, partition: i32, offset: i64, event: &EventRecord) -> Row {
        let env = &event.envelope;
        Row {
            topic: topic.to_string(),
            partition,
            offset,
            event_id: env.event_id.to_string(),
            event_type: env.event_type.clone(),
            aggregate_type: env.aggregate_type.clone(),
            aggregate_id: env.aggregate_id.to_string(),
            aggregate_version: env.aggregate_version,
            tenant_id: env.tenant_id.clone(),
            occurred_at: env.occurred_at.to_rfc3339(),
            recorded_at: env.recorded_at.to_rfc3339(),
            command_id: env.command_id.clone(),
            correlation_id: env.correlation_id.clone(),
            causation_id: env.causation_id.clone(),
            actor_id: env.actor_id.clone(),
            actor_kind: env.actor_kind.name().to_string(),
            client_id: env.client_id.clone(),
            policy_version: env.policy_version.clone(),
            code_version: env.code_version.clone(),
            writer_epoch: env.writer_epoch,
            rationale: env.rationale.clone(),
            data: event_json(event)["data"].to_string(),
        }
    }
}

/// Where exported events go, in the format asked for.
enum Sink<W: Write + Send> {
    Jsonl(W),
    Csv(csv::Writer<W>),
    Parquet { writer: SerializedFileWriter<W>, rows: Vec<Row> },
}

impl<W: Write + Send> Sink<W> {
    fn new(format: Format, out: W) -> anyhow::Result<Sink<W>> {
        Ok(match format {
            Format::Jsonl => Sink::Jsonl(out),
            Format::Csv => Sink::Csv(csv::Writer::from_writer(out)),
            Format::Parquet => {
                let schema = (&[] as &[Row]).schema()?;
                let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                Sink::Parquet { writer: SerializedFileWriter::new(out, schema, Arc::new(properties))?, rows: Vec::new() }
            }
        })
    }

    fn write(&mut self, topic: &str, partition: i32, offset: i64, event: &EventRecord) -> anyhow::Result<()> {
        match self {
            Sink::Jsonl(out) => {
                let json = event_json(event);
                let line = serde_json::json!({"topic": topic, "partition": partition, "offset": offset, "envelope": json["envelope"], "data": json["data"]});
                writeln!(out, "{line}")?;
            }
            Sink::Csv(w) => w.serialize(Row::new(topic, partition, offset, event))?,
            Sink::Parquet { writer, rows } => {
                rows.push(Row::new(topic, partition, offset, event));
                if rows.len() >= ROW_GROUP {
                    write_row_group(writer, rows)?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Jsonl(mut out) => out.flush()?,
            Sink::Csv(mut w) => w.flush()?,
            Sink::Parquet { mut writer, mut rows } => {
                write_row_group(&mut writer, &mut rows)?;
                writer.close()?;
            }
        }
        Ok(())
    }
}

fn write_row_group<W: Write + Send>(writer: &mut SerializedFileWriter<W>, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    if !rows.is_empty() {
        let mut group = writer.next_row_group()?;
        rows.as_slice().write_to_row_group(&mut group)?;
        group.close()?;
        rows.clear();
    }
    Ok(())
}

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
                _ => i64::MAX, // nothing at or after `at`
            })
        })
        .collect()
}

/// Writes the window's events to `out`; returns how many it wrote.
pub async fn export<W: Write + Send>(replayer: &Replayer, window: &Window, format: Format, out: W) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = tidemark_log::reader(&replayer.brokers, "tidemark-export").create()?;
    let mut sink = Sink::new(format, out)?;
    let mut written = 0;
    let mut topics: Vec<String> = replayer.topics.all().iter().map(|t| t.to_string()).collect();
    topics.sort();
    for topic in topics {
        let partitions = crate::partition_count(&replayer.brokers, &topic)?;
        let starts = offsets_at(&consumer, &topic, partitions, window.from)?;
        let ends = crate::log_ends(&replayer.brokers, &topic, 0..partitions)?;
        let total: i64 = (0..partitions).map(|p| (ends[&(topic.clone(), p)] - starts[p as usize]).max(0)).sum();
        let progress = indicatif::ProgressBar::new(total as u64).with_message(topic.clone());
        progress.set_style(indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} offsets, {per_sec}").expect("a valid template"));
        // One partition after another, so the file lists each partition's records in order.
        for p in 0..partitions {
            let key = (topic.clone(), p);
            let from = BTreeMap::from([(key.clone(), starts[p as usize])]);
            let end = BTreeMap::from([(key.clone(), ends[&key])]);
            let mut log = tidemark_log::ToEnd::new(tidemark_log::reader(&replayer.brokers, "tidemark-export"), &from, end, TIMEOUT)?;
            let mut next = starts[p as usize];
            while let Some(message) = log.next().await? {
                progress.inc((message.offset() + 1 - next) as u64);
                next = message.offset() + 1;
                let Ok(Decoded::Event(event)) = replayer.codec.decode(message.payload()).await else { continue };
                let env = &event.envelope;
                let in_window = env.recorded_at >= window.from && env.recorded_at < window.to;
                if !in_window || (!window.types.is_empty() && !window.types.contains(&env.event_type)) {
                    continue;
                }
                sink.write(&topic, p, message.offset(), &event)?;
                written += 1;
            }
        }
        progress.finish_and_clear();
    }
    sink.finish()?;
    Ok(written)
}
