//! The staleness contract (CONSISTENCY.md), end to end: bounds fail and succeed as the
//! projection pauses and resumes, tokens span partitions, reads are monotonic, strong
//! reads see every earlier write, the cache never answers beyond the bound.

mod common;

use std::time::Duration;

use common::{test_config, Answer, TestSystem};
use serde_json::json;
use tidemark::{Config, Services};

/// Writers, registry and queries in one system; projectors in another, to pause at will.
async fn split_system(config: Config) -> (TestSystem, Config) {
    let t = TestSystem::start_with(config, Services { projectors: false, ..Services::ALL }).await;
    let projector_config = Config { registry_url: t.registry(), ..t.config.clone() };
    (t, projector_config)
}

async fn start_projectors(config: &Config) -> TestSystem {
    TestSystem::start_with(config.clone(), Services { projectors: true, ..Services::NONE }).await
}

async fn new_opportunity(t: &TestSystem, owner: &str, session: Option<&str>) -> Answer {
    let account = t.open_account("Acme").await;
    let body = json!({"account_id": account, "name": "Deal", "owner_id": owner, "amount": {"value": "100.00", "currency": "EUR"}, "close_date": "2027-01-01"});
    let headers: Vec<(&str, &str)> = session.map(|s| vec![("Consistency-Token", s)]).unwrap_or_default();
    let answer = t.command("/v1/opportunities", body, &headers).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_projector_fails_the_bound_and_meets_it_after_resuming() {
    let (t, projector_config) = split_system(test_config()).await;
    let projectors = start_projectors(&projector_config).await;
    let created = new_opportunity(&t, "amy", None).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let pipeline = |q: &str| t.get(&format!("{}/v1/pipeline?owner=amy&{q}", t.queries()));
    // A strong read: the projection has applied everything so far on every partition (the
    // writer's fence markers too), so that the one change below is its only lag.
    assert_eq!(pipeline("consistency=strong").await.body["data"][0]["amount"], "100.00");

    projectors.stop().await;
    let changed = t.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "250.00", "currency": "EUR"}}), &[]).await;
    assert_eq!(changed.status, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let refused = pipeline("max_staleness_ms=500&wait_ms=200").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.body["type"], "/problems/bound-not-met");
    assert_eq!(refused.body["bound"]["max_staleness_ms"], 500);

    let stale = pipeline("max_staleness_ms=500&wait_ms=200&on_stale=serve").await;
    assert_eq!(stale.status, 200, "{}", stale.body);
    let note = &stale.body["staleness"];
    assert_eq!((note["fresh"].as_bool(), stale.header("staleness-fresh")), (Some(false), Some("false")), "{note}");
    // One event, and its transaction's commit marker: lag counts offsets, an upper bound.
    assert_eq!(note["lag_events"], 2);
    assert!(note["lag_ms"].as_i64().unwrap() >= 700, "the age of the unapplied change: {note}");
    assert!(!note["unmet"].as_array().unwrap().is_empty());
    assert_eq!(stale.body["data"][0]["amount"], "100.00", "the stale answer is the old state");

    let _resumed = start_projectors(&projector_config).await;
    let fresh = pipeline("max_staleness_ms=500&wait_ms=20000").await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.body["staleness"]["fresh"], true);
    assert_eq!(fresh.body["data"][0]["amount"], "250.00");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_span_partitions_and_reads_are_monotonic() {
    let t = TestSystem::start().await;
    let codec = t.config.tokens();
    let mut session: Option<String> = None;
    for _ in 0..8 {
        session = Some(new_opportunity(&t, "bo", session.as_deref()).await.token());
    }
    let session = session.unwrap();
    let written = codec.decode("default", &session).unwrap();
    assert!(written.0.keys().filter(|(topic, _)| *topic == t.config.topics().opportunity).count() >= 2, "8 writes spread over partitions");

    let with_token = t.get(&format!("{}/v1/opportunities?owner=bo&consistency_token={session}", t.queries())).await;
    assert_eq!(with_token.body["data"].as_array().unwrap().len(), 8, "every write of the session: {}", with_token.body);
    assert_eq!(with_token.body["staleness"]["bound"]["consistency"], "session");
    assert_eq!(with_token.body["staleness"]["fresh"], true);

    // The read's own token covers the session and what the read reflected.
    let reflected = codec.decode("default", &with_token.token()).unwrap();
    for (key, offset) in &written.0 {
        assert!(reflected.0.get(key).is_some_and(|o| o >= offset), "{key:?}");
    }
    assert_eq!(with_token.header("consistency-token"), Some(with_token.token().as_str()));
    // Handing it to another read model makes that one at least as new (monotonic reads).
    let pipeline = t.get(&format!("{}/v1/pipeline?owner=bo&consistency_token={}", t.queries(), with_token.token())).await;
    assert_eq!(pipeline.status, 200, "{}", pipeline.body);
    assert_eq!(pipeline.body["data"][0]["count"], 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn strong_reads_see_every_write_before_the_request() {
    let t = TestSystem::start().await;
    let account = t.open_account("Burst").await;
    let burst = (0..30).map(|i| {
        t.command("/v1/opportunities", json!({"account_id": account, "name": format!("Deal {i}"), "owner_id": "cy", "amount": {"value": "1", "currency": "EUR"}, "close_date": "2027-01-01"}), &[])
    });
    assert!(futures::future::join_all(burst).await.iter().all(|a| a.status == 201));
    let read = t.get(&format!("{}/v1/opportunities?owner=cy&limit=200&consistency=strong", t.queries())).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["data"].as_array().unwrap().len(), 30);
    let note = &read.body["staleness"];
    assert_eq!((note["bound"]["consistency"].as_str(), note["fresh"].as_bool(), note["lag_events"].as_i64()), (Some("strong"), Some(true), Some(0)));
    assert!(note.get("offsets").is_none(), "no raw offsets: {note}");
}

/// Concurrent reads share log-end lookups; each must still see its own write, acknowledged
/// just before it, while other users' writes and reads go on around it.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_strong_reads_each_see_the_write_just_before_them() {
    let t = TestSystem::start().await;
    let account = t.open_account("Interleaved").await;
    let user = |u: usize| {
        let (t, account) = (&t, account.clone());
        async move {
            for i in 0..6 {
                let name = format!("Deal {u}.{i}");
                let body = json!({"account_id": account, "name": name, "owner_id": "di", "amount": {"value": "1", "currency": "EUR"}, "close_date": "2027-01-01"});
                let created = t.command("/v1/opportunities", body, &[]).await;
                assert_eq!(created.status, 201, "{}", created.body);
                let id = created.body["id"].as_str().unwrap().to_string();
                let read = t.get(&format!("{}/v1/opportunities/{id}?consistency=strong", t.queries())).await;
                assert_eq!(read.status, 200, "{name}: {}", read.body);
                assert_eq!(read.body["data"]["name"], name, "{}", read.body);
            }
        }
    };
    futures::future::join_all((0..8).map(user)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_never_answers_beyond_the_bound_nor_across_tenants() {
    let t = TestSystem::start().await;
    let created = new_opportunity(&t, "di", None).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let url = |tok: &str| format!("{}/v1/pipeline?owner=di&consistency_token={tok}&consistency=strong", t.queries());
    // Strong reads: the projection has applied everything, so its position holds still.
    let first = t.get(&url(&created.token())).await;
    let second = t.get(&url(&created.token())).await;
    assert_eq!(first.body["data"], second.body["data"]);
    let metrics = t.http.get(format!("{}/metrics", t.queries())).bearer_auth(t.operator()).send().await.unwrap().text().await.unwrap();
    let hits: u64 = metrics.lines().find_map(|l| l.strip_prefix("tidemark_query_cache_hits_total ")).unwrap().parse().unwrap();
    assert!(hits >= 1, "the second read came from the cache:\n{metrics}");
    assert!(metrics.contains("tidemark_query_cache_hit_ratio"));

    let changed = t.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "777.00", "currency": "EUR"}}), &[]).await;
    let after = t.get(&url(&changed.token())).await;
    assert_eq!(after.body["data"][0]["amount"], "777.00", "a new position is a new cache key");

    // A token is its tenant's: another tenant cannot even use it, and its own reads answer
    // its own rows.
    let globex = t.token("alice", "globex", &["admin"], Some("east"), None);
    let other = t.get_as(&url(&changed.token()), &globex).await;
    assert_eq!((other.status, other.body["field"].as_str()), (400, Some("consistency_token")), "{}", other.body);
    let own = t.get_as(&format!("{}/v1/pipeline?consistency=strong", t.queries()), &globex).await;
    assert_eq!(own.body["data"], json!([]), "another tenant's answer is its own: {}", own.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_foreign_tokens_are_refused() {
    let t = TestSystem::start().await;
    let created = new_opportunity(&t, "ed", None).await;
    let id = created.body["id"].as_str().unwrap();
    let topics = t.config.topics();
    let positions = t.config.tokens().decode("default", &created.token()).unwrap();
    let foreign = tidemark_http::TokenCodec::new("somewhere-else", &topics.all(), &t.config.token_secret).encode("default", &positions);
    let forged = tidemark_http::TokenCodec::new(&t.config.deployment, &topics.all(), "a guessed secret").encode("default", &positions);
    let mut beyond = tidemark_http::ConsistencyToken::default();
    beyond.include(&topics.opportunity, 0, 1_000_000);
    let beyond = t.config.tokens().encode("default", &beyond);
    for (bad, says) in [
        ("garbage", "malformed"),
        (foreign.as_str(), "another Tidemark deployment"),
        (forged.as_str(), "not given to this tenant"),
        (beyond.as_str(), "past the end of the log"),
    ] {
        let read = t.get(&format!("{}/v1/opportunities/{id}?consistency_token={bad}", t.queries())).await;
        assert_eq!(read.status, 400, "{bad}: {}", read.body);
        assert!(read.body["detail"].as_str().unwrap().contains(says), "{}", read.body);
    }
    let before = t.log_end_offsets(&topics.opportunity).await;
    let command = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Proposal"}), &[("Consistency-Token", "garbage")]).await;
    assert_eq!(command.status, 400, "{}", command.body);
    assert_eq!(t.log_end_offsets(&topics.opportunity).await, before);
    let bad_params = t.get(&format!("{}/v1/pipeline?consistency=linearizable", t.queries())).await;
    assert_eq!((bad_params.status, bad_params.body["field"].as_str()), (422, Some("consistency")));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_show_lag_and_a_stalled_projection() {
    let (t, projector_config) = split_system(Config { stall_after_ms: 1000, ..test_config() }).await;
    let projectors = start_projectors(&projector_config).await;
    let created = new_opportunity(&t, "fay", None).await;
    for read in ["v1/pipeline", "v1/opportunities"] {
        let answer = t.get(&format!("{}/{read}?consistency=strong&wait_ms=20000&consistency_token={}", t.queries(), created.token())).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // Every projection catches up in its own time (joining its group, reading the fences).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let health = t.get(&format!("{}/healthz/projections", t.queries())).await;
        if health.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the projections never all caught up: {}", health.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    projectors.stop().await; // the consumer stops without telling anyone
    new_opportunity(&t, "fay", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = t.get(&format!("{}/healthz/projections", t.queries())).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.body["projections"]["opportunities"]["healthy"], false);
    assert!(!health.body["projections"]["pipeline"]["stalled_partitions"].as_array().unwrap().is_empty());

    let metrics = t.http.get(format!("{}/metrics", t.queries())).bearer_auth(t.operator()).send().await.unwrap().text().await.unwrap();
    let stalled = metrics.lines().filter(|l| l.starts_with("tidemark_projection_stalled{") && l.ends_with(" 1")).count();
    assert!(stalled >= 2, "both projections stalled somewhere:\n{metrics}");
    let lagging: Vec<&str> = metrics.lines().filter(|l| l.starts_with("tidemark_projection_lag_ms{projection=\"opportunities\"") && !l.ends_with(" 0")).collect();
    assert!(!lagging.is_empty() && lagging.iter().all(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap() >= 1500), "{lagging:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_ahead_of_its_log_is_reported() {
    // As if the broker's data had been deleted while the database stayed.
    let t = TestSystem::start().await;
    let created = new_opportunity(&t, "gus", None).await;
    assert_eq!(t.get(&format!("{}/v1/pipeline?consistency_token={}", t.queries(), created.token())).await.status, 200);
    let pool = t.pool().await;
    sqlx::query("UPDATE projection_offsets SET next_offset = next_offset + 1000 WHERE projection = 'pipeline' AND partition = 0")
        .execute(&pool)
        .await
        .unwrap();
    let health = t.get(&format!("{}/healthz/projections", t.queries())).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.body["projections"]["pipeline"]["ahead_of_log_partitions"].as_array().unwrap().len(), 1);
    assert_eq!(health.body["projections"]["opportunities"]["healthy"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_service_is_not_ready_while_a_projection_is_stalled() {
    // Long enough that a busy machine starts the system well within it: the writer's fence
    // markers, appended at its start, wait unapplied (no projector runs here), and 5 s were
    // once too few in a fresh-clone CI run, with the other tests of this file beside it.
    let stall_after = Duration::from_secs(10);
    let (t, projector_config) = split_system(Config { stall_after_ms: stall_after.as_millis() as u64, ..test_config() }).await;
    let health = || t.get(&format!("{}/healthz", t.queries()));
    // Only the writer's fence markers to apply, appended just now: nothing is stalled, and the
    // service is ready as soon as its first looks at the broker answer.
    let until = |status: u16, within: Duration| async move {
        let deadline = std::time::Instant::now() + within;
        let mut answer = health().await;
        while answer.status != status && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            answer = health().await;
        }
        answer
    };
    let ready = until(200, stall_after / 2).await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    let account = t.open_account("Acme").await;
    t.create_opportunity(&account, "amy", "100").await;
    tokio::time::sleep(stall_after + Duration::from_millis(500)).await;
    // A look whose peek at the log cannot tell the records' age decides nothing: the next does.
    let stalled = until(503, Duration::from_secs(10)).await;
    assert_eq!(stalled.status, 503, "{}", stalled.body);
    assert!(stalled.body["projections"].as_str().unwrap().contains("opportunities"), "{}", stalled.body);

    let _projectors = start_projectors(&projector_config).await;
    let ready_again = until(200, Duration::from_secs(30)).await;
    assert_eq!(ready_again.status, 200, "ready again once the projections catch up: {}", ready_again.body);
}
