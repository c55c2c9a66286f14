//! Avro encoding and decoding of events, as the codec does it once it has the schema (the
//! registry lookup is cached after the first record), and the sealing of personal data.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Mutex;

use apache_avro::Schema;
use chrono::{NaiveDate, Utc};
use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use apache_avro::writer::datum::GenericDatumWriter;
use criterion::{criterion_group, criterion_main, Criterion};
use tidemark_events::contact::{ContactCreated, ContactEvent};
use tidemark_events::envelope::StreamPosition;
use tidemark_events::opportunity::{OpportunityCreated, OpportunityEvent};
use tidemark_events::{ActorKind, CommandMeta, DomainEvent, Envelope, EventRecord};
use tidemark_privacy::{Key, KeyError, KeyStore};
use tidemark_schemas::codec::{WireIn, WireOut};
use uuid::Uuid;

fn envelope(aggregate_type: &str, event_type: &str) -> Envelope {
    let meta = CommandMeta {
        command_id: Uuid::now_v7().to_string(),
        tenant_id: "default".into(),
        actor_id: "alice".into(),
        actor_kind: ActorKind::User,
        client_id: "crm-web".into(),
        correlation_id: Uuid::now_v7().to_string(),
        causation_id: None,
        policy_version: tidemark_events::POLICY_VERSION.into(),
        code_version: "bench".into(),
        rationale: None,
        received_at: Utc::now(),
    };
    let at = StreamPosition { aggregate_type, aggregate_id: Uuid::now_v7(), version: 1, writer_epoch: 1 };
    Envelope::new(&meta, at, event_type, Utc::now())
}

fn schema(name: &str) -> Schema {
    let json = tidemark_schemas::catalog::LATEST.iter().find(|(n, _, _)| *n == name).unwrap().2;
    Schema::parse_str(json).unwrap()
}

/// Keys in memory: the bench measures the cipher, not PostgreSQL.
#[derive(Default)]
struct MemoryKeys(Mutex<HashMap<String, Key>>);

#[async_trait::async_trait]
impl KeyStore for MemoryKeys {
    async fn key_for_sealing(&self, _: &str, subject: &str) -> Result<Key, KeyError> {
        Ok(self.0.lock().unwrap().entry(subject.to_string()).or_insert_with(Key::generate).clone())
    }
    async fn key_for_opening(&self, _: &str, subject: &str) -> Result<Option<Key>, KeyError> {
        Ok(self.0.lock().unwrap().get(subject).cloned())
    }
    async fn destroy(&self, _: &str, subject: &str) -> Result<(), KeyError> {
        self.0.lock().unwrap().remove(subject);
        Ok(())
    }
}

fn codec(c: &mut Criterion) {
    apache_avro::util::set_serde_human_readable(true);
    let schema = schema("tidemark.opportunity.OpportunityCreated");
    let created: OpportunityCreated = serde_json::from_value(serde_json::json!({
        "account_id": Uuid::now_v7(), "name": "Fleet renewal", "owner_id": "alice", "team_id": "east",
        "amount": {"value": "12000.00", "currency": "EUR"}, "close_date": NaiveDate::from_ymd_opt(2027, 6, 30).unwrap(),
        "stage": "Prospecting", "probability": 10
    }))
    .unwrap();
    let event = OpportunityEvent::Created(created);
    let env = envelope("opportunity", "OpportunityCreated");
    // As the registry converter does: the schema resolved once, a writer and a reader per record.
    let resolved = ResolvedSchema::try_from(&schema).unwrap();
    let encode = || {
        let writer = GenericDatumWriter::builder(&schema).resolved_schemata(resolved.clone()).build().unwrap();
        writer.write_ser_to_vec(&WireOut { envelope: &env, data: &event }).unwrap()
    };
    let bytes = encode();
    c.bench_function("avro: encode OpportunityCreated", |b| b.iter(|| black_box(encode())));
    c.bench_function("avro: decode OpportunityCreated", |b| {
        b.iter(|| {
            let reader = GenericDatumReader::builder(&schema).resolved_writer_schemata(resolved.clone()).build().unwrap();
            let value = reader.read_value(&mut Cursor::new(black_box(bytes.as_slice()))).unwrap();
            apache_avro::from_value::<WireIn<serde_json::Value>>(&value).unwrap()
        })
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keys = MemoryKeys::default();
    let contact = ContactCreated { account_id: None, name: "Jane Doe".into(), email: Some("jane@acme.example".into()), phone: Some("+49301234567".into()), title: None };
    let record = EventRecord { envelope: envelope("contact", "ContactCreated"), event: DomainEvent::Contact(ContactEvent::Created(contact)) };
    c.bench_function("privacy: seal a contact's personal values", |b| b.iter(|| runtime.block_on(tidemark_privacy::seal(&keys, black_box(&record))).unwrap()));
    let sealed = runtime.block_on(tidemark_privacy::seal(&keys, &record)).unwrap().unwrap();
    c.bench_function("privacy: open a contact's personal values", |b| {
        b.iter(|| {
            let mut r = sealed.clone();
            runtime.block_on(tidemark_privacy::open(&keys, &mut r)).unwrap();
            r
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
