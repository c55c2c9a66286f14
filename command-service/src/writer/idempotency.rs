//! Idempotency-Keys: the outcome of every command of the last 24 hours, from the log and
//! from this writer, so that a retry gets its first answer; and one command at a time per
//! key, so that two retries racing each other append once.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex as SyncMutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tidemark_events::{CommandMeta, Envelope};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::{AppendedEvent, CommandRequest};

/// How long an idempotency key is remembered after its command, as payment APIs do.
const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);

/// Whether a command recorded at `recorded_at` may still be retried with its key.
fn retryable(recorded_at: DateTime<Utc>) -> bool {
    Utc::now() - recorded_at <= IDEMPOTENCY_WINDOW
}

/// The result of an accepted command; a retry with the same Idempotency-Key gets it again.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub created: bool,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub events: Vec<AppendedEvent>,
    pub replayed: bool,
    /// The request's content; `None` for outcomes learnt from the log.
    pub(super) fingerprint: Option<u64>,
    /// When its first event was recorded: the key is forgotten a window after.
    pub(super) recorded_at: DateTime<Utc>,
}

/// Identifies a request's content, to refuse a key reused for another request.
pub fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// The id of an aggregate that a command with an Idempotency-Key creates: it follows from
/// the key's scope, so that a retry targets the same aggregate (and finds its outcome).
pub fn new_aggregate_id(meta: &CommandMeta, aggregate_type: &str) -> Uuid {
    let scope = [meta.tenant_id.as_str(), meta.actor_id.as_str(), aggregate_type, meta.command_id.as_str()].join("\0");
    Uuid::new_v5(&Uuid::NAMESPACE_OID, scope.as_bytes())
}

/// What an Idempotency-Key means: the key within its tenant, the principal who sent it and
/// the aggregate it targets. Another user's equal key is another command, so a replay
/// answers only the principal of the first request, and nobody can take a key first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct IdempotencyKey {
    tenant_id: String,
    actor_id: String,
    aggregate_id: Uuid,
    command_id: String,
}

impl IdempotencyKey {
    pub(super) fn of_request(request: &CommandRequest) -> IdempotencyKey {
        let meta = &request.meta;
        IdempotencyKey { tenant_id: meta.tenant_id.clone(), actor_id: meta.actor_id.clone(), aggregate_id: request.aggregate_id, command_id: meta.command_id.clone() }
    }

    fn of_event(env: &Envelope) -> IdempotencyKey {
        IdempotencyKey { tenant_id: env.tenant_id.clone(), actor_id: env.actor_id.clone(), aggregate_id: env.aggregate_id, command_id: env.command_id.clone() }
    }
}

#[derive(Default)]
pub(super) struct Outcomes {
    /// By key, from the log and from this writer.
    outcomes: SyncMutex<HashMap<IdempotencyKey, Outcome>>,
    /// Serializes requests that carry the same key.
    in_flight: SyncMutex<HashMap<IdempotencyKey, Arc<Mutex<()>>>>,
}

impl Outcomes {
    /// Adds a folded event to its command's outcome, unless the command is too old to retry.
    pub(super) fn remember(&self, env: &Envelope, position: AppendedEvent) {
        if !retryable(env.recorded_at) {
            return;
        }
        let mut outcomes = self.outcomes.lock().expect("not poisoned");
        let outcome = outcomes.entry(IdempotencyKey::of_event(env)).or_insert_with(|| Outcome {
            created: env.aggregate_version == 1,
            aggregate_id: env.aggregate_id,
            version: env.aggregate_version,
            events: Vec::new(),
            replayed: false,
            fingerprint: None,
            recorded_at: env.recorded_at,
        });
        outcome.version = outcome.version.max(env.aggregate_version);
        outcome.events.push(position);
    }

    pub(super) fn get(&self, key: &IdempotencyKey) -> Option<Outcome> {
        self.outcomes.lock().expect("not poisoned").get(key).cloned()
    }

    pub(super) fn contains(&self, key: &IdempotencyKey) -> bool {
        self.outcomes.lock().expect("not poisoned").contains_key(key)
    }

    /// The outcome of the command just committed under `key`, now marked with its request's
    /// content.
    pub(super) fn committed(&self, key: &IdempotencyKey, fingerprint: u64) -> Outcome {
        let mut outcomes = self.outcomes.lock().expect("not poisoned");
        let outcome = outcomes.get_mut(key).expect("the fold remembered the outcome");
        outcome.fingerprint = Some(fingerprint);
        outcome.clone()
    }

    /// Forgets the outcomes of commands too old to retry.
    pub(super) fn forget_expired(&self) {
        self.outcomes.lock().expect("not poisoned").retain(|_, o| retryable(o.recorded_at));
    }

    /// The outcomes of commands on one partition, as a snapshot of it keeps them.
    pub(super) fn of_partition(&self, topic: &str, partition: i32) -> Vec<Remembered> {
        let outcomes = self.outcomes.lock().expect("not poisoned");
        outcomes
            .iter()
            .filter(|(_, o)| o.events.first().is_some_and(|e| e.topic == topic && e.partition == partition))
            .map(|(key, o)| Remembered {
                key: key.clone(),
                created: o.created,
                version: o.version,
                events: o.events.iter().map(|e| (e.event_type.clone(), e.offset)).collect(),
                fingerprint: o.fingerprint,
                recorded_at: o.recorded_at,
            })
            .collect()
    }

    /// Takes back the outcomes a snapshot of the partition kept, but those too old to retry.
    pub(super) fn restore(&self, topic: &str, partition: i32, remembered: Vec<Remembered>) {
        let mut outcomes = self.outcomes.lock().expect("not poisoned");
        for r in remembered.into_iter().filter(|r| retryable(r.recorded_at)) {
            let events = r.events.into_iter().map(|(event_type, offset)| AppendedEvent { event_type, topic: topic.to_string(), partition, offset }).collect();
            let outcome = Outcome {
                created: r.created,
                aggregate_id: r.key.aggregate_id,
                version: r.version,
                events,
                replayed: false,
                fingerprint: r.fingerprint,
                recorded_at: r.recorded_at,
            };
            outcomes.insert(r.key, outcome);
        }
    }

    /// Waits until no other request with `key` is in flight; holds it until dropped.
    pub(super) async fn lock(&self, key: &IdempotencyKey) -> OwnedMutexGuard<()> {
        let slot = {
            let mut in_flight = self.in_flight.lock().expect("not poisoned");
            in_flight.retain(|_, slot| Arc::strong_count(slot) > 1);
            in_flight.entry(key.clone()).or_default().clone()
        };
        slot.lock_owned().await
    }
}

/// An outcome as a snapshot keeps it: its events' positions are in the snapshot's partition.
#[derive(Serialize, Deserialize)]
pub(super) struct Remembered {
    key: IdempotencyKey,
    created: bool,
    version: i64,
    events: Vec<(String, i64)>,
    fingerprint: Option<u64>,
    recorded_at: DateTime<Utc>,
}
