//! The broker dies (SIGKILL) under a steady stream of commands and reads, and comes back on
//! the same data. Tidemark is not restarted: while the broker is away, commands get a quick
//! 503; within seconds of its return they succeed again. Every acknowledged command is then
//! in the log exactly once, retries with the same key included, and the read models equal a
//! replay of the log.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{test_config, OwnBroker, TestSystem};
use serde_json::json;
use tidemark::Services;
use tidemark_schemas::Decoded;

const WRITERS: usize = 4;

#[derive(Default)]
struct Tally {
    /// Idempotency key → the opportunity id of its acknowledged command.
    acknowledged: BTreeMap<String, String>,
    refused_while_away: usize,
    slowest_refusal: Duration,
    /// When a command last failed, and when one first succeeded after the broker returned.
    last_failure: Option<Instant>,
    first_success_after_return: Option<Instant>,
}

/// Sends one command with its Idempotency-Key until it is acknowledged, as a careful client
/// retries, and counts what it saw.
async fn send_until_acknowledged(t: &TestSystem, tally: &Mutex<Tally>, returned: &Mutex<Option<Instant>>, key: String, path: &str, body: serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sent = Instant::now();
        let answer = t.command(path, body.clone(), &[("Idempotency-Key", &key)]).await;
        {
            let mut tally = tally.lock().unwrap();
            if answer.status / 100 == 2 {
                tally.acknowledged.insert(key, answer.body["id"].as_str().unwrap_or(path).to_string());
                let back = *returned.lock().unwrap();
                if back.is_some_and(|back| sent >= back) && tally.first_success_after_return.is_none() {
                    tally.first_success_after_return = Some(Instant::now());
                }
                return;
            }
            assert_eq!(answer.status, 503, "{}", answer.body);
            assert!(answer.header("retry-after").is_some(), "a 503 says when to retry");
            tally.refused_while_away += 1;
            tally.slowest_refusal = tally.slowest_refusal.max(sent.elapsed());
            tally.last_failure = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "{key} was never acknowledged; the last refusal: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_broker_loses_no_acknowledged_command_and_tidemark_recovers_without_a_restart() {
    let mut broker = OwnBroker::start();
    let config = tidemark::Config { brokers: broker.brokers(), partitions: 3, ..test_config() };
    let t = Arc::new(TestSystem::start_with(config, Services::ALL).await);
    let account = t.open_account("Before the outage").await;
    // Several clients change one deal at once, so that a chain of its commands is in flight
    // (each decided on the one before) when the broker dies.
    let hot = t.command("/v1/opportunities", json!({"account_id": account, "name": "Hot", "owner_id": "kim", "amount": {"value": "100", "currency": "EUR"}, "close_date": "2027-06-30"}), &[]).await;
    let hot = hot.body["id"].as_str().unwrap().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let returned = Arc::new(Mutex::new(None::<Instant>));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (t, stop, tally, account, returned, hot) = (t.clone(), stop.clone(), tally.clone(), account.clone(), returned.clone(), hot.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let create = json!({"account_id": account, "name": format!("w{w}-{n}"), "owner_id": "kim", "amount": {"value": "100", "currency": "EUR"}, "close_date": "2027-06-30"});
                send_until_acknowledged(&t, &tally, &returned, format!("w{w}-{n}"), "/v1/opportunities", create).await;
                // Every amount differs, so that none is refused as no change.
                let amount = json!({"amount": {"value": format!("{}", 1000 + w * 100_000 + n), "currency": "EUR"}});
                send_until_acknowledged(&t, &tally, &returned, format!("a{w}-{n}"), &format!("/v1/opportunities/{hot}/amount"), amount).await;
            }
        }));
    }
    let reads = {
        let (t, stop, account) = (t.clone(), stop.clone(), account.clone());
        tokio::spawn(async move {
            let mut statuses = BTreeMap::<u16, usize>::new();
            while !stop.load(Ordering::SeqCst) {
                let read = t.get(&format!("{}/v1/accounts/{account}?consistency=strong&wait_ms=1000", t.queries())).await;
                *statuses.entry(read.status).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            statuses
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = tally.lock().unwrap().acknowledged.len();
    assert!(before > 0, "commands were acknowledged before the outage");
    broker.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.resume();
    let back = Instant::now();
    *returned.lock().unwrap() = Some(back);
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let reads = reads.await.unwrap();

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let recovery = tally.first_success_after_return.map(|at| at - back);
    common::report(&format!(
        "broker outage: {} commands acknowledged ({before} before the kill), {} refusals with 503 (slowest {:?}), \
         broker away {:?}, commands succeeded again {recovery:?} after its return; strong reads by status: {reads:?}",
        tally.acknowledged.len(),
        tally.refused_while_away,
        tally.slowest_refusal,
        back - killed,
    ));
    assert!(tally.refused_while_away > 0, "commands were refused while the broker was away");
    assert!(tally.slowest_refusal < Duration::from_secs(15), "a refusal is quick, not a hang: {:?}", tally.slowest_refusal);
    assert!(recovery.is_some(), "commands succeed again after the broker's return, without a restart");

    // Exactly once: every acknowledged key is in the log once, and nothing else is.
    let log = t.read_log(&t.config.topics().opportunity).await;
    let mut appended = BTreeMap::<String, usize>::new();
    for (_, _, decoded) in &log {
        if let Decoded::Event(e) = decoded {
            *appended.entry(e.envelope.command_id.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = appended.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "commands appended twice: {twice:?}");
    let lost: Vec<_> = tally.acknowledged.keys().filter(|k| !appended.contains_key(*k)).collect();
    assert!(lost.is_empty(), "acknowledged commands missing from the log: {lost:?}");
    // The shared deal's stream has each version once, in order, whatever failed in between.
    let versions = common::versions_of(&log, &hot);
    let changes = tally.acknowledged.keys().filter(|k| k.starts_with('a')).count();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "the shared deal's versions are contiguous");
    assert_eq!(versions.len(), changes + 1, "the shared deal holds its creation and each acknowledged change once");

    // The read models catch up on their own and equal a replay of the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = t.get(&format!("{}/v1/pipeline?owner=kim&consistency=strong", t.queries())).await;
        if read.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the projections did not recover: {}", read.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for projection in ["opportunities", "pipeline"] {
        let (code, out, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "{projection}: {out}{err}");
    }
}
