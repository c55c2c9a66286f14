//! Projector workers: each projection is its own consumer group that folds events into
//! PostgreSQL tables, storing its per-partition offsets in the same transaction as the
//! rows it changed.

mod opportunities;
mod pipeline;
mod runner;

use std::future::Future;

use sqlx::PgConnection;
use tidemark_events::{EventRecord, Topics};
use uuid::Uuid;

pub use opportunities::Opportunities;
pub use pipeline::Pipeline;
pub use runner::{run, RunnerConfig};

/// This crate's tables. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// A read model built from the log.
pub trait Projection: Send + Sync + 'static {
    /// Names the consumer group and the rows in `projection_offsets`.
    const NAME: &'static str;

    fn topics(topics: &Topics) -> Vec<String>;

    /// The aggregate version this read model reflects (0 when it has none), for the fold rule.
    fn applied_version(&self, db: &mut PgConnection, aggregate_id: Uuid) -> impl Future<Output = sqlx::Result<i64>> + Send;

    /// Applies one event that the fold rule accepted.
    fn apply(&self, db: &mut PgConnection, record: &EventRecord) -> impl Future<Output = sqlx::Result<()>> + Send;
}
