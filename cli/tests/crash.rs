//! A crash at any point loses no effect and doubles none: a projector process killed with
//! SIGKILL mid-stream, again and again, ends with exactly the rows of a clean run; and so do
//! several projector processes sharing the partitions, one of them killed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{report, test_config, KillOnDrop, TestSystem};
use rand::Rng;
use serde_json::json;
use tidemark::{Config, Services, System};

const PROJECTIONS: [&str; 2] = ["opportunities", "pipeline"];

fn spawn_projector(config: &Config, registry_url: &str) -> KillOnDrop {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("projector")
        .env("DATABASE_URL", &config.database_url)
        .env("TIDEMARK_BROKERS", &config.brokers)
        .env("TIDEMARK_REGISTRY_URL", registry_url)
        .env("TIDEMARK_TOPIC_PREFIX", &config.topic_prefix)
        .env("TIDEMARK_PROJECTOR_ADDR", "127.0.0.1:0")
        .env("TIDEMARK_PROJECTOR_BATCH", "5") // many small transactions: many places to die in
        .env("TIDEMARK_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("the tidemark binary starts")
}

/// Records applied per projection (the sum of its stored offsets).
async fn applied(pool: &sqlx::PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for p in PROJECTIONS {
        let n: Option<i64> = sqlx::query_scalar("SELECT sum(next_offset)::bigint FROM projection_offsets WHERE projection = $1")
            .bind(p)
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push(n.unwrap_or(0));
    }
    counts
}

async fn wait_caught_up(pool: &sqlx::PgPool, total: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while applied(pool).await != vec![total; PROJECTIONS.len()] {
        assert!(Instant::now() < deadline, "{what} did not catch up: {:?} of {total}", applied(pool).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn snapshot(pool: &sqlx::PgPool) -> Vec<String> {
    let mut tables = Vec::new();
    for (table, order) in [("opportunities", "id"), ("pipeline", "tenant_id, owner_id, stage, currency"), ("pipeline_members", "id")] {
        let rows: Option<String> = sqlx::query_scalar(&format!("SELECT json_agg(t ORDER BY {order})::text FROM {table} t"))
            .fetch_one(pool)
            .await
            .unwrap();
        tables.push(rows.unwrap_or_default());
    }
    tables
}

/// A busy afternoon: opportunities created, moved, re-priced and closed. Returns how many
/// records the opportunity topic holds.
async fn busy_afternoon(t: &TestSystem) -> i64 {
    let owners = ["ann", "ben", "cem"];
    let accounts = futures::future::join_all((0..6).map(|i| {
        let f = t.command("/v1/accounts", json!({"name": format!("Account {i}")}), &[]);
        async move { f.await.body["id"].as_str().unwrap().to_string() }
    }))
    .await;
    for i in 0..60usize {
        let created = t.create_opportunity(&accounts[i % 6], owners[i % 3], &format!("{}.50", 1000 + i)).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let mut steps = vec![
            (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"})),
            (format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": format!("{}", 2000 + i), "currency": "EUR"}})),
        ];
        match i % 3 {
            0 => steps.push((format!("/v1/opportunities/{id}/close"), json!({"outcome": "lost", "reason": "no budget"}))),
            1 => steps.push((format!("/v1/opportunities/{id}/stage"), json!({"stage": "Proposal"}))),
            _ => steps.push((format!("/v1/opportunities/{id}/close-date"), json!({"close_date": "2027-06-30"}))),
        }
        for (path, body) in steps {
            assert_eq!(t.command(&path, body, &[]).await.status, 200);
        }
    }
    t.log_end_offsets(&t.config.topics().opportunity).await.values().sum()
}

/// The read models as a clean run makes them: the same log into a fresh database, by
/// another consumer group.
async fn clean_run(t: &TestSystem, total: i64) -> Vec<String> {
    let config = &t.config;
    let mut clean = test_config();
    clean.brokers = config.brokers.clone();
    clean.topic_prefix = config.topic_prefix.clone();
    clean.consumer_group_prefix = Some(format!("{}clean.", config.topic_prefix));
    clean.registry_url = t.registry();
    tidemark::prepare_database(&clean.database_url).await.unwrap();
    let clean_system = System::start(&clean, Services { projectors: true, ..Services::NONE }).await.unwrap();
    let clean_pool = sqlx::PgPool::connect(&clean.database_url).await.unwrap();
    wait_caught_up(&clean_pool, total, "the clean projector").await;
    clean_system.shutdown.cancel();
    snapshot(&clean_pool).await
}

async fn same_as_a_clean_run(t: &TestSystem, pool: &sqlx::PgPool, total: i64) {
    let (crashed, reference) = (snapshot(pool).await, clean_run(t, total).await);
    assert!(crashed[0].contains("Closed Lost") && crashed[1].contains("Proposal"), "the read models are populated");
    assert_eq!(crashed, reference, "the read models equal a clean replay");
    let quarantined: i64 = sqlx::query_scalar("SELECT count(*) FROM quarantine").fetch_one(pool).await.unwrap();
    assert_eq!(quarantined, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_killed_mid_stream_ends_with_the_same_rows_as_a_clean_run() {
    let config = test_config();
    let t = TestSystem::start_with(config.clone(), Services { projectors: false, ..Services::ALL }).await;
    let total = busy_afternoon(&t).await;
    let pool = t.pool().await;

    // The crashing run: kill the projector as soon as it has made some progress, three times.
    let mut kills_mid_stream = 0;
    for _ in 0..3 {
        let mut projector = spawn_projector(&config, &t.registry());
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = applied(&pool).await;
        while applied(&pool).await == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..150))).await;
        projector.kill(); // SIGKILL
        let at_kill = applied(&pool).await;
        if at_kill.iter().any(|n| *n > 0 && *n < total) {
            kills_mid_stream += 1;
        }
    }
    assert!(kills_mid_stream >= 1, "no kill landed mid-stream, so the test proved nothing");
    let mut projector = spawn_projector(&config, &t.registry());
    wait_caught_up(&pool, total, "the crashed projector").await;
    projector.kill();
    same_as_a_clean_run(&t, &pool, total).await;
}

/// Three projector processes share each projection's partitions (one consumer group per
/// projection); one is killed mid-stream and its partitions move to the others, then a
/// fourth joins. Every record is applied once: the rows equal a clean run.
#[tokio::test(flavor = "multi_thread")]
async fn several_projector_processes_share_the_partitions_and_survive_a_kill() {
    let config = test_config();
    let t = TestSystem::start_with(config.clone(), Services { projectors: false, ..Services::ALL }).await;
    let total = busy_afternoon(&t).await;
    let pool = t.pool().await;

    let mut projectors: Vec<KillOnDrop> = (0..3).map(|_| spawn_projector(&config, &t.registry())).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied(&pool).await.iter().all(|n| *n == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    members_become(&config, 3, &mut projectors).await;
    projectors[0].kill(); // SIGKILL, with its partitions' batches in flight or not
    let at_kill = applied(&pool).await;
    report(&format!("crash: three projector processes, one killed with {at_kill:?} of {total} records applied per projection"));
    projectors.push(spawn_projector(&config, &t.registry()));
    wait_caught_up(&pool, total, "the remaining projectors").await;
    members_become(&config, 3, &mut projectors).await;
    drop(projectors);
    same_as_a_clean_run(&t, &pool, total).await;
}

/// Waits until each projection's consumer group has `count` members: the killed one's
/// session has expired, or the new one has joined.
async fn members_become(config: &Config, count: usize, projectors: &mut [KillOnDrop]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members: Vec<usize> = PROJECTIONS.iter().map(|projection| group_members(config, projection)).collect();
        if members.iter().all(|m| *m == count) {
            return;
        }
        if Instant::now() > deadline {
            // A process that exited by itself says why in the test's output, above this.
            let exits: Vec<_> = projectors.iter_mut().map(|p| p.0.try_wait().ok().flatten()).collect();
            panic!("the projections' groups have {members:?} members, not {count} each; the processes' exits: {exits:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn group_members(config: &Config, projection: &str) -> usize {
    let client: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &config.brokers).create().expect("a Kafka client");
    let group = format!("{}tidemark.projection.{projection}", config.topic_prefix);
    rdkafka::consumer::Consumer::fetch_group_list(&client, Some(&group), Duration::from_secs(5))
        .map(|list| list.groups().iter().map(|g| g.members().len()).sum())
        .unwrap_or(0)
}
