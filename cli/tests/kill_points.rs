//! The process that appends dies (SIGKILL) at random points while it runs multi-event
//! commands (a quote accept: two events of one stream; a lead conversion: four records on
//! four topics) and single-event ones; it is restarted at once, and clients retry with the
//! same Idempotency-Keys. Every acknowledged command then has all of its events, none
//! twice, every stream's versions are contiguous, the read models equal a replay of the
//! log, and the projections resume within seconds of each quick restart.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{test_config, Serve};
use rand::Rng;
use serde_json::{json, Value};
use tidemark_schemas::Decoded;

const KILLS: usize = 8;
const QUOTES: usize = 8;
const LEADS: usize = 8;
const CREATES: usize = 16;

/// What each command should have appended: its idempotency key's events, and those of the
/// records it creates (a conversion's), by command id.
struct Expected {
    events: BTreeMap<String, usize>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_killed_at_random_points_loses_no_acknowledged_command_and_doubles_none() {
    let serve = Arc::new(Serve::new(test_config()).await);
    let process = Arc::new(Mutex::new(serve.spawn()));
    serve.ready().await;

    // Quotes ready to accept and leads ready to convert, before the kills.
    let (status, account) = serve.send("/v1/accounts", json!({"name": "Acme"}), "setup-account").await;
    assert_eq!(status, 201, "{account}");
    let account = account["id"].as_str().unwrap().to_string();
    let mut quotes = Vec::new();
    for i in 0..QUOTES {
        let body = json!({"account_id": account, "name": format!("Deal {i}"), "owner_id": "alice", "amount": {"value": "1000.00", "currency": "EUR"}, "close_date": "2027-06-30"});
        let (_, created) = serve.send("/v1/opportunities", body, &format!("setup-deal-{i}")).await;
        let id = created["id"].as_str().unwrap().to_string();
        let quote = json!({"currency": "EUR", "valid_until": "2099-12-31", "lines": [{"product": "Truck", "quantity": "1", "unit_price": "900.00", "discount_percent": "0"}]});
        let (status, drafted) = serve.send(&format!("/v1/opportunities/{id}/quotes"), quote, &format!("setup-quote-{i}")).await;
        assert_eq!(status, 201, "{drafted}");
        let q = drafted["quote_id"].as_str().unwrap().to_string();
        let (status, submitted) = serve.send(&format!("/v1/opportunities/{id}/quotes/{q}/submit"), json!({}), &format!("setup-submit-{i}")).await;
        assert_eq!(status, 200, "{submitted}");
        quotes.push((id, q));
    }
    let mut leads = Vec::new();
    for i in 0..LEADS {
        let lead = json!({"name": "Jane Doe", "company": format!("Initech {i}"), "email": "jane@initech.example", "territory": "east", "segment": "smb", "source": "web form"});
        let (status, captured) = serve.send("/v1/leads", lead, &format!("setup-lead-{i}")).await;
        assert_eq!(status, 201, "{captured}");
        let id = captured["id"].as_str().unwrap().to_string();
        assert_eq!(serve.send(&format!("/v1/leads/{id}/qualify"), json!({}), &format!("setup-qualify-{i}")).await.0, 200);
        leads.push(id);
    }

    // The work, shuffled; each item names its key and what it must append.
    let mut expected = Expected { events: BTreeMap::new() };
    let mut work: Vec<(String, Value, String)> = Vec::new();
    for (i, (id, q)) in quotes.iter().enumerate() {
        let key = format!("accept-{i}");
        expected.events.insert(key.clone(), 2);
        work.push((format!("/v1/opportunities/{id}/quotes/{q}/accept"), json!({}), key));
    }
    for (i, id) in leads.iter().enumerate() {
        let key = format!("convert-{i}");
        expected.events.insert(key.clone(), 1);
        for kind in ["account", "contact", "opportunity"] {
            expected.events.insert(format!("convert-lead-{id}-{kind}"), 1);
        }
        work.push((format!("/v1/leads/{id}/convert"), json!({"opportunity_name": format!("Converted {i}"), "amount": {"value": "500.00", "currency": "EUR"}, "close_date": "2027-03-31"}), key));
    }
    for i in 0..CREATES {
        let key = format!("create-{i}");
        expected.events.insert(key.clone(), 1);
        work.push((
            "/v1/opportunities".into(),
            json!({"account_id": account, "name": format!("New {i}"), "owner_id": "alice", "amount": {"value": "100.00", "currency": "EUR"}, "close_date": "2027-06-30"}),
            key,
        ));
    }
    {
        let mut rng = rand::rng();
        for i in (1..work.len()).rev() {
            work.swap(i, rng.random_range(0..=i));
        }
    }

    let queue = Arc::new(Mutex::new(work));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (serve, queue, answers) = (serve.clone(), queue.clone(), answers.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let Some((path, body, key)) = queue.lock().unwrap().pop() else { return };
                let (status, answer) = serve.send(&path, body, &key).await;
                answers.lock().unwrap().push((key, status, answer));
                let pause = Duration::from_millis(rand::rng().random_range(0..80));
                tokio::time::sleep(pause).await;
            }
        }));
    }
    let mut starts = Vec::new();
    for _ in 0..KILLS {
        let pause = Duration::from_millis(rand::rng().random_range(100..700));
        tokio::time::sleep(pause).await;
        process.lock().unwrap().kill();
        *process.lock().unwrap() = serve.spawn();
        starts.push(serve.ready().await);
    }
    for client in clients {
        client.await.unwrap();
    }
    // After a quick restart, the projections resume: strong reads succeed again.
    let restarted = Instant::now();
    process.lock().unwrap().kill();
    *process.lock().unwrap() = serve.spawn();
    starts.push(serve.ready().await);
    while !serve.strong_read("/v1/pipeline?owner=alice&consistency=strong&wait_ms=1000").await {
        assert!(restarted.elapsed() < Duration::from_secs(90), "the projections did not resume after a quick restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let projections_resumed = restarted.elapsed();

    // Every topic's log, by command id and by stream.
    let mut appended: BTreeMap<String, usize> = BTreeMap::new();
    let mut versions: BTreeMap<uuid::Uuid, Vec<i64>> = BTreeMap::new();
    let registry = serve.registry.clone();
    for topic in serve.config.topics().all() {
        for (_, _, decoded) in common::read_log(&serve.config.brokers, &registry, topic).await {
            if let Decoded::Event(e) = decoded {
                *appended.entry(e.envelope.command_id.clone()).or_default() += 1;
                versions.entry(e.envelope.aggregate_id).or_default().push(e.envelope.aggregate_version);
            }
        }
    }
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let acknowledged: Vec<&String> = answers.iter().filter(|(_, status, _)| *status < 300).map(|(key, _, _)| key).collect();
    let refused: Vec<_> = answers.iter().filter(|(_, status, _)| *status >= 300).collect();
    let (mut lost, mut partial, mut doubled) = (Vec::new(), Vec::new(), Vec::new());
    for key in &acknowledged {
        let mut keys = vec![key.to_string()];
        if let Some(i) = key.strip_prefix("convert-") {
            let lead = &leads[i.parse::<usize>().unwrap()];
            keys.extend(["account", "contact", "opportunity"].map(|kind| format!("convert-lead-{lead}-{kind}")));
        }
        let found: Vec<(usize, usize)> = keys.iter().map(|k| (appended.get(k).copied().unwrap_or(0), expected.events[k])).collect();
        if found.iter().all(|(n, _)| *n == 0) {
            lost.push(key.to_string());
        } else if found.iter().any(|(n, want)| n < want) {
            partial.push(key.to_string());
        }
        if found.iter().any(|(n, want)| n > want) {
            doubled.push(key.to_string());
        }
    }
    let gaps: Vec<_> = versions.iter().filter(|(_, v)| **v != (1..=v.len() as i64).collect::<Vec<_>>()).collect();
    let mut writer_recovery: Vec<Duration> = starts.iter().map(|(waited, _)| *waited).collect();
    writer_recovery.sort();
    let restored = |field: &str| starts.iter().map(|(_, start)| start[field].as_u64().unwrap_or(0)).sum::<u64>();
    common::report(&format!(
        "kill points: {KILLS} kills + 1 quick restart; {} commands acknowledged, {} refused, lost {}, partial {}, doubled {}; \
         writer serving again after restart: min {:?}, median {:?}, max {:?} ({} of {} partitions restored from snapshots); \
         projections resumed {:?} after the last restart",
        acknowledged.len(),
        refused.len(),
        lost.len(),
        partial.len(),
        doubled.len(),
        writer_recovery[0],
        writer_recovery[writer_recovery.len() / 2],
        writer_recovery[writer_recovery.len() - 1],
        restored("from_snapshots"),
        restored("partitions"),
        projections_resumed,
    ));
    assert!(refused.is_empty(), "every command is accepted in the end: {refused:?}");
    assert_eq!(acknowledged.len(), expected.events.keys().filter(|k| !k.starts_with("convert-lead-")).count());
    assert!(lost.is_empty() && partial.is_empty() && doubled.is_empty(), "lost {lost:?}, partial {partial:?}, doubled {doubled:?}");
    assert!(gaps.is_empty(), "streams whose versions are not 1..n: {gaps:?}");

    let replay = |what: &str| {
        let output = serve.cli(&["replay", "verify", what]).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr))
    };
    for projection in ["opportunities", "pipeline"] {
        let (code, out) = replay(projection);
        assert_eq!(code, Some(0), "{projection}: {out}");
    }
}
