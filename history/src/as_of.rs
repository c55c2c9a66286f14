//! `tidemark replay as-of`: an aggregate as it stood at an instant or version, with the
//! events that led there, computed with the same fold rule and `evolve` as the services.

use chrono::{DateTime, Utc};
use serde_json::json;
use tidemark_events::partition::partition_for;
use uuid::Uuid;

use crate::{event_json, fold, read_partitions, Replayer};

pub enum Until {
    Instant(DateTime<Utc>),
    Version(i64),
    Now,
}

pub async fn as_of(replayer: &Replayer, aggregate: &str, id: Uuid, until: Until) -> anyhow::Result<serde_json::Value> {
    let topic = replayer.topic(aggregate)?;
    // An aggregate lives in one partition: read just that one.
    let partitions = crate::partition_count(&replayer.brokers, &topic)?;
    let partition = partition_for(id.to_string().as_bytes(), partitions);
    let records = read_partitions(&replayer.brokers, &replayer.codec, &topic, Some(partition), Some(&[id])).await?;
    let (states, applied) = fold::fold_log(&records, |_, event| {
        event.envelope.aggregate_id == id
            && match until {
                Until::Instant(at) => event.envelope.recorded_at <= at,
                Until::Version(v) => event.envelope.aggregate_version <= v,
                Until::Now => true,
            }
    });
    let folded = states.get(&id).ok_or_else(|| anyhow::anyhow!("no {aggregate} {id} in the log at that point"))?;
    let mut state = json!(folded.state);
    if let Some(fields) = state.as_object_mut() {
        crate::WRITER_ONLY.iter().for_each(|f| drop(fields.remove(*f)));
    }
    crate::withhold_personal(&mut state, &applied[&id].iter().map(|(_, e)| *e).collect::<Vec<_>>());
    let events: Vec<_> = applied[&id]
        .iter()
        .map(|(r, e)| json!({"topic": topic, "partition": r.partition, "offset": r.offset, "event": event_json(e)}))
        .collect();
    Ok(json!({
        "aggregate_type": aggregate,
        "aggregate_id": id,
        "tenant_id": folded.tenant_id,
        "version": folded.version,
        "as_of": match until { Until::Instant(at) => json!(at), Until::Version(v) => json!({"version": v}), Until::Now => json!("now") },
        "state": state,
        "events": events,
    }))
}
