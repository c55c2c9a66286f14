//! `tidemark replay lineage` and the auditors' lineage API: where every value of an aggregate
//! came from. Each event that applied, in order, with its provenance (the whole envelope and
//! its place in the log), the values it changed (from and to), the earlier events whose
//! values it changed in turn (upstream: an approval builds on the submission, which builds
//! on the revision), and the read models whose rows it changed (downstream). With a field,
//! only the events that set that field: the field's history. Computed with the same fold rule
//! and `evolve` as the services and projectors.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use tidemark_events::partition::partition_for;
use tidemark_events::EventRecord;
use tidemark_projectors::{EachProjection, Projection};
use uuid::Uuid;

use crate::{fold, read_partitions, withhold_personal, LogRecord, Replayer};

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("no aggregate type '{0}'; try account, opportunity, delegation, activity, contact or lead")]
    UnknownAggregate(String),
    #[error("no {0} {1} in the log")]
    NotFound(String, Uuid),
    #[error("a {0} has no field '{1}'")]
    NoField(String, String),
    #[error("reading the log: {0:#}")]
    Log(#[from] anyhow::Error),
}

/// The values of a state, by path: top-level fields by name; the records of a list whose
/// records have ids, by `<list>.<id>.<field>` (a quote's status is `quotes.<id>.status`).
/// Anything else (an amount, a list of lines) is one value.
pub fn values(state: &Value) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for (name, value) in state.as_object().into_iter().flatten() {
        match value.as_array().filter(|items| !items.is_empty() && items.iter().all(|i| i.get("id").is_some_and(Value::is_string))) {
            Some(records) => {
                for record in records {
                    let id = record["id"].as_str().unwrap_or_default();
                    for (field, v) in record.as_object().into_iter().flatten() {
                        found.insert(format!("{name}.{id}.{field}"), v.clone());
                    }
                }
            }
            None => {
                found.insert(name.clone(), value.clone());
            }
        }
    }
    found.remove("version"); // changes with every event and says nothing of its own
    for field in crate::WRITER_ONLY {
        found.remove(*field);
    }
    found
}

/// The values whose paths differ between two states (as `values` gives them), with both values.
fn changes(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> BTreeMap<String, (Value, Value)> {
    after
        .iter()
        .filter_map(|(path, to)| {
            let from = before.get(path).cloned().unwrap_or(Value::Null);
            (from != *to).then(|| (path.clone(), (from, to.clone())))
        })
        .collect()
}

/// Whether `path` is `field` or lies within it (`quotes.<id>.status` within `quotes.<id>`).
fn within(path: &str, field: &str) -> bool {
    path == field || path.strip_prefix(field).is_some_and(|rest| rest.starts_with('.'))
}

/// The read models whose rows each event changed: every projection, run over the aggregate's
/// events as its projector runs over them (a projection keeps one row per aggregate).
fn read_models(events: &[&EventRecord]) -> Vec<Vec<Value>> {
    struct Run<'a> {
        events: &'a [&'a EventRecord],
        found: Vec<Vec<Value>>,
    }
    impl EachProjection for Run<'_> {
        fn visit<P: Projection>(&mut self) {
            let mut row: Option<P::Row> = None;
            for (event, found) in self.events.iter().zip(self.found.iter_mut()) {
                if let Ok(Some(after)) = P::evolve(row.as_ref(), event) {
                    if P::changed(row.as_ref(), &after) {
                        found.push(json!({"projection": P::NAME, "tables": P::TABLES}));
                    }
                    row = Some(after);
                }
            }
        }
    }
    let mut run = Run { events, found: vec![Vec::new(); events.len()] };
    tidemark_projectors::for_each(&mut run);
    run.found
}

/// The lineage of one aggregate, reading only its partition of the log.
pub async fn lineage(replayer: &Replayer, aggregate: &str, id: Uuid, field: Option<&str>) -> Result<Value, LineageError> {
    let topic = replayer.topics.for_aggregate(aggregate).ok_or_else(|| LineageError::UnknownAggregate(aggregate.to_string()))?.to_string();
    let partitions = crate::partition_count(&replayer.brokers, &topic)?;
    let records = read_partitions(&replayer.brokers, &replayer.codec, &topic, Some(partition_for(id.to_string().as_bytes(), partitions)), Some(&[id])).await?;
    lineage_in(&records, (&topic, aggregate), id, &field.into_iter().collect::<Vec<_>>())
}

