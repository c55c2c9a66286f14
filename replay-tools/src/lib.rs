//! Tools that read the log itself, the system of record, rather than any read model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use serde_json::{json, Value};
use tidemark_events::account::AccountEvent;
use tidemark_events::{DomainEvent, EventRecord, Topics};
use tidemark_privacy::{KeyStore, PgKeyStore};
use tidemark_schemas::{Decoded, EventCodec};

pub mod as_of;
pub mod lineage;
pub mod export;
pub mod fold;
pub mod generate;
pub mod rebuild;
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

/// Reads every committed record of `topic` (or of one of its partitions) that exists now,
/// in partition and offset order.
pub async fn read_partitions(brokers: &str, codec: &EventCodec, topic: &str, only: Option<i32>) -> anyhow::Result<Vec<LogRecord>> {
    let partitions: Vec<i32> = match only {
        Some(p) => vec![p],
        None => (0..partition_count(brokers, topic)?).collect(),
    };
    let ends = log_ends(brokers, topic, partitions)?;
    let mut log = tidemark_log::ToEnd::new(tidemark_log::reader(brokers, "tidemark-replay"), &BTreeMap::new(), ends, TIMEOUT)?;
    let mut records = Vec::new();
    while let Some(message) = log.next().await? {
        let decoded = codec.decode(message.payload()).await.map_err(|e| e.to_string());
        records.push(LogRecord { partition: message.partition(), offset: message.offset(), decoded });
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// How many offsets the partitions of `topic` span now (records and transaction markers).
pub fn log_end_total(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    Ok(log_ends(brokers, topic, 0..partitions)?.values().sum())
}

/// Every record of `topic` that exists now, in partition and offset order.
pub async fn read_topic(brokers: &str, codec: &EventCodec, topic: &str) -> anyhow::Result<Vec<LogRecord>> {
    read_partitions(brokers, codec, topic, None).await
}

/// What the replay tools need to reach the log.
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

    fn topic(&self, aggregate: &str) -> anyhow::Result<String> {
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

#[derive(Debug, clap::Subcommand)]
pub enum Replay {
    /// Print the events of the log as JSON lines, with their position.
    Events {
        /// account, opportunity, delegation, activity, contact or lead
        #[arg(long, default_value = "opportunity")]
        aggregate: String,
        /// Only this aggregate's events.
        #[arg(long)]
        id: Option<uuid::Uuid>,
    },
    /// An aggregate as it stood at an instant (or version), with the events that led there.
    AsOf {
        /// account, opportunity, delegation, activity, contact or lead
        aggregate: String,
        id: uuid::Uuid,
        /// An RFC 3339 instant, e.g. 2026-11-21T09:00:00Z.
        #[arg(long, conflicts_with = "version")]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Where an aggregate's values came from: every event that set them, in order, with its
    /// provenance (who, through which client, under which command, policy and build, why) and
    /// the fields it changed. With --field, that field's history only.
    Lineage {
        /// account, opportunity, delegation, activity, contact or lead
        aggregate: String,
        id: uuid::Uuid,
        /// One field of the aggregate's state, e.g. amount or stage.
        #[arg(long)]
        field: Option<String>,
    },
    /// Decoded events with their envelope, for analysis elsewhere, in a time window.
    Export {
        /// Start of the window (RFC 3339), inclusive.
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the window (RFC 3339), exclusive [default: now].
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only these event types, comma-separated (e.g. OpportunityCreated,OpportunityClosed).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: export::Format,
        /// Write here instead of to standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Replay the log in memory and compare with a live read model, row by row. Exits
    /// non-zero when they differ.
    Verify {
        /// opportunities or pipeline
        projection: String,
    },
    /// Rebuild a projection from the log into new tables while the live ones keep serving,
    /// then switch over atomically. Interrupted (Ctrl-C), it resumes on the next run.
    Rebuild {
        /// opportunities, pipeline, delegations, activities or contacts
        projection: String,
        /// Throw away an interrupted rebuild's tables and start from the beginning of the log.
        #[arg(long)]
        restart: bool,
        /// Records applied per transaction [default: 10000].
        #[arg(long)]
        batch_size: Option<usize>,
    },
    /// Write a synthetic log of opportunity events (with their accounts) into an empty
    /// deployment, for measuring rebuild and export.
    Generate {
        /// How many opportunity events.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The same seed gives the same deals, stages and amounts.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

pub async fn run(command: Replay, brokers: &str, registry_url: &str, registry_token: Option<&str>, database_url: &str, topics: &Topics) -> anyhow::Result<()> {
    let pool = connect(database_url).await?;
    let replayer = Replayer::new(brokers, registry_url, registry_token, topics.clone(), Arc::new(PgKeyStore::new(pool.clone())))?;
    match command {
        Replay::Events { aggregate, id } => {
            let topic = replayer.topic(&aggregate)?;
            for r in read_topic(brokers, &replayer.codec, &topic).await? {
                let line = match &r.decoded {
                    Ok(Decoded::Event(e)) if id.is_none_or(|id| id == e.envelope.aggregate_id) => event_json(e),
                    Ok(Decoded::Fence(f)) if id.is_none() => json!({"fence_marker": f}),
                    Err(reason) if id.is_none() => json!({"undecodable": reason}),
                    _ => continue,
                };
                print_line(json!({"topic": topic, "partition": r.partition, "offset": r.offset, "record": line}))?;
            }
            Ok(())
        }
        Replay::AsOf { aggregate, id, at, version } => {
            let until = match (at, version) {
                (Some(at), _) => as_of::Until::Instant(at),
                (None, Some(v)) => as_of::Until::Version(v),
                (None, None) => as_of::Until::Now,
            };
            print_line(serde_json::to_string_pretty(&as_of::as_of(&replayer, &aggregate, id, until).await?)?)?;
            Ok(())
        }
        Replay::Lineage { aggregate, id, field } => {
            print_line(serde_json::to_string_pretty(&lineage::lineage(&replayer, &aggregate, id, field.as_deref()).await?)?)?;
            Ok(())
        }
        Replay::Export { from, to, types, format, output } => {
            let window = export::Window { from, to: to.unwrap_or_else(chrono::Utc::now), types };
            anyhow::ensure!(window.from < window.to, "--from must come before --to");
            anyhow::ensure!(
                format != export::Format::Parquet || output.is_some(),
                "--format parquet needs --output <file>: Parquet is a binary file format"
            );
            let out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let started = std::time::Instant::now();
            let written = export::export(&replayer, &window, format, out).await?;
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprintln!("export: {written} events in {secs:.2} s ({:.0} events/s)", written as f64 / secs);
            Ok(())
        }
        Replay::Generate { events, tenant, seed } => {
            let summary = generate::generate(&replayer, events, &tenant, seed).await?;
            eprintln!(
                "generate: {} events of {} opportunities in {:.1} s ({:.0} events/s)",
                summary.events,
                summary.opportunities,
                summary.seconds,
                summary.events as f64 / summary.seconds.max(0.001)
            );
            Ok(())
        }
        Replay::Rebuild { projection, restart, batch_size } => {
            rebuild::rebuild(&replayer, &pool, &projection, restart, batch_size).await.map(|_| ())
        }
        Replay::Verify { projection } => {
            let (replayed, drift) = verify::verify(&replayer, &pool, &projection).await?;
            for d in &drift {
                print_line(json!(d))?;
            }
            if drift.is_empty() {
                eprintln!("verify {projection}: {replayed} replayed from the log; the read model matches");
                Ok(())
            } else {
                anyhow::bail!("verify {projection}: {} differences between the log and the read model ({replayed} replayed)", drift.len())
            }
        }
    }
}

async fn connect(database_url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::PgPool::connect(database_url).await.with_context(|| format!("cannot connect to {database_url}"))
}

/// Prints one line of the answer. A reader that goes away (`| head`) ends the command with
/// the write's error, which `main` takes as a quiet end.
fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
}
