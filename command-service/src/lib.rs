//! The command API: authenticate the bearer token, validate, decide with the pure domain
//! core, and append to Kafka in transactions as the single writer of the shards this
//! instance owns; commands for the others are forwarded to their owners.

mod activities;
mod api;
mod appender;
mod contacts;
mod delegations;
mod engagements;
mod erasure;
pub mod forward;
mod leads;
mod quotes;
mod sync;
pub mod writer;

pub use api::router;
pub use erasure::finish_erasures;
pub use leads::route_leads;
pub use writer::{StartError, Writer, WriterConfig};

/// This crate's tables. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