/// The lineage of one aggregate in records already read: with `fields`, only the events that
/// set one of them.
pub fn lineage_in(records: &[LogRecord], (topic, aggregate): (&str, &str), id: Uuid, fields: &[&str]) -> Result<Value, LineageError> {
    let (states, applied) = fold::fold_log(records, |_, event| event.envelope.aggregate_id == id);
    let folded = states.get(&id).ok_or_else(|| LineageError::NotFound(aggregate.to_string(), id))?;
    let applied = &applied[&id];
    let events: Vec<&EventRecord> = applied.iter().map(|(_, e)| *e).collect();
    let downstream = read_models(&events);

    // Personal fields show that they changed, not what they held.
    let personal: Vec<&str> = events.iter().flat_map(|e| tidemark_events::personal_fields(&e.envelope.event_type)).copied().collect();
    let mut current = json!(folded.state);
    withhold_personal(&mut current, &events);
    let current_values = values(&current);
    for f in fields {
        if !current_values.keys().any(|path| within(path, f) || within(f, path)) {
            return Err(LineageError::NoField(aggregate.to_string(), f.to_string()));
        }
    }

    // Each state's values are computed once: the after of one event is the before of the next.
    let mut state: Option<tidemark_events::AnyAggregate> = None;
    let mut before = BTreeMap::new();
    let mut last_set: HashMap<String, (i64, Uuid)> = HashMap::new();
    let mut chain = Vec::new();
    for ((record, event), read_models) in applied.iter().zip(downstream) {
        let next = tidemark_events::evolve(state.take(), &event.event);
        let after = values(&json!(next));
        let changed = changes(&before, &after);
        (state, before) = (Some(next), after);
        let env = &event.envelope;
        // Upstream: the events that set, last, the values this one changed; in log order.
        let mut builds_on: Vec<(i64, Uuid)> = changed.keys().filter_map(|path| last_set.insert(path.clone(), (env.aggregate_version, env.event_id))).collect();
        builds_on.sort();
        builds_on.dedup();
        let builds_on: Vec<Uuid> = builds_on.into_iter().map(|(_, id)| id).collect();
        if !fields.is_empty() && !changed.keys().any(|path| fields.iter().any(|f| within(path, f))) {
            continue;
        }
        let changed: serde_json::Map<String, Value> = changed
            .into_iter()
            .filter(|(path, _)| fields.is_empty() || fields.iter().any(|f| within(path, f)))
            .map(|(path, (from, to))| match personal.contains(&path.as_str()) {
                true if to.as_str() == Some(tidemark_events::ERASED) => (path, json!({"from": null, "to": to, "personal": "erased"})),
                true => (path, json!({"from": null, "to": null, "personal": "withheld"})),
                false => (path, json!({"from": from, "to": to})),
            })
            .collect();
        chain.push(json!({
            "event_id": env.event_id, "event_type": env.event_type, "aggregate_version": env.aggregate_version,
            "occurred_at": env.occurred_at, "recorded_at": env.recorded_at,
            "topic": topic, "partition": record.partition, "offset": record.offset,
            "command_id": env.command_id, "actor_id": env.actor_id, "actor_kind": env.actor_kind, "client_id": env.client_id,
            "policy_version": env.policy_version, "code_version": env.code_version, "writer_epoch": env.writer_epoch,
            "correlation_id": env.correlation_id, "causation_id": env.causation_id, "rationale": env.rationale,
            "changed": changed, "builds_on": builds_on, "read_models": read_models,
        }));
    }
    let value = match fields {
        [] => current,
        [f] => match current_values.get(*f) {
            Some(v) => v.clone(),
            None => Value::Object(current_values.iter().filter(|(path, _)| within(path, f)).map(|(p, v)| (p.clone(), v.clone())).collect()),
        },
        many => Value::Object(current_values.iter().filter(|(path, _)| many.iter().any(|f| within(path, f))).map(|(p, v)| (p.clone(), v.clone())).collect()),
    };
    Ok(json!({
        "aggregate_type": aggregate, "aggregate_id": id, "tenant_id": folded.tenant_id, "version": folded.version,
        "field": fields.first(), "value": value, "chain": chain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_value_that_moved_by_its_path_and_leave_out_the_version() {
        let before = json!({"amount": {"value": "100.00"}, "stage": "Prospecting", "version": 1, "quotes": []});
        let after = json!({"amount": {"value": "250.00"}, "stage": "Prospecting", "version": 2, "synced_quote": "q",
                           "quotes": [{"id": "q", "status": "accepted", "lines": [{"product": "x"}]}]});
        let found = changes(&values(&before), &values(&after));
        assert_eq!(found.keys().collect::<Vec<_>>(), ["amount", "quotes.q.id", "quotes.q.lines", "quotes.q.status", "synced_quote"]);
        assert_eq!(found["synced_quote"], (Value::Null, json!("q")));
        assert_eq!(changes(&values(&Value::Null), &values(&json!({"name": "Acme"})))["name"], (Value::Null, json!("Acme")));
        assert!(within("quotes.q.status", "quotes.q") && within("amount", "amount") && !within("amounts", "amount"));
    }
}
