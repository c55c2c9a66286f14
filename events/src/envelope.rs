//! The event envelope: provenance written once, when the event is decided, never inferred later.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

crate::text_enum! {
    pub enum ActorKind {
        User => "user",
        Automation => "automation",
        System => "system",
    }
}

/// Who asked for a change, through which client, under which ids. The command shell
/// builds this once per request; every event that the command produces copies it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandMeta {
    pub command_id: String,
    pub tenant_id: String,
    pub actor_id: String,
    pub actor_kind: ActorKind,
    pub client_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub policy_version: String,
    pub code_version: String,
    pub rationale: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub tenant_id: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor_id: String,
    pub actor_kind: ActorKind,
    pub client_id: String,
    pub policy_version: String,
    pub code_version: String,
    pub writer_epoch: i64,
    pub rationale: Option<String>,
}

/// Where an aggregate's next event goes, and under which writer epoch.
#[derive(Debug, Clone, Copy)]
pub struct StreamPosition<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub writer_epoch: i64,
}

impl Envelope {
    pub fn new(
        meta: &CommandMeta,
        at: StreamPosition<'_>,
        event_type: &str,
        recorded_at: DateTime<Utc>,
    ) -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            tenant_id: meta.tenant_id.clone(),
            aggregate_type: at.aggregate_type.to_string(),
            aggregate_id: at.aggregate_id,
            aggregate_version: at.version,
            event_type: event_type.to_string(),
            schema_version: 1,
            occurred_at: meta.received_at,
            recorded_at,
            command_id: meta.command_id.clone(),
            correlation_id: meta.correlation_id.clone(),
            causation_id: meta.causation_id.clone(),
            actor_id: meta.actor_id.clone(),
            actor_kind: meta.actor_kind,
            client_id: meta.client_id.clone(),
            policy_version: meta.policy_version.clone(),
            code_version: meta.code_version.clone(),
            writer_epoch: at.writer_epoch,
            rationale: meta.rationale.clone(),
        }
    }
}
