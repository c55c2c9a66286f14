//! The broker goes away: commands fail fast with a 503 (never a hang), and a retry with
//! the same Idempotency-Key after the broker is back appends exactly once.
//!
//! Tansu 0.6.0 panics, and then accepts no connection at all, when an idempotent producer
//! from before a SIGKILL restart reconnects to it. So here Tidemark restarts after the
//! broker does (as infra/down and infra/up do); a Kafka broker needs no such care.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{test_config, KillOnDrop, TestSystem};
use serde_json::json;
use tidemark::Services;
use tidemark_schemas::Decoded;

fn start_broker(dir: &std::path::Path, port: u16) -> KillOnDrop {
    let listener = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("tansu")
        .args(["broker", "--storage-engine", "sqlite://broker.db", "--listener-url", &listener, "--advertised-listener-url", &listener])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("broker.log")).unwrap())
        .spawn()
        .expect("tansu is on PATH (infra/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_a_quick_503_and_a_retry_appends_once() {
    let dir = std::env::temp_dir().join(format!("tidemark-outage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut broker = start_broker(&dir, port);
    let config = tidemark::Config { brokers: format!("127.0.0.1:{port}"), partitions: 1, ..test_config() };
    let t = TestSystem::start_with(config, Services { projectors: false, ..Services::ALL }).await;
    t.open_account("Before the outage").await;

    broker.kill();
    let started = Instant::now();
    let refused = t.command("/v1/accounts", json!({"name": "During the outage"}), &[("Idempotency-Key", "outage-1")]).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(8), "answered after {:?}", started.elapsed());

    let config = t.config.clone();
    t.stop().await;
    let mut broker = start_broker(&dir, port);
    let t = TestSystem::start_with(config, Services { projectors: false, ..Services::ALL }).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let accepted = loop {
        let answer = t.command("/v1/accounts", json!({"name": "During the outage"}), &[("Idempotency-Key", "outage-1")]).await;
        if answer.status == 201 {
            break answer;
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(Instant::now() < deadline, "the command API did not recover: {}\nbroker log:\n{}", answer.body, std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let again = t.command("/v1/accounts", json!({"name": "During the outage"}), &[("Idempotency-Key", "outage-1")]).await;
    assert_eq!(again.body["id"], accepted.body["id"]);

    let log = t.read_log(&t.config.topics().account).await;
    let appended = log.iter().filter(|(_, _, d)| matches!(d, Decoded::Event(r) if r.envelope.command_id == "outage-1")).count();
    assert_eq!(appended, 1, "exactly one append for the retried command");
    broker.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
