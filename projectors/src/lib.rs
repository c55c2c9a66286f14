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
mod engagements;
mod leads;
mod opportunities;
mod pipeline;
pub mod quarantine;
pub mod quote_documents;
pub mod quotes;
pub mod rebuild;
mod runner;
pub mod sequences;
pub mod service;

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
pub use engagements::Engagements;
pub use leads::Leads;
pub use opportunities::Opportunities;
pub use pipeline::Pipeline;
pub use quote_documents::QuoteDocuments;
pub use sequences::Sequences;
pub use apply::{fold_record, Folded};
pub use runner::{run, RunnerConfig};

/// This crate's tables. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// An instant as PostgreSQL keeps it (to the microsecond): a row folded from the log then
/// equals the row stored, which `replay verify` relies on.
pub(crate) fn as_stored(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(at, 6)
}

/// Something done with each projection, by its type: spawning its runner, rebuilding it,
/// running it over one aggregate's events.
pub trait EachProjection {
    fn visit<P: Projection>(&mut self);
}

/// Every projection, in one list: the runner, the replay tools and monitoring all take it
/// from here, so a new projection is one line here (and its module).
pub fn for_each(each: &mut impl EachProjection) {
    each.visit::<Opportunities>();
    each.visit::<Pipeline>();
    each.visit::<Delegations>();
    each.visit::<Activities>();
    each.visit::<Contacts>();
    each.visit::<Accounts>();
    each.visit::<Leads>();
    each.visit::<AutomatedEdits>();
    each.visit::<QuoteDocuments>();
    each.visit::<Sequences>();
    each.visit::<Engagements>();
}

/// A projection as tools that take one by name see it.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub name: &'static str,
    pub tables: &'static [&'static str],
    pub topics: fn(&Topics) -> Vec<String>,
}

/// Every projection, described, in `for_each`'s order.
pub fn described() -> Vec<Described> {
    struct Describe(Vec<Described>);
    impl EachProjection for Describe {
        fn visit<P: Projection>(&mut self) {
            self.0.push(Described { name: P::NAME, tables: P::TABLES, topics: P::topics });
        }
    }
    let mut describe = Describe(Vec::new());
    for_each(&mut describe);
    describe.0
}

/// The names of every projection, in `for_each`'s order.
pub fn names() -> impl Iterator<Item = &'static str> {
    described().into_iter().map(|d| d.name)
}

/// A job for the one projection that a tool names.
pub trait Named {
    type Output;
    fn run<P: Projection>(self) -> Self::Output;
}

/// Runs `job` for the projection called `name`; `Err` naming every projection when none is.
pub fn with_named<N: Named>(name: &str, job: N) -> Result<N::Output, String> {
    struct Find<'n, N: Named> {
        name: &'n str,
        job: Option<N>,
        output: Option<N::Output>,
    }
    impl<N: Named> EachProjection for Find<'_, N> {
        fn visit<P: Projection>(&mut self) {
            if P::NAME == self.name {
                self.output = self.job.take().map(N::run::<P>);
            }
        }
    }
    let mut find = Find { name, job: Some(job), output: None };
    for_each(&mut find);
    find.output.ok_or_else(|| format!("no projection '{name}'; there are {}", names().collect::<Vec<_>>().join(", ")))
}

/// `Err` naming every projection when none is called `name`.
pub fn known(name: &str) -> Result<(), String> {
    struct Nothing;
    impl Named for Nothing {
        type Output = ();
        fn run<P: Projection>(self) {}
    }
    with_named(name, Nothing)
}

/// A read model built from the log, one row of state per aggregate.
pub trait Projection: Send + Sync + 'static {
    /// Names the consumer group and the rows in `projection_offsets`.
    const NAME: &'static str;
    /// The tables that hold this read model; a rebuild builds copies and swaps them in.
    const TABLES: &'static [&'static str];

    /// What the projection keeps of one aggregate.
    type Row: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;

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

    /// Whether a stored row is the one folding the log gives: `replay verify` compares by this.
    fn agrees(stored: &Self::Row, folded: &Self::Row) -> bool {
        stored == folded
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
