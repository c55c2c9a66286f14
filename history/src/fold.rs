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

/// The fold of one topic's records, fed one at a time (each partition's in offset order).
#[derive(Default)]
pub struct Fold {
    pub states: HashMap<Uuid, Folded>,
    folds: HashMap<i32, PartitionFold>,
}

impl Fold {
    /// Folds one record, applying its event only if `keep` accepts it (and, like every
    /// reader, only if the fold rule does); returns the event if it was applied.
    pub fn apply<'r>(&mut self, record: &'r LogRecord, keep: impl Fn(&LogRecord, &EventRecord) -> bool) -> Option<&'r EventRecord> {
        let fold = self.folds.entry(record.partition).or_default();
        match &record.decoded {
            Ok(Decoded::Fence(marker)) => fold.observe_fence(marker.writer_epoch),
            Ok(Decoded::Event(event)) if keep(record, event) => {
                let env = &event.envelope;
                let current = self.states.get(&env.aggregate_id).map_or(0, |f| f.version);
                if fold.judge(env.writer_epoch, current, env.aggregate_version) == Verdict::Apply {
                    let previous = self.states.remove(&env.aggregate_id).map(|f| f.state);
                    let state = tidemark_events::evolve(previous, &event.event);
                    self.states.insert(env.aggregate_id, Folded { tenant_id: env.tenant_id.clone(), version: env.aggregate_version, state });
                    return Some(event);
                }
            }
            // Undecodable records and events `keep` refuses change nothing.
            _ => {}
        }
        None
    }
}

/// Folds `records` (one topic, in partition and offset order) into every aggregate's
/// state, applying only events that `keep` accepts. Returns the states and, per aggregate,
/// the events that were applied.
pub fn fold_log<'a>(
    records: &'a [LogRecord],
    keep: impl Fn(&LogRecord, &EventRecord) -> bool,
) -> (HashMap<Uuid, Folded>, HashMap<Uuid, Vec<(&'a LogRecord, &'a EventRecord)>>) {
    let mut fold = Fold::default();
    let mut applied: HashMap<Uuid, Vec<(&LogRecord, &EventRecord)>> = HashMap::new();
    for record in records {
        if let Some(event) = fold.apply(record, &keep) {
            applied.entry(event.envelope.aggregate_id).or_default().push((record, event));
        }
    }
    (fold.states, applied)
}
