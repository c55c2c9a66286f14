//! `tidemark replay …`: the commands that read the log itself, the system of record,
//! rather than any read model. What they compute is `tidemark_history`'s; here they parse
//! their arguments, show progress and print.

mod generate;
mod rebuild;

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use tidemark_events::Topics;
use tidemark_history::{as_of, each_record, event_json, export, lineage, verify, Replayer};
use tidemark_privacy::PgKeyStore;
use tidemark_schemas::Decoded;

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
        /// jsonl, csv or parquet
        #[arg(long, default_value = "jsonl")]
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
        /// Records applied per transaction [default: 100000].
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
            // One partition after another, each streamed in offset order.
            for partition in 0..tidemark_history::partition_count(brokers, &topic)? {
                each_record(brokers, &replayer.codec, &topic, Some(partition), |r| {
                    let line = match &r.decoded {
                        Ok(Decoded::Event(e)) if id.is_none_or(|id| id == e.envelope.aggregate_id) => event_json(e),
                        Ok(Decoded::Fence(f)) if id.is_none() => json!({"fence_marker": f}),
                        Err(reason) if id.is_none() => json!({"undecodable": reason}),
                        _ => return Ok(()),
                    };
                    Ok(print_line(json!({"topic": topic, "partition": r.partition, "offset": r.offset, "record": line}))?)
                })
                .await?;
            }
            Ok(())
        }
        Replay::AsOf { aggregate, id, at, version } => {
            let until = match (at, version) {
                (Some(at), _) => as_of::Until::Instant(at),
                (None, Some(v)) => as_of::Until::Version(v),
                (None, None) => as_of::Until::Now,
            };
            let started = std::time::Instant::now();
            let found = as_of::as_of(&replayer, &aggregate, id, until).await?;
            print_line(serde_json::to_string_pretty(&found)?)?;
            eprintln!("as-of: version {} of {aggregate} {id} in {:.1} s; {}", found["version"], started.elapsed().as_secs_f64(), peak_memory());
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
            eprintln!("export: {written} events in {secs:.2} s ({:.0} events/s); {}", written as f64 / secs, peak_memory());
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
            rebuild::rebuild(&replayer, &pool, &projection, restart, batch_size).await
        }
        Replay::Verify { projection } => {
            let started = std::time::Instant::now();
            let (replayed, drift) = verify::verify(&replayer, &pool, &projection).await?;
            let how = format!("in {:.1} s; {}", started.elapsed().as_secs_f64(), peak_memory());
            for d in &drift {
                print_line(json!(d))?;
            }
            if drift.is_empty() {
                eprintln!("verify {projection}: {replayed} replayed from the log {how}; the read model matches");
                Ok(())
            } else {
                anyhow::bail!("verify {projection}: {} differences between the log and the read model ({replayed} replayed {how})", drift.len())
            }
        }
    }
}

async fn connect(database_url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::PgPool::connect(database_url).await.with_context(|| format!("cannot connect to {database_url}"))
}

/// The most memory this process has held so far (its peak resident set), as Linux counts it.
fn peak_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok());
    kb.map_or_else(|| "peak memory unknown".into(), |kb| format!("peak memory {} MB", kb / 1024))
}

/// Prints one line of the answer. A reader that goes away (`| head`) ends the command with
/// the write's error, which `main` takes as a quiet end.
fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
}
