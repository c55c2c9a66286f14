//! `tidemark replay lineage`: where every value of an aggregate came from. Each event that
//! applied, in order, with its provenance (the whole envelope and its place in the log) and
//! the fields it changed, from and to. With a field, only the events that set that field:
//! the field's history. Computed with the same fold rule and `evolve` as the services.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tidemark_events::partition::partition_for;
use uuid::Uuid;

use crate::{fold, read_partitions, withhold_personal, Replayer};

/// The top-level fields whose values differ between two states, with both values. The
/// version changes with every event and says nothing of its own.
pub fn changes(before: &Value, after: &Value) -> BTreeMap<String, (Value, Value)> {
    let empty = serde_json::Map::new();
    let (before, after) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "version")
        .filter_map(|(name, to)| {
            let from = before.get(name).cloned().unwrap_or(Value::Null);
            (from != *to).then(|| (name.clone(), (from, to.clone())))
        })
        .collect()
}

pub async fn lineage(replayer: &Replayer, aggregate: &str, id: Uuid, field: Option<&str>) -> anyhow::Result<Value> {
    let topic = replayer.topic(aggregate)?;
    let partitions = crate::partition_count(&replayer.brokers, &topic)?;
    let records = read_partitions(&replayer.brokers, &replayer.codec, &topic, Some(partition_for(id.to_string().as_bytes(), partitions))).await?;
    let (states, applied) = fold::fold_log(&records, |_, event| event.envelope.aggregate_id == id);
    let folded = states.get(&id).ok_or_else(|| anyhow::anyhow!("no {aggregate} {id} in the log"))?;
    let events: Vec<_> = applied[&id].iter().map(|(_, e)| *e).collect();

    // Personal fields show that they changed, not what they held.
    let personal: Vec<&str> = events.iter().flat_map(|e| tidemark_events::personal_fields(&e.envelope.event_type)).copied().collect();
    let mut state: Option<tidemark_events::Aggregate> = None;
    let mut chain = Vec::new();
    for (record, event) in &applied[&id] {
        let before = state.as_ref().map_or(Value::Null, |s| json!(s));
        let next = tidemark_events::evolve(state.take(), &event.event);
        let changed: serde_json::Map<String, Value> = changes(&before, &json!(next))
            .into_iter()
            .map(|(name, (from, to))| match personal.contains(&name.as_str()) {
                true => (name, json!({"from": null, "to": null, "personal": "withheld"})),
                false => (name, json!({"from": from, "to": to})),
            })
            .collect();
        state = Some(next);
        if field.is_some_and(|f| changed.get(f).is_none()) {
            continue;
        }
        let env = &event.envelope;
        chain.push(json!({
            "event_id": env.event_id, "event_type": env.event_type, "aggregate_version": env.aggregate_version,
            "occurred_at": env.occurred_at, "recorded_at": env.recorded_at,
            "topic": topic, "partition": record.partition, "offset": record.offset,
            "command_id": env.command_id, "actor_id": env.actor_id, "actor_kind": env.actor_kind, "client_id": env.client_id,
            "policy_version": env.policy_version, "code_version": env.code_version, "writer_epoch": env.writer_epoch,
            "correlation_id": env.correlation_id, "causation_id": env.causation_id, "rationale": env.rationale,
            "changed": changed,
        }));
    }
    let mut current = json!(folded.state);
    withhold_personal(&mut current, &events);
    let value = match field {
        Some(f) => current.get(f).cloned().ok_or_else(|| anyhow::anyhow!("a {aggregate} has no field '{f}'"))?,
        None => current,
    };
    Ok(json!({
        "aggregate_type": aggregate, "aggregate_id": id, "tenant_id": folded.tenant_id, "version": folded.version,
        "field": field, "value": value, "chain": chain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_field_that_moved_and_leave_out_the_version() {
        let before = json!({"amount": {"value": "100.00"}, "stage": "Prospecting", "version": 1});
        let after = json!({"amount": {"value": "250.00"}, "stage": "Prospecting", "version": 2, "synced_quote": "q"});
        let found = changes(&before, &after);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["amount", "synced_quote"]);
        assert_eq!(found["synced_quote"], (Value::Null, json!("q")));
        assert_eq!(changes(&Value::Null, &json!({"name": "Acme"}))["name"], (Value::Null, json!("Acme")));
    }
}
