//! Writer snapshots: a restarted writer restores each partition from its snapshot and reads
//! only the log after it. A snapshot it cannot trust (taken by another version, damaged at
//! rest, or anchored on a record the log does not hold) is ignored, its partition is read
//! from the start, and the writer's state is the same either way.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{test_config, TestSystem};
use serde_json::{json, Value};
use tidemark::{Config, Services};

const SERVICES: Services = Services { registry: true, commands: true, ..Services::NONE };

/// Waits until every partition's snapshot is anchored on its last record (the record
/// before the final transaction marker), so the next start has only the tail to read.
async fn wait_for_current_snapshots(t: &TestSystem) {
    let pool = t.pool().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut behind = Vec::new();
        for topic in t.config.topics().all() {
            for (partition, end) in t.log_end_offsets(topic).await {
                let anchor: Option<i64> = sqlx::query_scalar("SELECT anchor_offset FROM writer_snapshots WHERE topic = $1 AND partition = $2")
                    .bind(topic)
                    .bind(partition)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                if anchor != Some(end - 2) {
                    behind.push(format!("{topic}/{partition}: anchor {anchor:?}, log end {end}"));
                }
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the writer did not save current snapshots: {behind:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_report(t: &TestSystem) -> Value {
    let health = t.get(&format!("{}/healthz", t.commands())).await;
    assert_eq!(health.status, 200, "{}", health.body);
    health.body["start"].clone()
}

/// Changes each opportunity's amount at the version it was left at: a 409 would mean the
/// writer's state lost or doubled an event.
async fn change_each(t: &TestSystem, versions: &mut BTreeMap<String, i64>, value: &str) {
    for (id, version) in versions.iter_mut() {
        let answer = t
            .command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": value, "currency": "EUR"}}), &[("If-Match", &format!("\"{version}\""))])
            .await;
        assert_eq!(answer.status, 200, "opportunity {id} at version {version}: {}", answer.body);
        *version += 1;
    }
}

async fn restart(t: TestSystem, config: &Config) -> TestSystem {
    t.stop().await;
    TestSystem::start_with(config.clone(), SERVICES).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_writer_reads_only_the_log_after_its_snapshots_and_ignores_those_it_cannot_trust() {
    let config = test_config();
    let t = TestSystem::start_with(config.clone(), SERVICES).await;
    let partitions = t.config.topics().all().len() * t.config.partitions as usize;
    let account = t.open_account("Snapshot Ltd").await;
    let mut versions = BTreeMap::new();
    let mut first_key = None;
    for i in 0..8 {
        let key = format!("snapshot-create-{i}");
        let body = json!({"account_id": account, "name": format!("Deal {i}"), "owner_id": "alice",
            "amount": {"value": "1000", "currency": "EUR"}, "close_date": "2026-12-31"});
        let answer = t.command("/v1/opportunities", body.clone(), &[("Idempotency-Key", &key)]).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let id = answer.body["id"].as_str().unwrap().to_string();
        first_key.get_or_insert((key, body, id.clone()));
        versions.insert(id, 1);
    }
    change_each(&t, &mut versions, "2000").await;
    wait_for_current_snapshots(&t).await;

    // A tail after the snapshots: two changes.
    let tail: Vec<String> = versions.keys().take(2).cloned().collect();
    for id in &tail {
        let version = versions[id];
        let answer = t.command(&format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "2500", "currency": "EUR"}}), &[("If-Match", &format!("\"{version}\""))]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        *versions.get_mut(id).unwrap() += 1;
    }
    let t = restart(t, &config).await;
    let report = start_report(&t).await;
    println!("start from snapshots: {report}");
    assert_eq!(report["from_snapshots"], partitions, "{report}");
    assert_eq!(report["snapshots_ignored"], json!([]), "{report}");
    // Each partition's anchor again (folding it changes nothing) and the two changes of the
    // tail, unless a snapshot caught them before the stop: nothing from before the snapshots.
    // (The new fence markers come after, as the writer takes its shards.)
    let read = report["records_read"].as_u64().unwrap() as usize;
    assert!((partitions..=partitions + tail.len()).contains(&read), "{report}");

    // The restored state: versions, the account that new opportunities need (a lookup), and
    // an Idempotency-Key used before the snapshots, which is not in the tail.
    change_each(&t, &mut versions, "3000").await;
    let (key, body, id) = first_key.unwrap();
    let retried = t.command("/v1/opportunities", body, &[("Idempotency-Key", &key)]).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.header("idempotent-replayed"), Some("true"), "the retry is answered from the restored outcome: {}", retried.body);
    assert_eq!(retried.body["id"], id);
    t.create_opportunity(&account, "alice", "500").await;
    wait_for_current_snapshots(&t).await;

    // Three snapshots the next start must not trust.
    let pool = t.pool().await;
    let damaged: Vec<(String, i32)> = sqlx::query_as("SELECT topic, partition FROM writer_snapshots WHERE topic = ANY($1) AND chunks > 0 ORDER BY anchor_offset DESC, topic, partition LIMIT 3")
        .bind(t.config.topics().all().map(String::from).to_vec())
        .fetch_all(&pool)
        .await
        .unwrap();
    let row = |i: usize| (damaged[i].0.clone(), damaged[i].1);
    let edit = |sql: &'static str, (topic, partition): (String, i32)| {
        let pool = pool.clone();
        async move { sqlx::query(sql).bind(topic).bind(partition).execute(&pool).await.unwrap() }
    };
    // Anchored at the partition's first record: the log holds another record there.
    edit("UPDATE writer_snapshots SET anchor_offset = 0 WHERE topic = $1 AND partition = $2", row(0)).await;
    edit("UPDATE writer_snapshot_chunks SET body = body || '\\x20'::bytea WHERE topic = $1 AND partition = $2 AND chunk = 0", row(1)).await;
    edit("UPDATE writer_snapshots SET code_version = '0.0.0+another-build' WHERE topic = $1 AND partition = $2", row(2)).await;
    let t = restart(t, &config).await;
    let report = start_report(&t).await;
    println!("start with three snapshots ignored: {report}");
    assert_eq!(report["from_snapshots"], partitions - 3, "{report}");
    let ignored: Vec<String> = report["snapshots_ignored"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let says = |(topic, partition): (String, i32), why: &str| ignored.iter().any(|r| r.starts_with(&format!("{topic}/{partition}: ")) && r.contains(why));
    assert!(says(row(0), "another record at the snapshot's anchor"), "{ignored:?}");
    assert!(says(row(1), "checksum does not match"), "{ignored:?}");
    assert!(says(row(2), "taken by version 0.0.0+another-build"), "{ignored:?}");
    change_each(&t, &mut versions, "4000").await;
    t.stop().await;
}
