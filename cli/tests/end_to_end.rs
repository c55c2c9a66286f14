//! The whole path, against the real broker and PostgreSQL: command → Kafka → projector →
//! read model → query with its staleness note.

mod common;

use std::collections::BTreeMap;

use common::{TestSystem, test_config};
use serde_json::json;
use tidemark::Services;
use tidemark_events::DomainEvent;
use tidemark_schemas::Decoded;

#[tokio::test(flavor = "multi_thread")]
async fn a_command_is_read_back_with_its_staleness_note() {
    let t = TestSystem::start().await;
    let account = t.open_account("Acme GmbH").await;
    let created = t.create_opportunity(&account, "alice", "12000.00").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.header("consistency-token"), Some(created.token().as_str()));
    assert_eq!(created.body["events"][0]["type"], "OpportunityCreated");

    let moved = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[("If-Match", "\"1\"")]).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    // Stages go in order: a deal is won from Negotiation.
    for stage in ["Proposal", "Negotiation"] {
        let moved = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": stage}), &[]).await;
        assert_eq!(moved.status, 200, "{}", moved.body);
    }
    let amount = t.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "15000.50", "currency": "EUR"}}), &[]).await;
    assert_eq!(amount.status, 200, "{}", amount.body);
    let date = t.command(&format!("/v1/opportunities/{id}/close-date"), json!({"close_date": "2027-03-31"}), &[]).await;
    assert_eq!(date.status, 200, "{}", date.body);
    let closed = t.command(&format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), &[]).await;
    assert_eq!((closed.status, closed.body["version"].as_i64()), (200, Some(7)), "{}", closed.body);

    // Read-your-writes: the token of the last command makes the read wait for it.
    let read = t.get(&format!("{}/v1/opportunities/{id}?consistency_token={}", t.queries(), closed.token())).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let o = &read.body["data"];
    assert_eq!(o["stage"], "Closed Won");
    assert_eq!(o["status"], "won");
    assert_eq!(o["probability"], 100);
    assert_eq!(o["amount"], json!({"value": "15000.50", "currency": "EUR"}));
    assert_eq!(o["close_date"], "2027-03-31");
    assert_eq!(o["close_reason"], "signed");
    assert_eq!(o["version"], 7);
    let note = &read.body["staleness"];
    assert_eq!(note["projection"], "opportunities");
    assert_eq!(note["fresh"], true);
    assert_eq!(note["bound"]["consistency"], "strong", "a single opportunity is a strong read by default");
    assert!(read.body["consistency_token"].as_str().unwrap().starts_with("t2."));
    // The shared log's positions are no tenant's business: sealed in the token, absent here.
    assert!(note.get("offsets").is_none() && note.get("log_end_offsets").is_none(), "{note}");
    assert_eq!(closed.body["events"][0], json!({"type": "OpportunityClosed"}), "{}", closed.body);
    let sealed = t.config.tokens().decode("default", read.body["consistency_token"].as_str().unwrap()).unwrap();
    assert_eq!(sealed.0.len(), 3, "the token covers every partition the answer reflects");
    // lag_ms is 0 when caught up, an upper bound when behind, null when never caught up yet.
    match note["lag_events"].as_i64().unwrap() {
        0 => assert_eq!(note["lag_ms"], 0, "{note}"),
        _ => assert!(note["lag_ms"].is_null() || note["lag_ms"].as_i64().unwrap() >= 0, "{note}"),
    }
    assert!(read.header("staleness-lag-events").is_some());

    // The pipeline moved the deal from stage to stage: one cell, in Closed Won.
    let pipeline = t.get(&format!("{}/v1/pipeline?owner=alice&consistency_token={}", t.queries(), closed.token())).await;
    assert_eq!(pipeline.status, 200, "{}", pipeline.body);
    assert_eq!(pipeline.body["data"], json!([{"owner_id": "alice", "stage": "Closed Won", "currency": "EUR", "count": 1, "amount": "15000.50"}]));
    assert_eq!(pipeline.body["staleness"]["projection"], "pipeline");
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_filter_by_owner_and_stage_a_page_at_a_time() {
    let t = TestSystem::start().await;
    let account = t.open_account("Globex").await;
    // The opportunities land on different partitions. Each command gets the session's token
    // so far and answers with it plus its own write, so the last token covers them all.
    // Ids are random: write deals for dave too until the session spans two partitions.
    let mut session = String::new();
    let mut id = String::new();
    for i in 0.. {
        let spans = !session.is_empty() && t.config.tokens().decode("default", &session).unwrap().0.len() >= 2;
        if i >= 5 && spans {
            break;
        }
        assert!(i < 100, "no two partitions after 100 writes");
        let owner = match i {
            0..=2 => "bob",
            3 | 4 => "carol",
            _ => "dave",
        };
        let body = json!({"account_id": account, "name": "Deal", "owner_id": owner,
            "amount": {"value": "100", "currency": "EUR"}, "close_date": "2027-01-01"});
        let headers: Vec<(&str, &str)> = if session.is_empty() { vec![] } else { vec![("Consistency-Token", session.as_str())] };
        let created = t.command("/v1/opportunities", body, &headers).await;
        session = created.token();
        if owner == "carol" {
            id = created.body["id"].as_str().unwrap().to_string();
        }
    }
    let moved = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[("Consistency-Token", &session)]).await;
    let tok = moved.token();
    assert!(t.config.tokens().decode("default", &tok).unwrap().0.len() >= 2, "the session spans partitions");
    let page = |q: &str| format!("{}/v1/opportunities?{q}&consistency_token={tok}", t.queries());

    let first = t.get(&page("owner=bob&limit=2")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_string();
    let second = t.get(&page(&format!("owner=bob&limit=2&cursor={cursor}"))).await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());
    let ids: Vec<_> = first.body["data"].as_array().unwrap().iter().chain(second.body["data"].as_array().unwrap()).map(|o| o["id"].clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "oldest first, no repeats");

    let qualifying = t.get(&page("stage=Qualification")).await;
    assert_eq!(qualifying.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(qualifying.body["data"][0]["owner_id"], "carol");

    let bad = t.get(&page("stage=Won")).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "stage");
    assert_eq!(t.get(&page("limit=0")).await.status, 422);
    assert_eq!(t.get(&page("cursor=zz")).await.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_idempotency_key_returns_the_first_outcome_and_appends_nothing() {
    let t = TestSystem::start().await;
    let account = t.open_account("Initech").await;
    let body = json!({"account_id": account, "name": "Pilot", "owner_id": "dave", "amount": {"value": "500", "currency": "USD"}, "close_date": "2027-01-15"});
    let first = t.command("/v1/opportunities", body.clone(), &[("Idempotency-Key", "create-pilot")]).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let topic = t.config.topics().opportunity.clone();
    let before = t.read_log(&topic).await.len();

    let again = t.command("/v1/opportunities", body.clone(), &[("Idempotency-Key", "create-pilot")]).await;
    assert_eq!(again.status, 201);
    let (mut a, mut f) = (again.body.clone(), first.body.clone());
    let (a_token, f_token) = (a.as_object_mut().unwrap().remove("consistency_token"), f.as_object_mut().unwrap().remove("consistency_token"));
    assert_eq!(a, f, "the first outcome, id included");
    let codec = t.config.tokens();
    assert_eq!(codec.decode("default", a_token.unwrap().as_str().unwrap()), codec.decode("default", f_token.unwrap().as_str().unwrap()), "and its positions, sealed afresh");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // Concurrent retries of one new key: one append.
    let moves = (0..8).map(|_| {
        t.command(&format!("/v1/opportunities/{}/stage", first.body["id"].as_str().unwrap()), json!({"stage": "Qualification"}), &[("Idempotency-Key", "qualify-pilot")])
    });
    let answers = futures::future::join_all(moves).await;
    assert!(answers.iter().all(|a| a.status == 200 && a.body["version"] == 2), "{:?}", answers.iter().map(|a| &a.body).collect::<Vec<_>>());

    let reused = t.command("/v1/opportunities", json!({"name": "Other"}).as_object().map(|_| {
        let mut b = body.clone(); b["name"] = json!("Something else"); b
    }).unwrap(), &[("Idempotency-Key", "create-pilot")]).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["type"], "/problems/idempotency-key-reused");

    let appended = t.read_log(&topic).await.len() - before;
    assert_eq!(appended, 1, "only the first stage move was appended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_conflict_is_409_and_appends_nothing() {
    let t = TestSystem::start().await;
    let account = t.open_account("Umbrella").await;
    let created = t.create_opportunity(&account, "erin", "900").await;
    let id = created.body["id"].as_str().unwrap();
    let topic = t.config.topics().opportunity.clone();
    let before = t.log_end_offsets(&topic).await;
    let stale = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[("If-Match", "\"3\"")]).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.body["current_version"], 1);
    assert_eq!(stale.header("content-type"), Some("application/problem+json"));
    assert_eq!(t.log_end_offsets(&topic).await, before);
    let fresh = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[("If-Match", "\"1\"")]).await;
    assert_eq!((fresh.status, fresh.header("etag")), (200, Some("\"2\"")));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_commands_on_one_opportunity_get_versions_one_to_n() {
    let t = TestSystem::start().await;
    let account = t.open_account("Hooli").await;
    let created = t.create_opportunity(&account, "frank", "1").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    const N: usize = 40;
    let changes = (0..N).map(|i| t.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": format!("{}", 1000 + i), "currency": "EUR"}}), &[]));
    let answers = futures::future::join_all(changes).await;
    let mut versions: Vec<i64> = answers.iter().map(|a| {
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["version"].as_i64().unwrap()
    }).collect();
    versions.sort();
    assert_eq!(versions, (2..=N as i64 + 1).collect::<Vec<_>>());

    let log = t.read_log(&t.config.topics().opportunity).await;
    let in_log = common::versions_of(&log, &id);
    assert_eq!(in_log, (1..=N as i64 + 1).collect::<Vec<_>>(), "versions 1..N in log order, no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_problem_and_changes_nothing() {
    let t = TestSystem::start().await;
    let account = t.open_account("Stark").await;
    let created = t.create_opportunity(&account, "gina", "10").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let closed = t.command(&format!("/v1/opportunities/{id}/close"), json!({"outcome": "lost", "reason": "budget"}), &[]).await;
    assert_eq!(closed.status, 200);
    let topics = t.config.topics();
    let before = (t.log_end_offsets(&topics.account).await, t.log_end_offsets(&topics.opportunity).await);

    let good = |amount: serde_json::Value| json!({"account_id": account, "name": "Deal", "owner_id": "gina", "amount": amount, "close_date": "2027-01-01"});
    let cases: Vec<(String, serde_json::Value, Vec<(&str, &str)>, u16, &str)> = vec![
        ("/v1/opportunities".to_string(), json!("not an object"), vec![], 400, "bad-request"),
        ("/v1/opportunities".to_string(), json!({"name": "no account"}), vec![], 400, "bad-request"),
        ("/v1/opportunities".to_string(), good(json!({"value": 12.5, "currency": "EUR"})), vec![], 400, "bad-request"),
        ("/v1/opportunities".to_string(), good(json!({"value": "-5", "currency": "EUR"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "euro"})), vec![], 400, "bad-request"),
        // Values a CRM should not trust: codes that are no currency in use, more decimals
        // than the currency has, numbers that are not plain decimals, dates out of any deal.
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "ZZZ"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "XAU"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "BTC"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5.001", "currency": "EUR"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5.5", "currency": "JPY"})), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), good(json!({"value": "1e3", "currency": "EUR"})), vec![], 400, "bad-request"),
        ("/v1/opportunities".to_string(), good(json!({"value": "+5", "currency": "EUR"})), vec![], 400, "bad-request"),
        ("/v1/opportunities".to_string(), json!({"account_id": account, "name": "Deal", "owner_id": "gina", "amount": {"value": "5", "currency": "EUR"}, "close_date": "0001-01-01"}), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), json!({"account_id": account, "name": "Deal", "owner_id": "gina", "amount": {"value": "5", "currency": "EUR"}, "close_date": "+10000-01-01"}), vec![], 422, "invalid-field"),
        ("/v1/opportunities".to_string(), json!({"account_id": uuid::Uuid::now_v7(), "name": "Deal", "owner_id": "gina", "amount": {"value": "1", "currency": "EUR"}, "close_date": "2027-01-01"}), vec![], 422, "account-must-exist"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "EUR"})), vec![("Authorization", "")], 401, "missing-token"),
        ("/v1/opportunities".to_string(), good(json!({"value": "5", "currency": "EUR"})), vec![("Authorization", "Bearer forged.token.here")], 401, "malformed-token"),
        ("/v1/accounts".to_string(), json!({"name": "   "}), vec![], 422, "invalid-field"),
        (format!("/v1/opportunities/{}/stage", uuid::Uuid::now_v7()), json!({"stage": "Proposal"}), vec![], 404, "not-found"),
        (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Won"}), vec![], 400, "bad-request"),
        (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Proposal"}), vec![], 422, "closed-opportunity-is-final"),
        (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Proposal"}), vec![("If-Match", "soon")], 400, "bad-request"),
        (format!("/v1/opportunities/{id}/close"), json!({"outcome": "maybe", "reason": "x"}), vec![], 400, "bad-request"),
        ("/v1/opportunities/not-a-uuid/stage".to_string(), json!({"stage": "Proposal"}), vec![], 400, "bad-request"),
        ("/v1/opportunities/x/unknown".to_string(), json!({}), vec![], 404, "not-found"),
    ];
    for (path, body, headers, status, kind) in cases {
        let answer = t.command(&path, body.clone(), &headers).await;
        assert_eq!(answer.status, status, "{path} {body}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{path}: {}", answer.body);
        assert_eq!(answer.body["type"], format!("/problems/{kind}"), "{path} {body}: {}", answer.body);
        assert!(answer.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let negative = t.command("/v1/opportunities", good(json!({"value": "-5", "currency": "EUR"})), &[]).await;
    assert_eq!(negative.body["field"], "amount", "the field is named: {}", negative.body);
    let money_as_float = t.command("/v1/opportunities", good(json!({"value": 12.5, "currency": "EUR"})), &[]).await;
    assert!(money_as_float.body["detail"].as_str().unwrap().contains("amount.value"), "{}", money_as_float.body);

    let after = (t.log_end_offsets(&topics.account).await, t.log_end_offsets(&topics.opportunity).await);
    assert_eq!(before, after, "nothing was appended");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_your_writes_gives_up_with_503_and_retry_after_when_the_projection_lags() {
    // No projector runs, so the token can never be met.
    let t = TestSystem::start_with(test_config(), tidemark::Services { projectors: false, ..Services::ALL }).await;
    let account = t.open_account("Wayne").await;
    let created = t.create_opportunity(&account, "hank", "10").await;
    let started = std::time::Instant::now();
    let read = t.get(&format!("{}/v1/opportunities/{}?wait_ms=300&consistency_token={}", t.queries(), created.body["id"].as_str().unwrap(), created.token())).await;
    assert_eq!(read.status, 503, "{}", read.body);
    assert_eq!(read.header("retry-after"), Some("1"));
    assert_eq!(read.body["type"], "/problems/bound-not-met");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Without a token the read answers at once and says how far behind it is.
    let list = t.get(&format!("{}/v1/opportunities?consistency=eventual", t.queries())).await;
    assert_eq!(list.status, 200);
    assert!(list.body["staleness"]["lag_events"].as_i64().unwrap() >= 1, "{}", list.body);
    assert_eq!(t.get(&format!("{}/v1/opportunities/x?consistency_token=garbage", t.queries())).await.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_serves_its_openapi_document_and_health() {
    let t = TestSystem::start().await;
    let projectors = format!("http://{}", t.system().projector_addr.expect("the projectors run"));
    for (base, path) in [(t.commands(), "/v1/opportunities/{id}/stage"), (t.queries(), "/v1/pipeline"), (t.registry(), "/subjects/{subject}/versions"), (projectors, "/metrics")] {
        let doc = t.get(&format!("{base}/openapi.json")).await;
        assert_eq!(doc.status, 200);
        assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc.body["paths"][path].is_object(), "{base} documents {path}");
        let health = t.get(&format!("{base}/healthz")).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert_eq!(health.body["status"], "ok");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_carries_the_full_envelope() {
    let t = TestSystem::start().await;
    let account = t.open_account("Wonka").await;
    let created = t
        .command("/v1/opportunities", json!({"account_id": account, "name": "Chocolate", "owner_id": "ida", "amount": {"value": "7.25", "currency": "CHF"}, "close_date": "2027-02-02"}),
            &[("Idempotency-Key", "choc-1"), ("X-Correlation-Id", "corr-42"), ("Authorization", &format!("Bearer {}", t.token_via("lead-router", "default", &[], None, Some("automation"), Some("bot-7")))), ("X-Rationale", "lead scoring"), ("X-Client-Id", "a header names no client")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("x-correlation-id"), Some("corr-42"));
    let log = t.read_log(&t.config.topics().opportunity).await;
    let records: Vec<_> = log.iter().filter_map(|(_, _, d)| match d { Decoded::Event(r) => Some(r), _ => None }).collect();
    assert_eq!(records.len(), 1);
    let env = &records[0].envelope;
    assert_eq!(env.aggregate_id.to_string(), created.body["id"].as_str().unwrap());
    assert_eq!(env.event_id.get_version_num(), 7);
    assert_eq!((env.aggregate_type.as_str(), env.aggregate_version, env.event_type.as_str()), ("opportunity", 1, "OpportunityCreated"));
    assert_eq!((env.command_id.as_str(), env.correlation_id.as_str(), env.client_id.as_str()), ("choc-1", "corr-42", "bot-7"));
    assert_eq!((env.actor_id.as_str(), env.actor_kind.name(), env.rationale.as_deref()), ("lead-router", "automation", Some("lead scoring")));
    assert_eq!(env.policy_version, tidemark_events::POLICY_VERSION);
    assert_eq!(env.tenant_id, "default");
    assert!(env.writer_epoch >= 1 && !env.policy_version.is_empty() && env.code_version.starts_with(env!("CARGO_PKG_VERSION")));
    assert!(env.recorded_at >= env.occurred_at);
    let DomainEvent::Opportunity(tidemark_events::opportunity::OpportunityEvent::Created(e)) = &records[0].event else { panic!() };
    assert_eq!(e.amount.value.to_string(), "7.25", "exact decimal through Avro");
    let markers = log.iter().filter(|(_, _, d)| matches!(d, Decoded::Fence(_))).count();
    assert_eq!(markers, 3, "the writer fenced each of the three partitions");
    let _: BTreeMap<i32, i64> = t.log_end_offsets(&t.config.topics().opportunity).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_record_is_quarantined_and_the_projection_goes_on() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let t = TestSystem::start().await;
    let topic = t.config.topics().opportunity.clone();
    let producer: FutureProducer = tidemark_log::client(&t.config.brokers, "tidemark-test").create().unwrap();
    let delivery = producer
        .send(FutureRecord::to(&topic).partition(1).key("not-an-event").payload("plain text, no schema id"), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let (partition, offset) = (delivery.partition, delivery.offset);
    let account = t.open_account("Tyrell").await;
    // Write until one opportunity lands on the bad record's partition (ids are random),
    // then read with the session token, which waits for every write.
    let (mut session, mut written) = (String::new(), 0);
    while !t.config.tokens().decode("default", &session).map(|token| token.0.contains_key(&(topic.clone(), partition))).unwrap_or(false) {
        assert!(written < 100, "no write landed on partition {partition} after 100 tries");
        let body = json!({"account_id": account, "name": "Deal", "owner_id": "joe", "amount": {"value": "1", "currency": "EUR"}, "close_date": "2027-01-01"});
        let headers: Vec<(&str, &str)> = if session.is_empty() { vec![] } else { vec![("Consistency-Token", session.as_str())] };
        session = t.command("/v1/opportunities", body, &headers).await.token();
        written += 1;
    }
    let read = t.get(&format!("{}/v1/opportunities?owner=joe&limit=200&consistency_token={session}", t.queries())).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["data"].as_array().unwrap().len(), written);
    let pipeline = t.get(&format!("{}/v1/pipeline?owner=joe&consistency_token={session}", t.queries())).await;
    assert_eq!(pipeline.body["data"][0]["count"], written, "{}", pipeline.body);
    let auditor = t.token("audrey", "default", &["auditor"], None, None);
    let edits = t.get_as(&format!("{}/v1/audit/automated-edits?consistency_token={session}", t.queries()), &auditor).await;
    assert_eq!(edits.status, 200, "the automated edits projection, which reads every topic, went on too: {}", edits.body);

    let pool = t.pool().await;
    let rows: Vec<(String, i32, i64, Option<String>, String)> =
        sqlx::query_as("SELECT projection, partition, \"offset\", key, reason FROM quarantine ORDER BY projection").fetch_all(&pool).await.unwrap();
    let mut readers: Vec<&str> = tidemark_projectors::described().into_iter().filter(|p| (p.topics)(&t.config.topics()).contains(&topic)).map(|p| p.name).collect();
    readers.sort();
    assert_eq!(rows.len(), readers.len(), "each projection that reads {topic} quarantined it: {rows:?}");
    for (i, projection) in readers.iter().enumerate() {
        assert_eq!((rows[i].0.as_str(), rows[i].1, rows[i].2, rows[i].3.as_deref()), (*projection, partition, offset, Some("not-an-event")));
        assert!(rows[i].4.starts_with("cannot decode"), "{}", rows[i].4);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fenced_writer_appends_nothing_and_its_records_are_ignored_by_every_reader() {
    use tidemark_events::opportunity::{AmountChanged, OpportunityEvent};
    let config = test_config();
    let old = TestSystem::start_with(config.clone(), Services::ALL).await;
    let account = old.open_account("Soylent").await;
    let created = old.create_opportunity(&account, "kim", "100").await;
    let id = created.body["id"].as_str().unwrap().to_string();

    // A second writer takes over the partitions; the old one does not know yet (a zombie).
    let config = tidemark::Config { registry_url: old.registry(), ..config };
    let new = TestSystem::start_with(config.clone(), Services { commands: true, ..Services::NONE }).await;
    // The broker fences it: its transaction is refused (or, if the writers' group has told
    // it already, it knows the shard is no longer its own), and it says so on /healthz.
    let zombie = old.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "999", "currency": "EUR"}}), &[]).await;
    assert_eq!(zombie.status, 503, "the zombie appends nothing: {}", zombie.body);
    let detail = zombie.body["detail"].as_str().unwrap();
    assert!(detail.contains("fenced") || detail.contains("changing owner"), "{}", zombie.body);
    let health = old.get(&format!("{}/healthz", old.commands())).await;
    assert_eq!(health.status, 503, "{}", health.body);

    // The second line of defence: a record of the old epoch that reaches the log anyway (a
    // client without transactions) lies after the new epoch's fence marker, so every
    // reader skips it, the new writer included.
    let zombie_change = AmountChanged { amount: serde_json::from_value(json!({"value": "999", "currency": "EUR"})).unwrap() };
    old.append_by_hand(("opportunity", id.parse().unwrap()), DomainEvent::Opportunity(OpportunityEvent::AmountChanged(zombie_change)), ("kim", "zombie-append", "corr-zombie")).await;
    let owner = new.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "250", "currency": "EUR"}}), &[]).await;
    assert_eq!((owner.status, owner.body["version"].as_i64()), (200, Some(2)), "{}", owner.body);

    let read = old.get(&format!("{}/v1/opportunities/{id}?consistency_token={}", old.queries(), owner.token())).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["data"]["amount"]["value"], "250", "the fenced append was skipped");
    assert_eq!(read.body["data"]["version"], 2);
    let pipeline = old.get(&format!("{}/v1/pipeline?owner=kim&consistency=strong", old.queries())).await;
    assert_eq!(pipeline.body["data"][0]["amount"], "250.00", "pipeline amounts have at least two decimals");

    // A third writer rebuilds its state from the log with the same rule: version 3 is next.
    drop(new);
    let third = TestSystem::start_with(config, Services { commands: true, ..Services::NONE }).await;
    let next = third.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[("If-Match", "\"2\"")]).await;
    assert_eq!((next.status, next.body["version"].as_i64()), (200, Some(3)), "{}", next.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rep_cannot_make_an_event_claim_another_client_or_a_rationale() {
    let t = TestSystem::start().await;
    let alice = format!("Bearer {}", t.token("alice", "default", &["rep"], Some("east"), None));
    let opened = t.command("/v1/accounts", json!({"name": "Acme"}), &[("Authorization", &alice), ("X-Client-Id", "tidemark-lead-router"), ("User-Agent", "tidemark-lead-router")]).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reasoned = t.command("/v1/accounts", json!({"name": "Beta"}), &[("Authorization", &alice), ("X-Rationale", "the scoring model said so")]).await;
    assert_eq!((reasoned.status, reasoned.body["type"].as_str()), (403, Some("/problems/rationale-not-allowed")), "{}", reasoned.body);
    let long = "x".repeat(65);
    for bad in ["two words", "<script>", long.as_str()] {
        let correlated = t.command("/v1/accounts", json!({"name": "Gamma"}), &[("Authorization", &alice), ("X-Correlation-Id", bad)]).await;
        assert_eq!((correlated.status, correlated.body["field"].as_str()), (400, Some("X-Correlation-Id")), "{bad}: {}", correlated.body);
        let caused = t.command("/v1/accounts", json!({"name": "Gamma"}), &[("Authorization", &alice), ("X-Causation-Id", bad)]).await;
        assert_eq!((caused.status, caused.body["field"].as_str()), (400, Some("X-Causation-Id")), "{bad}: {}", caused.body);
    }
    let log = t.read_log(&t.config.topics().account).await;
    let events: Vec<_> = log.iter().filter_map(|(_, _, d)| match d { Decoded::Event(r) => Some(&r.envelope), _ => None }).collect();
    assert_eq!(events.len(), 1, "only the first account");
    assert_eq!((events[0].client_id.as_str(), &events[0].rationale, events[0].actor_id.as_str()), ("unnamed-client", &None, "alice"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aggregate_behind_an_unreadable_record_says_so_until_an_operator_skips_the_record() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let config = test_config();
    let first = TestSystem::start_with(config.clone(), Services::ALL).await;
    let account = first.open_account("Wonka").await;
    let created = first.create_opportunity(&account, "ida", "10").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let partition = tidemark_events::partition::partition_for(id.as_bytes(), config.partitions);
    // Garbage under the deal's key, in its partition, as a broken producer would leave it.
    let producer: FutureProducer = tidemark_log::client(&config.brokers, "tidemark-test").create().unwrap();
    let topic = config.topics().opportunity.clone();
    producer.send(FutureRecord::to(&topic).partition(partition).key(&id).payload("no schema id"), std::time::Duration::from_secs(5)).await.unwrap();
    first.stop().await;

    // A new writer reads the partition at start and meets the record.
    let second = TestSystem::start_with(config, Services::ALL).await;
    let moved = second.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[]).await;
    assert_eq!((moved.status, moved.body["type"].as_str(), &moved.body["retryable"]), (409, Some("/problems/stream-unreadable"), &json!(false)), "{}", moved.body);
    assert!(moved.header("retry-after").is_none());
    let detail = moved.body["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("{topic}/{partition}@")) && detail.contains("cannot be decoded") && detail.contains("operator"), "{detail}");

    // The operator sees the record, the aggregate it blocks and why; nobody else does.
    let ops = second.operator();
    let list = format!("{}/v1/operations/quarantine?open=true", second.queries());
    let readers = tidemark_projectors::described().into_iter().filter(|p| (p.topics)(&second.config.topics()).contains(&topic)).count();
    let mut open = Vec::new();
    for _ in 0..100 {
        let answer = second.get_as(&list, &ops).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        open = answer.body["data"].as_array().unwrap().clone();
        if open.len() == readers {
            break; // one entry by each projection that reads the topic
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let blocking = open.iter().find(|q| q["projection"] == "opportunities").unwrap_or_else(|| panic!("quarantined by opportunities: {open:?}"));
    assert_eq!((blocking["topic"].as_str(), blocking["partition"].as_i64(), blocking["aggregate_id"].as_str()), (Some(topic.as_str()), Some(partition as i64), Some(id.as_str())));
    assert!(blocking["reason"].as_str().unwrap().starts_with("cannot decode"), "{blocking}");
    let admin = second.get(&list).await;
    assert_eq!((admin.status, admin.body["type"].as_str()), (403, Some("/problems/needs-operator")), "an admin of a tenant: {}", admin.body);
    let entry = blocking["id"].as_i64().unwrap();
    let skip = format!("{}/v1/operations/quarantine/{entry}/skip", second.queries());
    let unexplained = second.post_as(&skip, &ops, json!({"reason": " "})).await;
    assert_eq!((unexplained.status, unexplained.body["field"].as_str()), (422, Some("reason")), "{}", unexplained.body);
    let by_admin = second.post_as(&skip, &second.admin(), json!({"reason": "mine"})).await;
    assert_eq!(by_admin.status, 403, "{}", by_admin.body);

    // Skipped with the tool, the record no longer blocks the deal, and the decision is kept.
    let output = second.cli(&["quarantine", "skip", &entry.to_string(), "--reason", "garbage from a broken producer", "--by", "oscar"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("skipped {topic}/{partition}@")), "{}", String::from_utf8_lossy(&output.stdout));
    let moved = second.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), &[]).await;
    assert_eq!((moved.status, moved.body["version"].as_i64()), (200, Some(2)), "{}", moved.body);
    let listed = second.cli(&["quarantine", "list", "--json"]).output().unwrap();
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!entries.is_empty() && entries.iter().all(|e| e["skip"]["skipped_by"] == "oscar" && e["skip"]["reason"] == "garbage from a broken producer"), "{entries:?}");
    let still_open = second.get_as(&list, &ops).await;
    assert_eq!(still_open.body["data"], json!([]), "every projection's entry of that record is resolved");
}

/// With a read database (a replica in production), the query API reads the read models and
/// the projections' standings there, so an answer waits for that database to have the rows;
/// what it records (a denial) goes to the primary. The "replica" here is a second database
/// that projectors of its own fill, started late to make it lag.
#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_reads_from_the_read_database_and_records_on_the_primary() {
    let mut config = test_config();
    let replica = test_config();
    tidemark::prepare_database(&replica.database_url).await.unwrap();
    config.read_database_url = Some(replica.database_url.clone());
    let t = TestSystem::start_with(config, Services::ALL).await;
    let account = t.open_account("Replica Ltd").await;
    let created = t.create_opportunity(&account, "alice", "500.00").await;
    let id = created.body["id"].as_str().unwrap();

    // The primary's projectors have the deal; the read database has nothing yet.
    let url = format!("{}/v1/opportunities/{id}?consistency_token={}&wait_ms=500", t.queries(), created.token());
    let lagging = t.get(&url).await;
    assert_eq!((lagging.status, lagging.body["type"].as_str()), (503, Some("/problems/bound-not-met")), "{}", lagging.body);

    let mut filler = replica.clone();
    filler.brokers = t.config.brokers.clone();
    filler.topic_prefix = t.config.topic_prefix.clone();
    filler.consumer_group_prefix = Some(format!("{}replica.", t.config.topic_prefix));
    filler.registry_url = t.registry();
    let replicating = tidemark::System::start(&filler, Services { projectors: true, ..Services::NONE }).await.unwrap();
    let caught_up = t.get(&url.replace("wait_ms=500", "wait_ms=20000")).await;
    assert_eq!((caught_up.status, caught_up.body["data"]["name"].as_str()), (200, Some("Fleet renewal")), "{}", caught_up.body);
    replicating.shutdown.cancel();

    let rep = t.token("carol", "default", &["rep"], Some("east"), None);
    assert_eq!(t.get_as(&format!("{}/metrics", t.queries()), &rep).await.status, 403);
    let count = |url: String| async move {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM denials WHERE action = 'read-metrics'").fetch_one(&pool).await.unwrap()
    };
    assert_eq!((count(t.config.database_url.clone()).await, count(replica.database_url.clone()).await), (1, 0), "the denial is on the primary");
}
