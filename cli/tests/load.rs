//! The benchmark's smoke run, so that it cannot rot: a small tenant seeded into Tidemark and
//! into the monolithic baseline, a few seconds of mixed traffic against each, and the
//! report written, against the real broker and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestSystem;
use sqlx::migrate::MigrateDatabase;
use tidemark_loadgen::report::{Report, Run};
use tidemark_loadgen::tenant::{self, People, TenantSpec};
use tidemark_loadgen::traffic::{self, Load, Mode};
use tidemark_loadgen::Target;

/// The baseline on its own database, in this process, on any free port.
async fn baseline(t: &TestSystem) -> Target {
    let url = format!("{}_baseline", t.config.database_url);
    sqlx::Postgres::create_database(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    tidemark_baseline::migrator().run(&pool).await.unwrap();
    let auth = tidemark_http::auth::Authenticator::shared_secret(&t.config.jwt_secret);
    let rate = tidemark_http::Rate { per_second: 1000, burst: 2000 };
    let gate = Arc::new(tidemark_http::Gate::new(auth, rate, rate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, tidemark_baseline::router(pool, gate)).await });
    Target { name: "baseline".into(), commands: url.clone(), queries: url }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_benchmark_drives_tidemark_and_the_baseline_and_reports_both() {
    let t = TestSystem::start().await;
    let targets = [Target { name: "tidemark".into(), commands: t.commands(), queries: t.queries() }, baseline(&t).await];
    let spec = TenantSpec { reps: 6, team_size: 3, accounts: 10, opportunities: 30 };
    let people = Arc::new(People::new(&spec, "bench", &t.config.jwt_secret));
    let client = tidemark_loadgen::client();
    let load = Load { users: 20, mode: Mode::Closed { think: Duration::from_millis(20) }, duration: Duration::from_secs(3), freshness_sample: 1.0, commands_only: false, seed: 0 };

    let mut runs = Vec::new();
    for target in &targets {
        let seeded = tenant::seed(&client, target, &people, &spec, 8, |_, _| {}).await.unwrap();
        assert_eq!((seeded.accounts.len(), seeded.deals.len()), (10, 30));
        let figures = traffic::run(&client, target, people.clone(), &seeded, &load).await;
        let name = &target.name;
        assert!(figures.requests > 50, "{name}: {figures:?}");
        assert_eq!(figures.error_rate, 0.0, "{name}: no request failed: {figures:#?}");
        for op in ["read opportunity", "list opportunities", "pipeline", "my approvals", "change amount", "move stage"] {
            assert!(figures.ops.get(op).is_some_and(|o| o.count > 0 && o.count > o.refused), "{name}: {op} ran and mostly succeeded: {figures:#?}");
        }
        let freshness = figures.freshness.clone().expect("commands were probed");
        assert!(freshness.count > 0 && figures.freshness_timeouts == 0, "{name}: every write showed: {figures:#?}");
        runs.push(Run { scenario: "20 users".into(), users: 20, system: name.clone(), figures, processes: Default::default() });

        // Open loop: requests arrive at a fixed rate, whatever the answers do.
        let open = Load { mode: Mode::Open { per_second: 40.0 }, duration: Duration::from_secs(2), seed: 1, ..load };
        let figures = traffic::run(&client, target, people.clone(), &seeded, &open).await;
        assert!(figures.requests >= 80 && figures.error_rate == 0.0, "{name}: 40 requests/s for 2 s (a quote is two): {figures:#?}");
    }

    let report = Report { title: "smoke".into(), stamp: vec![("commit".into(), "test".into())], runs };
    let dir = std::env::temp_dir().join(format!("tidemark-load-smoke-{}", uuid::Uuid::new_v4()));
    report.write(&dir, "load").unwrap();
    let md = std::fs::read_to_string(dir.join("load.md")).unwrap();
    assert!(md.contains("| 20 users | tidemark |") && md.contains("| 20 users | baseline |"), "{md}");
    assert!(std::fs::read_to_string(dir.join("load-latency.svg")).unwrap().contains("<svg"));
    std::fs::remove_dir_all(dir).unwrap();
}
