//! Folding the log into aggregate states, as every reader does: the shared fold rule
//! decides what applies, the domain's `evolve` what it does.

use std::collections::HashMap;

use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_events::{AnyAggregate, EventRecord};
use tidemark_schemas::Decoded;
use uuid::Uuid;

use crate::LogRecord;

/// One aggregate as folded from the log: its tenant, state and version.
#[derive(Debug, Clone)]
pub struct Folded {
    pub tenant_id: String,
    pub version: i64,
    pub state: AnyAggregate,
}

/// Folds `records` (one topic, in partition and offset order) into every aggregate's
/// state, applying only events that `keep` accepts (and, like every reader, only those the
/// fold rule accepts). Returns the states and, per aggregate, the events that were applied.
pub fn fold_log<'a>(
    records: &'a [LogRecord],
    keep: impl Fn(&LogRecord, &EventRecord) -> bool,
) -> (HashMap<Uuid, Folded>, HashMap<Uuid, Vec<(&'a LogRecord, &'a EventRecord)>>) {
    let mut states: HashMap<Uuid, Folded> = HashMap::new();
    let mut applied: HashMap<Uuid, Vec<(&LogRecord, &EventRecord)>> = HashMap::new();
    let mut folds: HashMap<i32, PartitionFold> = HashMap::new();
    for record in records {
        let fold = folds.entry(record.partition).or_default();
        match &record.decoded {
            Ok(Decoded::Fence(marker)) => fold.observe_fence(marker.writer_epoch),
            Ok(Decoded::Event(event)) if keep(record, event) => {
                let env = &event.envelope;
                let current = states.get(&env.aggregate_id).map_or(0, |f| f.version);
                if fold.judge(env.writer_epoch, current, env.aggregate_version) == Verdict::Apply {
                    let previous = states.remove(&env.aggregate_id).map(|f| f.state);
                    let state = tidemark_events::evolve(previous, &event.event);
                    states.insert(env.aggregate_id, Folded { tenant_id: env.tenant_id.clone(), version: env.aggregate_version, state });
                    applied.entry(env.aggregate_id).or_default().push((record, event));
                }
            }
            // Undecodable records and events `keep` refuses change nothing.
            _ => {}
        }
    }
    (states, applied)
}
