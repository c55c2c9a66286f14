//! Quote documents: the PDF that a customer gets for an approved quote revision.
//!
//! A document is rendered once per revision, by the consumer that folds the approval
//! (`tidemark_projectors`' `quote_documents`), or on the first request for it when it is
//! missing, and kept in `quote_documents`. Both render through `render` and keep through
//! `keep`, which stores nothing twice: a retried batch or two racing requests leave one
//! document per revision.
//!
//! The people of the customer that a document names are looked up when it is rendered, under
//! a lock on their keys (`customer`), and an erasure deletes every kept document that names
//! the person (`forget_person`). So no document rendered after an erasure names the person.

mod render;
mod store;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidemark_events::quote::Quote;
use uuid::Uuid;

pub use render::render;
pub use store::{customer, forget_people, keep, kept, migrator, Customer, Kept, RenderedFor};

/// One event that a document was made from, for its provenance footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_version: i64,
    pub actor_id: String,
    pub recorded_at: DateTime<Utc>,
    pub code_version: String,
}

impl EventRef {
    pub fn of(record: &tidemark_events::EventRecord) -> EventRef {
        let env = &record.envelope;
        EventRef {
            event_id: env.event_id,
            event_type: env.event_type.clone(),
            aggregate_version: env.aggregate_version,
            actor_id: env.actor_id.clone(),
            recorded_at: env.recorded_at,
            code_version: env.code_version.clone(),
        }
    }
}

/// Everything a document shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub opportunity_id: Uuid,
    pub opportunity_name: String,
    pub owner_id: String,
    /// The quote as it stood when this revision was approved.
    pub quote: Quote,
    pub approved_at: DateTime<Utc>,
    pub customer: Customer,
    /// The events the revision was made from, oldest first.
    pub events: Vec<EventRef>,
    /// The build that rendered it.
    pub code_version: String,
}

static CODE_VERSION: OnceLock<String> = OnceLock::new();

/// Names the build that renders documents, once at start; their footers show it.
pub fn set_code_version(version: &str) {
    let _ = CODE_VERSION.set(version.to_string());
}

pub fn code_version() -> &'static str {
    CODE_VERSION.get().map_or("unknown", String::as_str)
}
