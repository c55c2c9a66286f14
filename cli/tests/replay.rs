//! The analysts' and operators' tools against the real log: `replay as-of`, `verify`,
//! `export` and `rebuild`, run as the `tidemark` binary would be.

mod common;

use common::TestSystem;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn as_of_and_verify_read_the_log_itself() {
    let t = TestSystem::start().await;
    let account = t.open_account("Acme").await;
    let created = t.create_opportunity(&account, "alice", "100.00").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let mut last = created;
    for (path, body) in [("stage", json!({"stage": "Qualification"})), ("amount", json!({"amount": {"value": "250.00", "currency": "EUR"}})), ("shares", json!({"user_id": "bob"}))] {
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
    let (code, out, err) = t.replay(&["as-of", "opportunity", &id, "--version", "2"]);
    assert_eq!(code, 0, "{err}");
    let at_v2: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!((at_v2["version"].as_i64(), at_v2["state"]["stage"].as_str()), (Some(2), Some("Qualification")));
    assert_eq!(at_v2["state"]["amount"]["value"], "100.00");
    assert_eq!(at_v2["events"].as_array().unwrap().len(), 2);
    let (_, out, _) = t.replay(&["as-of", "opportunity", &id]);
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((now["version"].as_i64(), now["state"]["amount"]["value"].as_str()), (Some(4), Some("250.00")));
    assert_eq!(now["state"]["shared_with"], json!(["bob"]));
    // as-of an instant: the moment the second event was recorded.
    let second_at = at_v2["events"][1]["event"]["envelope"]["recorded_at"].as_str().unwrap().to_string();
    let (_, out, _) = t.replay(&["as-of", "opportunity", &id, "--at", &second_at]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["version"], 2);
    let (code, _, err) = t.replay(&["as-of", "opportunity", &uuid::Uuid::now_v7().to_string()]);
    assert!(code != 0 && err.contains("no opportunity"), "{err}");

    // verify: a healthy system matches; a corrupted row and a missing cell are caught.
    for projection in ["opportunities", "pipeline"] {
        let (code, out, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "{projection}: {out}{err}");
        assert!(err.contains("6 opportunities replayed"), "{err}");
    }
    let pool = t.pool().await;
    sqlx::query("UPDATE opportunities SET stage = 'Negotiation' WHERE id = $1").bind(uuid::Uuid::parse_str(&id).unwrap()).execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM pipeline WHERE owner_id = 'bob'").execute(&pool).await.unwrap();
    let (code, out, err) = t.replay(&["verify", "opportunities"]);
    assert_eq!(code, 1, "drift makes verify fail: {err}");
    let drift: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(drift, vec![json!({"table": "opportunities", "key": id, "field": "stage", "expected": "Qualification", "found": "Negotiation"})]);
    let (code, out, _) = t.replay(&["verify", "pipeline"]);
    assert_eq!(code, 1);
    assert!(out.contains("/bob/Prospecting/EUR") && out.contains("no row"), "{out}");

    // Every other projection is held against its own fold of the log; a damaged account is caught.
    let contact = t.command("/v1/contacts", json!({"name": "Jane Doe", "email": "jane@acme.example"}), &[]).await;
    assert_eq!(contact.status, 201, "{}", contact.body);
    let call = json!({"kind": "call", "about": "opportunity", "about_id": id, "subject": "Kick-off", "occurred_at": "2026-11-30T10:00:00.123456789Z"});
    let call = t.command("/v1/activities", call, &[]).await;
    assert_eq!(call.status, 201, "{}", call.body);
    for read in [format!("v1/accounts/{account}"), "v1/contacts".to_string(), format!("v1/opportunities/{id}")] {
        let answer = t.get(&format!("{}/{read}?consistency=strong&consistency_token={}", t.queries(), call.token())).await;
        assert_eq!(answer.status, 200, "{read}: {}", answer.body);
    }
    for (projection, rows) in [("accounts", 1), ("contacts", 1), ("activities", 1)] {
        let (code, out, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "{projection}: {out}{err}");
        assert!(err.contains(&format!("{rows} rows of {projection} replayed")), "{err}");
    }
    for projection in tidemark_projectors::names().filter(|p| !["opportunities", "pipeline"].contains(p)) {
        let (code, out, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "{projection}: {out}{err}");
    }
    sqlx::query("UPDATE accounts SET name = 'damaged' WHERE id = $1").bind(uuid::Uuid::parse_str(&account).unwrap()).execute(&pool).await.unwrap();
    let (code, out, _) = t.replay(&["verify", "accounts"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&account) && out.contains("damaged") && out.contains("Acme"), "{out}");
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
    assert_eq!(t.command(&format!("/v1/opportunities/{id}/close"), json!({"outcome": "lost", "reason": "fast"}), &[]).await.status, 200);

    let (code, out, err) = t.replay(&["export", "--from", &from]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["envelope"]["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["OpportunityCreated", "OpportunityClosed"], "only the window's events");
    assert_eq!(events[1]["data"]["reason"], "fast");
    assert!(err.contains("export: 2 events"), "a summary: {err}");

    let (_, closed, _) = t.replay(&["export", "--from", &from, "--types", "OpportunityClosed"]);
    assert_eq!(closed.lines().count(), 1);

    let dir = std::env::temp_dir().join(format!("tidemark-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<String> = (0..2).map(|i| dir.join(format!("{i}.csv")).display().to_string()).collect();
    for file in &files {
        let (code, _, err) = t.replay(&["export", "--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--format", "csv", "--output", file]);
        assert_eq!(code, 0, "{err}");
    }
    let (a, b) = (std::fs::read(&files[0]).unwrap(), std::fs::read(&files[1]).unwrap());
    assert_eq!(a, b, "the same log gives the same bytes");
    let mut reader = csv::Reader::from_reader(&a[..]);
    assert_eq!(&reader.headers().unwrap()[4], "event_type");
    let csv_types: Vec<String> = reader.records().map(|r| r.unwrap()[4].to_string()).collect();
    assert_eq!(csv_types.len(), 4, "account, two opportunities, one close");

    // Parquet: the same rows and columns, readable by any Parquet reader.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let file = dir.join("all.parquet");
    let (code, _, err) = t.replay(&["export", "--from", "2020-01-01T00:00:00Z", "--format", "parquet", "--output", &file.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let columns: Vec<String> = reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.name().to_string()).collect();
    assert_eq!(columns.len(), 22);
    assert_eq!((columns[4].as_str(), columns[21].as_str()), ("event_type", "data"));
    let parquet_types: Vec<String> = reader.get_row_iter(None).unwrap().map(|row| row.unwrap().get_string(4).unwrap().clone()).collect();
    assert_eq!(parquet_types, csv_types);
    let (code, _, err) = t.replay(&["export", "--from", "2020-01-01T00:00:00Z", "--format", "parquet"]);
    assert!(code != 0 && err.contains("needs --output"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_swaps_in_new_tables_while_the_live_ones_serve_and_resumes_after_an_interruption() {
    use std::ops::ControlFlow;
    use tidemark_projectors::rebuild::Rebuild;
    use tidemark_projectors::Opportunities;

    let t = TestSystem::start().await;
    let account = t.open_account("Initech").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let created = t.create_opportunity(&account, "alice", &format!("{}.50", 100 + i)).await;
        ids.push(created.body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(t.command(&format!("/v1/opportunities/{}/stage", ids[0]), json!({"stage": "Qualification"}), &[]).await.status, 200);
    let list = || t.get(&format!("{}/v1/opportunities?owner=alice&limit=200&consistency=strong", t.queries()));
    // A row damaged behind the projection's back (once the projection has it), and read once
    // so that the answer is cached.
    assert_eq!(t.get(&format!("{}/v1/opportunities?owner=alice&limit=100&consistency=strong", t.queries())).await.status, 200);
    let pool = t.pool().await;
    let damaged = uuid::Uuid::parse_str(&ids[3]).unwrap();
    let hit = sqlx::query("UPDATE opportunities SET name = 'damaged' WHERE id = $1").bind(damaged).execute(&pool).await.unwrap();
    assert_eq!(hit.rows_affected(), 1);
    let cached = list().await;
    assert_eq!(cached.body["data"].as_array().unwrap().len(), 12);
    assert!(cached.body["data"].as_array().unwrap().iter().any(|o| o["name"] == "damaged"));
    let indexes = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'opportunities' ORDER BY indexname")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let indexes_before = indexes(pool.clone()).await;

    // A rebuild stopped after its first batch of five records leaves its tables beside the
    // live ones, which keep serving.
    let (mut rebuild, start) = Rebuild::prepare::<Opportunities>(&pool, &t.config.brokers, &t.config.topics(), false).await.unwrap();
    assert!(!start.resumed);
    rebuild.batch_size = 5;
    let codec = tidemark_schemas::EventCodec::new(&t.registry()).unwrap();
    let applied = rebuild.catch_up::<Opportunities>(&t.config.brokers, &codec, &t.config.topics(), |_| ControlFlow::Break(())).await.unwrap().records;
    assert!((1..=5).contains(&applied), "{applied}");
    drop(rebuild);
    let partial: i64 = sqlx::query_scalar("SELECT count(*) FROM rebuild_opportunities.opportunities").fetch_one(&pool).await.unwrap();
    assert!(partial < 12, "{partial} rows rebuilt so far");
    let persistence = |schema: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i8>("SELECT c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'opportunities'")
                .bind(schema)
                .fetch_one(&pool)
                .await
                .unwrap() as u8 as char
        }
    };
    assert_eq!(persistence("rebuild_opportunities").await, 'u', "a rebuild fills unlogged tables");
    // The log moves on meanwhile.
    t.create_opportunity(&account, "alice", "999").await;
    assert_eq!(list().await.body["data"].as_array().unwrap().len(), 13);

    let (code, _, err) = t.replay(&["rebuild", "opportunities"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming an interrupted rebuild"), "{err}");
    assert!(err.contains("events/s") && err.contains("switched over"), "{err}");
    assert_eq!(persistence("public").await, 'p', "the rebuilt tables are logged once live");

    // The same offsets as the cached answer, but new tables: the answer is the rebuilt one.
    let after = list().await;
    let rows = after.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 13);
    assert!(rows.iter().all(|o| o["name"] != "damaged"), "{}", after.body);
    let (code, _, err) = t.replay(&["verify", "opportunities"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(indexes(pool.clone()).await, indexes_before, "the same keys and indexes, under the same names");
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'").fetch_one(&pool).await.unwrap();
    assert_eq!(schemas, 0, "nothing left behind");

    // The live projector goes on into the rebuilt tables.
    let closed = t.command(&format!("/v1/opportunities/{}/close", ids[3]), json!({"outcome": "lost", "reason": "budget"}), &[]).await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    let last = list().await;
    let row = last.body["data"].as_array().unwrap().iter().find(|o| o["id"] == ids[3].as_str()).cloned().unwrap();
    assert_eq!(row["stage"], "Closed Lost");

    // The pipeline, from scratch, in one go.
    let (code, _, err) = t.replay(&["rebuild", "pipeline", "--batch-size", "4"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("building new tables"), "{err}");
    let (code, _, err) = t.replay(&["verify", "pipeline"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = t.replay(&["rebuild", "forecast"]);
    assert!(code != 0 && err.contains("no projection 'forecast'"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_log_rebuilds_into_read_models_that_verify() {
    // Only the registry runs: the deployment's topics are empty, as `generate` requires.
    let t = TestSystem::start_with(common::test_config(), tidemark::Services { registry: true, ..tidemark::Services::NONE }).await;
    let (code, _, err) = t.replay(&["generate", "--events", "400", "--seed", "11"]);
    assert_eq!(code, 0, "{err}");
    let summary = err.lines().find(|l| l.starts_with("generate:")).unwrap_or_else(|| panic!("a summary: {err}"));
    let opportunities: i64 = summary.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(summary.starts_with("generate: 400 events of") && opportunities > 40, "{summary}");

    for projection in ["opportunities", "pipeline"] {
        let (code, _, err) = t.replay(&["rebuild", projection, "--batch-size", "64"]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("400 records applied"), "{err}");
        let (code, _, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "{projection}: {err}");
        assert!(err.contains(&format!("{opportunities} opportunities replayed")), "{err}");
    }
    let pool = t.pool().await;
    let (rows, stages): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT stage) FROM opportunities").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, opportunities);
    assert!(stages >= 4, "deals in many stages: {stages}");

    let (code, _, err) = t.replay(&["generate", "--events", "10"]);
    assert!(code != 0 && err.contains("only into an empty deployment"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lineage_names_every_event_that_set_a_value_as_the_raw_log_shows() {
    let t = TestSystem::start().await;
    let account = t.open_account("Lineage Ltd").await;
    let body = json!({"account_id": account, "name": "Deal", "owner_id": "alice", "amount": {"value": "100.00", "currency": "EUR"}, "close_date": "2027-01-31"});
    // Created by the lead router, through the client its token names, with its rationale.
    let router = format!("Bearer {}", t.token_via("lead-router", "default", &[], None, Some("automation"), Some("crm-web")));
    let created = t.command("/v1/opportunities", body, &[("Authorization", &router), ("Idempotency-Key", "create-1"), ("X-Correlation-Id", "corr-1"), ("X-Rationale", "test lineage")]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let steps = [
        ("stage", json!({"stage": "Qualification"}), "move-1"),
        ("amount", json!({"amount": {"value": "250.00", "currency": "EUR"}}), "amount-1"),
        ("shares", json!({"user_id": "bob"}), "share-1"),
        ("amount", json!({"amount": {"value": "300.00", "currency": "EUR"}}), "amount-2"),
    ];
    for (path, body, key) in steps {
        let answer = t.command(&format!("/v1/opportunities/{id}/{path}"), body, &[("Idempotency-Key", key)]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    // Derived independently from the raw log: the events of this opportunity whose data
    // holds an amount, in log order.
    let raw: Vec<_> = t
        .read_log(&t.config.topics().opportunity)
        .await
        .into_iter()
        .filter_map(|(p, o, d)| match d {
            tidemark_schemas::Decoded::Event(e) if e.envelope.aggregate_id.to_string() == id => Some((p, o, e)),
            _ => None,
        })
        .collect();
    let amount_events: Vec<String> = raw
        .iter()
        .filter(|(_, _, e)| tidemark_history::event_json(e)["data"].get("amount").is_some())
        .map(|(_, _, e)| e.envelope.event_id.to_string())
        .collect();

    let (code, out, err) = t.replay(&["lineage", "opportunity", &id, "--field", "amount"]);
    assert_eq!(code, 0, "{err}");
    let lineage: Value = serde_json::from_str(&out).unwrap();
    let chain = lineage["chain"].as_array().unwrap();
    let ids: Vec<String> = chain.iter().map(|c| c["event_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, amount_events, "the same events, in the same order");
    assert_eq!(lineage["value"], json!({"value": "300.00", "currency": "EUR"}));
    assert_eq!(chain[0]["changed"]["amount"]["from"], Value::Null);
    assert_eq!(chain[2]["changed"]["amount"], json!({"from": {"value": "250.00", "currency": "EUR"}, "to": {"value": "300.00", "currency": "EUR"}}));
    let first = &chain[0];
    assert_eq!((first["command_id"].as_str(), first["correlation_id"].as_str(), first["client_id"].as_str()), (Some("create-1"), Some("corr-1"), Some("crm-web")));
    assert_eq!((first["rationale"].as_str(), first["actor_id"].as_str()), (Some("test lineage"), Some("lead-router")));
    assert_eq!((chain[1]["command_id"].as_str(), &chain[1]["rationale"], chain[1]["client_id"].as_str()), (Some("amount-1"), &Value::Null, Some("unnamed-client")));
    for (c, (p, o, e)) in chain.iter().zip(raw.iter().filter(|(_, _, e)| amount_events.contains(&e.envelope.event_id.to_string()))) {
        assert_eq!((c["partition"].as_i64(), c["offset"].as_i64(), c["aggregate_version"].as_i64()), (Some(*p as i64), Some(*o), Some(e.envelope.aggregate_version)));
        assert_eq!(c["policy_version"], e.envelope.policy_version.as_str());
        assert_eq!(c["code_version"], e.envelope.code_version.as_str());
    }

    // Without a field: every event, each with what it changed.
    let (_, out, _) = t.replay(&["lineage", "opportunity", &id]);
    let whole: Value = serde_json::from_str(&out).unwrap();
    let changed: Vec<Vec<String>> = whole["chain"].as_array().unwrap().iter().map(|c| c["changed"].as_object().unwrap().keys().cloned().collect()).collect();
    assert_eq!(changed.len(), raw.len());
    assert_eq!(changed[1], ["probability", "stage"]);
    assert_eq!(changed[3], ["shared_with"]);

    // A contact's personal fields show that they changed, never their values.
    let contact = t.command("/v1/contacts", json!({"name": "Jane Doe", "email": "jane@lineage.example"}), &[]).await;
    let (_, out, _) = t.replay(&["lineage", "contact", contact.body["id"].as_str().unwrap()]);
    assert!(!out.contains("Jane") && !out.contains("jane@") && out.contains("withheld"), "{out}");
    let (code, _, err) = t.replay(&["lineage", "opportunity", &id, "--field", "colour"]);
    assert!(code != 0 && err.contains("no field 'colour'"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replay_tools_end_quietly_when_their_reader_goes_away() {
    let t = TestSystem::start().await;
    t.open_account("Piped").await;
    let mut child = t
        .replay_command(&["events", "--aggregate", "account"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tidemark binary runs");
    // `| head -0`: the reader is gone before the first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", output.status);
}
