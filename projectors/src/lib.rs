//! Projector workers: each projection is its own consumer group that folds events into
//! PostgreSQL tables, storing its per-partition offsets in the same transaction as the
//! rows it changed.
//!
//! A projection is written as a fold: `evolve` is pure, and the runner loads and stores
//! the rows a whole batch touches in a few set-based statements, so that a projector (and a
//! rebuild over millions of events) is bound by PostgreSQL's bulk-write speed rather than by
//! one round trip per event.

mod accounts;
mod activities;
mod apply;
mod automated_edits;
mod contacts;
mod delegations;
mod leads;
mod opportunities;
mod pipeline;
pub mod quarantine;
pub mod rebuild;
mod runner;

use std::collections::HashMap;
use std::future::Future;

use sqlx::PgConnection;
use tidemark_events::{EventRecord, Topics};
use uuid::Uuid;

pub use accounts::Accounts;
pub use activities::Activities;
pub use automated_edits::AutomatedEdits;
pub use contacts::Contacts;
pub use delegations::Delegations;
pub use leads::Leads;
pub use opportunities::Opportunities;
pub use pipeline::Pipeline;
pub use runner::{run, RunnerConfig};

/// This crate's tables. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Every projection, by name, with the topics it reads: tools that take a projection by
/// name, and monitoring, take the list from here.
pub const PROJECTIONS: [(&str, fn(&Topics) -> Vec<String>); 8] = [
    (Opportunities::NAME, Opportunities::topics),
    (Pipeline::NAME, Pipeline::topics),
    (Delegations::NAME, Delegations::topics),
    (Activities::NAME, Activities::topics),
    (Contacts::NAME, Contacts::topics),
    (Accounts::NAME, Accounts::topics),
    (Leads::NAME, Leads::topics),
    (AutomatedEdits::NAME, AutomatedEdits::topics),
];

/// The names of every projection, in `PROJECTIONS`' order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROJECTIONS.iter().map(|(name, _)| *name)
}

/// A read model built from the log, one row of state per aggregate.
pub trait Projection: Send + Sync + 'static {
    /// Names the consumer group and the rows in `projection_offsets`.
    const NAME: &'static str;
    /// The tables that hold this read model; a rebuild builds copies and swaps them in.
    const TABLES: &'static [&'static str];

    /// What the projection keeps of one aggregate.
    type Row: Clone + Send + Sync + 'static;

    fn topics(topics: &Topics) -> Vec<String>;

    /// The aggregate version a row reflects, for the fold rule.
    fn version(row: &Self::Row) -> i64;

    /// The row after `record`, or why the event cannot apply; `Ok(None)` when the event is
    /// not this projection's business. Pure.
    fn evolve(row: Option<&Self::Row>, record: &EventRecord) -> Result<Option<Self::Row>, String>;

    /// Whether a reader sees a difference between the row before an event and after it (the
    /// version aside): lineage names the read models an event changed by this.
    fn changed(_before: Option<&Self::Row>, _after: &Self::Row) -> bool {
        true
    }

    /// The stored rows of these aggregates (absent ones are left out).
    fn load(db: &mut PgConnection, ids: &[Uuid]) -> impl Future<Output = sqlx::Result<HashMap<Uuid, Self::Row>>> + Send;

    /// Stores what one batch changed, in a few set-based statements.
    fn store(db: &mut PgConnection, changes: &[Change<Self::Row>]) -> impl Future<Output = sqlx::Result<()>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("codec: {0}")]
    Codec(#[from] tidemark_schemas::codec::CodecError),
    #[error("the heartbeat task stopped")]
    Heartbeat,
    #[error("cannot learn where the log ends: {0}")]
    LogEnds(String),
    #[error("reading the log: {0}")]
    Read(#[from] tidemark_log::ReadError),
    #[error("cannot copy index {0}: its definition does not name its table as expected")]
    UnexpectedIndex(String),
}

/// One aggregate's row before a batch (as stored; `None` when new) and after it.
#[derive(Debug, Clone)]
pub struct Change<R> {
    pub id: Uuid,
    pub before: Option<R>,
    pub after: R,
}

/// One column of a batch's new rows, to bind as an array for `UNNEST`.
fn column<R, T>(changes: &[Change<R>], value: impl Fn(&R) -> T) -> Vec<T> {
    changes.iter().map(|c| value(&c.after)).collect()
}
