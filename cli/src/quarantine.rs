//! `tidemark quarantine`: the operator's tool for records that a projection could not
//! decode or apply. It reads and writes the database directly, under the rules the query
//! API's `/v1/operations/quarantine` applies (`tidemark_projectors::quarantine`).

use std::io::Write;

use anyhow::Context;
use tidemark_projectors::quarantine::{self, Filter, Quarantined};

#[derive(Debug, clap::Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined records, newest first: position, the aggregate they block, why, and
    /// how they were resolved.
    List {
        /// Only this projection's records.
        #[arg(long)]
        projection: Option<String>,
        /// Only records nobody has resolved.
        #[arg(long)]
        open: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Skip a quarantined record: the writer and every projection fold past it from now on.
    Skip {
        /// The entry's id, from `list`.
        id: i64,
        /// Why folding past it is right; kept with the decision.
        #[arg(long)]
        reason: String,
        /// Who decides [default: the operating-system user, as os:<name>].
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(command: QuarantineCommand, database_url: &str) -> anyhow::Result<()> {
    let pool = crate::prepare_database(database_url).await?;
    let mut out = std::io::stdout().lock();
    match command {
        QuarantineCommand::List { projection, open, limit, json } => {
            if let Some(name) = &projection {
                tidemark_projectors::known(name).map_err(anyhow::Error::msg)?;
            }
            let records = quarantine::list(&pool, &Filter { projection, open, limit }).await.context("listing the quarantine")?;
            if json {
                for record in &records {
                    writeln!(out, "{}", serde_json::to_string(record)?)?;
                }
            } else {
                print_table(&mut out, &records)?;
            }
        }
        QuarantineCommand::Skip { id, reason, by } => {
            let by = by.unwrap_or_else(|| format!("os:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())));
            let entries = quarantine::skip(&pool, id, &by, &reason).await?;
            writeln!(out, "skipped {}/{}@{} for {} projection(s); the writer and the projections fold past it", entries[0].topic, entries[0].partition, entries[0].offset, entries.len())?;
            print_table(&mut out, &entries)?;
        }
    }
    Ok(())
}

fn print_table(out: &mut impl Write, records: &[Quarantined]) -> std::io::Result<()> {
    if records.is_empty() {
        return writeln!(out, "nothing is quarantined");
    }
    writeln!(out, "{:>6}  {:<16} {:<36} {:<38} {:<8} reason", "id", "projection", "position", "aggregate", "state")?;
    for r in records {
        let position = format!("{}/{}@{}", r.topic, r.partition, r.offset);
        let state = if r.skip.is_some() { "skipped" } else { "open" };
        writeln!(out, "{:>6}  {:<16} {:<36} {:<38} {:<8} {}", r.id, r.projection, position, r.aggregate_id.as_deref().unwrap_or("-"), state, r.reason)?;
        if let Some(skip) = &r.skip {
            writeln!(out, "{:>6}  skipped by {} at {}: {}", "", skip.skipped_by, skip.skipped_at.to_rfc3339(), skip.reason)?;
        }
    }
    Ok(())
}
