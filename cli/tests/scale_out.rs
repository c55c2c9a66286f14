//! Three of each against one broker: three writers sharing the shards, three projector
//! processes sharing each projection's partitions, two query services. Under steady traffic
//! sent to any writer, one writer is killed (SIGKILL), then a second, then both start again;
//! then the third is paused (SIGSTOP) until the group has given its shard away, and woken.
//! Every acknowledged command is then in the log exactly once as readers fold it (no zombie
//! append counts), versions are contiguous, the read models equal a replay, a token minted
//! by any writer is honoured by either query service, and the report says how long each
//! shard was without an owner.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{free_addr, report, test_config, KillOnDrop, Serve};
use rand::Rng;
use serde_json::{json, Value};
use tidemark_events::fold::{PartitionFold, Verdict};
use tidemark_schemas::Decoded;

const WRITERS: usize = 3;
const CLIENTS: usize = 6;

struct Writer {
    name: String,
    addr: std::net::SocketAddr,
    process: Option<KillOnDrop>,
}

struct Writers {
    serve: Arc<Serve>,
    all: Mutex<Vec<Writer>>,
}

impl Writers {
    fn spawn(&self, i: usize) {
        let mut all = self.all.lock().unwrap();
        let w = &mut all[i];
        let addr = w.addr.to_string();
        w.process = Some(self.serve.spawn_service("command-service", &[("TIDEMARK_COMMAND_ADDR", &addr), ("TIDEMARK_WRITER_NAME", &w.name)]));
    }

    fn kill(&self, i: usize) -> DateTime<Utc> {
        let mut all = self.all.lock().unwrap();
        all[i].process.take().expect("running").kill();
        Utc::now()
    }

    /// Sends the writer's process a signal (`STOP`, `CONT`).
    fn signal(&self, i: usize, signal: &str) -> DateTime<Utc> {
        let pid = self.all.lock().unwrap()[i].process.as_ref().expect("running").0.id();
        let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
        Utc::now()
    }

    fn urls(&self) -> Vec<String> {
        self.all.lock().unwrap().iter().map(|w| format!("http://{}", w.addr)).collect()
    }

    async fn ready(&self, i: usize) {
        answers(&self.serve.http, &format!("{}/healthz", self.urls()[i]), &format!("writer {i}")).await;
    }

    /// Sends a command to any writer until it is answered (a 2xx or a 4xx), with the same
    /// Idempotency-Key after every failure: a careful client behind a load balancer.
    async fn send(&self, path: &str, body: &Value, key: &str) -> (u16, Value) {
        let any = || {
            let urls = self.urls();
            urls[rand::rng().random_range(0..urls.len())].clone()
        };
        self.serve.send_via(any, path, body, key, Duration::from_secs(90)).await
    }
}

