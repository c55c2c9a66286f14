//! The analysts' tools against the real log: `replay as-of` and `replay verify`, run as
//! the `tidemark` binary would be.

mod common;

use std::process::Command;

use common::TestSystem;
use serde_json::{json, Value};

fn replay(t: &TestSystem, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .args(args)
        .env("DATABASE_URL", &t.config.database_url)
        .env("TIDEMARK_BROKERS", &t.config.brokers)
        .env("TIDEMARK_REGISTRY_URL", t.registry())
        .env("TIDEMARK_TOPIC_PREFIX", &t.config.topic_prefix)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .expect("the tidemark binary runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into(), String::from_utf8_lossy(&output.stderr).into())
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_and_verify_read_the_log_itself() {
    let t = TestSystem::start().await;
    let account = t.open_account("Acme").await;
    let created = t.create_opportunity(&account, "alice", "100.00").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let mut last = created;
    for (path, body) in [("stage", json!({"stage": "Proposal"})), ("amount", json!({"amount": {"value": "250.00", "currency": "EUR"}})), ("shares", json!({"user_id": "bob"}))] {
        let token = last.token();
        last = t.command(&format!("/v1/opportunities/{id}/{path}"), body, &[("Consistency-Token", &token)]).await;
        assert_eq!(last.status, 200, "{}", last.body);
    }
    for _ in 0..5 {
        t.create_opportunity(&account, "bob", "10").await;
    }
    let strong = |read: &str| t.get(&format!("{}/{read}?consistency=strong", t.queries()));
    assert_eq!(strong("v1/opportunities").await.status, 200);
    assert_eq!(strong("v1/pipeline").await.status, 200);

    // as-of: by version, and now.
    let (code, out, err) = replay(&t, &["as-of", "opportunity", &id, "--version", "2"]);
    assert_eq!(code, 0, "{err}");
    let at_v2: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((at_v2["version"].as_i64(), at_v2["state"]["stage"].as_str()), (Some(2), Some("Proposal")));
    assert_eq!(at_v2["state"]["amount"]["value"], "100.00");
    assert_eq!(at_v2["events"].as_array().unwrap().len(), 2);
    let (_, out, _) = replay(&t, &["as-of", "opportunity", &id]);
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((now["version"].as_i64(), now["state"]["amount"]["value"].as_str()), (Some(4), Some("250.00")));
    assert_eq!(now["state"]["shared_with"], json!(["bob"]));
    // as-of an instant: the moment the second event was recorded.
    let second_at = at_v2["events"][1]["event"]["envelope"]["recorded_at"].as_str().unwrap().to_string();
    let (_, out, _) = replay(&t, &["as-of", "opportunity", &id, "--at", &second_at]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["version"], 2);
    let (code, _, err) = replay(&t, &["as-of", "opportunity", &uuid::Uuid::now_v7().to_string()]);
    assert!(code != 0 && err.contains("no opportunity"), "{err}");

    // verify: a healthy system matches; a corrupted row and a missing cell are caught.
    for projection in ["opportunities", "pipeline"] {
        let (code, out, err) = replay(&t, &["verify", projection]);
        assert_eq!(code, 0, "{projection}: {out}{err}");
        assert!(err.contains("6 opportunities replayed"), "{err}");
    }
    let pool = t.pool().await;
    sqlx::query("UPDATE opportunities SET stage = 'Negotiation' WHERE id = $1").bind(uuid::Uuid::parse_str(&id).unwrap()).execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM pipeline WHERE owner_id = 'bob'").execute(&pool).await.unwrap();
    let (code, out, err) = replay(&t, &["verify", "opportunities"]);
    assert_eq!(code, 1, "drift makes verify fail: {err}");
    let drift: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(drift, vec![json!({"table": "opportunities", "key": id, "field": "stage", "expected": "Proposal", "found": "Negotiation"})]);
    let (code, out, _) = replay(&t, &["verify", "pipeline"]);
    assert_eq!(code, 1);
    assert!(out.contains("/bob/Prospecting/EUR") && out.contains("no row"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_gives_the_windows_events_the_same_way_every_time() {
    let t = TestSystem::start().await;
    let account = t.open_account("Early Inc").await;
    t.create_opportunity(&account, "alice", "1").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let from = chrono::Utc::now().to_rfc3339();
    let late = t.create_opportunity(&account, "bob", "2").await;
    let id = late.body["id"].as_str().unwrap();
    assert_eq!(t.command(&format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "fast"}), &[]).await.status, 200);

    let (code, out, err) = replay(&t, &["export", "--from", &from]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["envelope"]["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["OpportunityCreated", "OpportunityClosed"], "only the window's events");
    assert_eq!(events[1]["data"]["reason"], "fast");
    assert!(err.contains("export: 2 events"), "a summary: {err}");

    let (_, closed, _) = replay(&t, &["export", "--from", &from, "--types", "OpportunityClosed"]);
    assert_eq!(closed.lines().count(), 1);

    let dir = std::env::temp_dir().join(format!("tidemark-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<String> = (0..2).map(|i| dir.join(format!("{i}.csv")).display().to_string()).collect();
    for file in &files {
        let (code, _, err) = replay(&t, &["export", "--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--format", "csv", "--output", file]);
        assert_eq!(code, 0, "{err}");
    }
    let (a, b) = (std::fs::read(&files[0]).unwrap(), std::fs::read(&files[1]).unwrap());
    assert_eq!(a, b, "the same log gives the same bytes");
    let mut reader = csv::Reader::from_reader(&a[..]);
    assert_eq!(&reader.headers().unwrap()[4], "event_type");
    assert_eq!(reader.records().count(), 4, "account, two opportunities, one close");
    let _ = std::fs::remove_dir_all(&dir);
}