/// Waits until `url` answers 200; fails saying what it answered last.
async fn answers(http: &reqwest::Client, url: &str, what: &str) {
    let started = Instant::now();
    loop {
        let last = match http.get(url).send().await {
            Ok(r) if r.status() == 200 => return,
            Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        assert!(started.elapsed() < Duration::from_secs(90), "{what} did not start: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A writer's transactions by outcome, from its `/metrics`.
async fn transactions(serve: &Serve, url: &str) -> BTreeMap<String, u64> {
    let metrics = serve.http.get(format!("{url}/metrics")).bearer_auth(&serve.operator).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("tidemark_writer_transactions_total{outcome=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(outcome, n)| (outcome.to_string(), n.trim().parse().unwrap_or(0)))
        .collect()
}

/// Who owns each shard now, by the writers' own record.
async fn owners(pool: &sqlx::PgPool) -> BTreeMap<i32, String> {
    sqlx::query_as::<_, (i32, String)>("SELECT shard, writer FROM writer_shards").fetch_all(pool).await.unwrap().into_iter().collect()
}

async fn wait_for_owners(pool: &sqlx::PgPool, what: &str, ok: impl Fn(&BTreeMap<i32, String>) -> bool) {
    let started = Instant::now();
    loop {
        let now = owners(pool).await;
        if ok(&now) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{what}: the shards' owners are {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_writers_three_projectors_two_query_services_survive_killed_writers() {
    let mut config = test_config();
    config.partitions = 3; // three shards
    let serve = Arc::new(Serve::new(config).await);
    let pool = sqlx::PgPool::connect(&serve.config.database_url).await.unwrap();
    let _registry = serve.spawn_service("registry", &[]);
    // The writers register the event schemas as they start.
    answers(&serve.http, &format!("{}/config", serve.registry), "the registry").await;
    let writers = Arc::new(Writers {
        serve: serve.clone(),
        all: Mutex::new((0..WRITERS).map(|i| Writer { name: format!("w{}", i + 1), addr: free_addr(), process: None }).collect()),
    });
    for i in 0..WRITERS {
        writers.spawn(i);
    }
    for i in 0..WRITERS {
        writers.ready(i).await;
    }
    wait_for_owners(&pool, "three writers started", |o| o.len() == 3 && o.values().collect::<std::collections::BTreeSet<_>>().len() == 3).await;
    let _projectors: Vec<KillOnDrop> = (0..3).map(|_| serve.spawn_service("projector", &[("TIDEMARK_PROJECTOR_ADDR", "127.0.0.1:0")])).collect();
    let query_addrs = [free_addr(), free_addr()];
    let _queries: Vec<KillOnDrop> = query_addrs.iter().map(|a| serve.spawn_service("query-service", &[("TIDEMARK_QUERY_ADDR", &a.to_string())])).collect();

    let (status, account) = writers.send("/v1/accounts", &json!({"name": "Acme"}), "account").await;
    assert_eq!(status, 201, "{account}");
    let account = account["id"].as_str().unwrap().to_string();

    // Steady traffic: each client creates deals and re-prices its own, through any writer.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, u16, Value)>::new()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (writers, stop, acknowledged, account) = (writers.clone(), stop.clone(), acknowledged.clone(), account.clone());
        clients.push(tokio::spawn(async move {
            let mut deals: Vec<String> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("client-{c}-{n}");
                let (path, body) = match deals.len() {
                    0 => ("/v1/opportunities".to_string(), json!({"account_id": account, "name": key, "owner_id": "alice", "amount": {"value": "100.00", "currency": "EUR"}, "close_date": "2027-06-30"})),
                    k if n % 3 == 0 && k < 20 => ("/v1/opportunities".to_string(), json!({"account_id": account, "name": key, "owner_id": "alice", "amount": {"value": "100.00", "currency": "EUR"}, "close_date": "2027-06-30"})),
                    k => {
                        let deal = &deals[rand::rng().random_range(0..k)].clone();
                        (format!("/v1/opportunities/{deal}/amount"), json!({"amount": {"value": format!("{}.00", 1000 + n), "currency": "EUR"}}))
                    }
                };
                let (status, answer) = writers.send(&path, &body, &key).await;
                if status == 201 {
                    deals.push(answer["id"].as_str().unwrap().to_string());
                }
                acknowledged.lock().unwrap().push((key, status, answer));
                let pause = Duration::from_millis(rand::rng().random_range(10..40));
                tokio::time::sleep(pause).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut kills = vec![("w1".to_string(), writers.kill(0))];
    wait_for_owners(&pool, "w1 killed", |o| !o.values().any(|w| w == "w1")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    kills.push(("w2".to_string(), writers.kill(1)));
    wait_for_owners(&pool, "w2 killed", |o| o.values().all(|w| w == "w3")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..2 {
        writers.spawn(i);
    }
    for i in 0..2 {
        writers.ready(i).await;
    }
    wait_for_owners(&pool, "w1 and w2 back", |o| o.values().collect::<std::collections::BTreeSet<_>>().len() == 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A zombie: w3 stops (SIGSTOP) with commands in flight and loses its shard while it
    // sleeps; woken, it must not commit what it had begun.
    let paused = writers.signal(2, "STOP");
    wait_for_owners(&pool, "w3 paused", |o| !o.values().any(|w| w == "w3")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    writers.signal(2, "CONT");
    kills.push(("w3".to_string(), paused));
    wait_for_owners(&pool, "w3 awake", |o| o.values().collect::<std::collections::BTreeSet<_>>().len() == 3).await;
    let zombie = transactions(&serve, &writers.urls()[2]).await;
    report(&format!("scale-out: w3's transactions once woken, by outcome: {zombie:?}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let answers = std::mem::take(&mut *acknowledged.lock().unwrap());

    // How long each shard was without an owner: from its owner's kill or release to the
    // next owner serving it.
    let changes: Vec<(i32, String, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT shard, writer, change, at FROM writer_shard_changes ORDER BY at").fetch_all(&pool).await.unwrap();
    let mut ownerless = Vec::new();
    for shard in 0..3 {
        let mut owner: Option<String> = None;
        let mut since: Option<(DateTime<Utc>, String)> = None;
        let mut events: Vec<(DateTime<Utc>, &str, String)> = changes.iter().filter(|c| c.0 == shard).map(|c| (c.3, c.2.as_str(), c.1.clone())).collect();
        events.extend(kills.iter().map(|(w, at)| (*at, "killed", w.clone())));
        events.sort_by_key(|e| e.0);
        for (at, change, writer) in events {
            match change {
                "owned" => {
                    if let Some((from, why)) = since.take() {
                        ownerless.push((shard, why, writer.clone(), (at - from).to_std().unwrap_or_default()));
                    }
                    owner = Some(writer);
                }
                "released" if owner.as_ref() == Some(&writer) => {
                    since = Some((at, format!("{writer} gave it up")));
                    owner = None;
                }
                "killed" if owner.as_ref() == Some(&writer) => {
                    since = Some((at, format!("{writer} killed or paused")));
                    owner = None;
                }
                _ => {}
            }
        }
    }
    for (shard, why, to, took) in &ownerless {
        report(&format!("scale-out: shard {shard} had no owner for {took:?} ({why}, then {to} served it)"));
    }

    // Both query services see everything, honouring a token from any writer.
    let (last_key, _, last) = answers.iter().rev().find(|(_, status, _)| *status < 300).expect("some command acknowledged").clone();
    let id = last["id"].as_str().unwrap();
    for addr in query_addrs {
        let url = format!("http://{addr}/v1/opportunities/{id}?consistency_token={}&wait_ms=30000", last["consistency_token"].as_str().unwrap());
        let read = serve.http.get(&url).bearer_auth(&serve.token).send().await.unwrap();
        assert_eq!(read.status(), 200, "{last_key} read through {addr}");
        let read: Value = read.json().await.unwrap();
        assert!(read["data"]["version"].as_i64() >= last["version"].as_i64(), "{read}");
    }

    // An offline batch spans shards: the writer that takes it forwards each intent to the
    // owner of its deal's shard, and answers for all of them.
    let deals: Vec<String> = answers.iter().filter(|(_, status, _)| *status == 201).take(9).map(|(_, _, a)| a["id"].as_str().unwrap().to_string()).collect();
    let shards: std::collections::BTreeSet<i32> = deals.iter().map(|d| tidemark_events::partition::partition_for(d.as_bytes(), 3)).collect();
    assert!(shards.len() > 1, "the deals of the batch live on several shards: {shards:?}");
    let intents: Vec<Value> = deals
        .iter()
        .enumerate()
        .map(|(i, deal)| json!({"idempotency_key": format!("sync-{i}"), "opportunity_id": deal, "base_version": 1, "device_time": Utc::now(),
                               "command": {"type": "set_preference", "field": "next_step", "value": "Call back"}}))
        .collect();
    let (status, synced) = writers.send("/v1/sync", &json!({"intents": intents}), "sync-batch").await;
    assert_eq!(status, 200, "{synced}");
    let outcomes: Vec<&str> = synced["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["applied"; deals.len()], "{synced}");

    // The log as every reader folds it.
    let mut log = common::read_log(&serve.config.brokers, &serve.registry, &serve.config.topics().opportunity).await;
    log.sort_by_key(|(partition, offset, _)| (*partition, *offset));
    let mut folds: BTreeMap<i32, PartitionFold> = BTreeMap::new();
    let mut applied_versions: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    let mut applied: BTreeMap<String, Vec<(uuid::Uuid, i64)>> = BTreeMap::new();
    let (mut fenced, mut duplicates, mut gaps) = (0, 0, Vec::new());
    for (partition, offset, decoded) in &log {
        let fold = folds.entry(*partition).or_default();
        match decoded {
            Decoded::Fence(marker) => fold.observe_fence(marker.writer_epoch),
            Decoded::Event(e) => {
                let env = &e.envelope;
                let at = applied_versions.get(&env.aggregate_id).copied().unwrap_or(0);
                match fold.judge(env.writer_epoch, at, env.aggregate_version) {
                    Verdict::Apply => {
                        applied_versions.insert(env.aggregate_id, env.aggregate_version);
                        applied.entry(env.command_id.clone()).or_default().push((env.aggregate_id, env.aggregate_version));
                    }
                    Verdict::Fenced { .. } => fenced += 1,
                    Verdict::Duplicate => duplicates += 1,
                    Verdict::Gap { .. } => gaps.push((*partition, *offset)),
                }
            }
        }
    }
    let acked: Vec<&(String, u16, Value)> = answers.iter().filter(|(_, status, _)| *status < 300).collect();
    let refused: Vec<&(String, u16, Value)> = answers.iter().filter(|(_, status, _)| *status >= 300).collect();
    let mut wrong = Vec::new();
    for (key, status, answer) in &acked {
        let id: uuid::Uuid = answer["id"].as_str().unwrap_or_else(|| panic!("{key}: {status} {answer}")).parse().unwrap();
        let found = applied.get(key).cloned().unwrap_or_default();
        if found != vec![(id, answer["version"].as_i64().unwrap())] {
            wrong.push(format!("{key}: answered {id} v{}, the log holds {found:?}", answer["version"]));
        }
    }
    report(&format!(
        "scale-out: {} commands acknowledged through 3 writers ({} refused), 2 writers killed and restarted, 1 paused and woken; \
         the log holds {} records of deals: {} passed over as zombie appends, {} as duplicates, {} gaps; {} acknowledged commands not exactly once",
        acked.len(),
        refused.len(),
        log.len(),
        fenced,
        duplicates,
        gaps.len(),
        wrong.len()
    ));
    assert!(refused.is_empty(), "every command is accepted in the end: {refused:?}");
    assert!(wrong.is_empty(), "acknowledged commands not in the log exactly once, as answered: {wrong:?}");
    assert!(gaps.is_empty(), "gaps at {gaps:?}");
    assert!(duplicates == 0, "no command was appended twice");
    assert!(ownerless.len() >= kills.len(), "every killed writer's shards found a new owner: {ownerless:?}");

    for projection in ["opportunities", "pipeline"] {
        let output = serve.cli(&["replay", "verify", projection]).output().unwrap();
        let out = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{projection}: {out}");
    }
}
