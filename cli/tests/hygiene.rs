//! No control character gets past the edge of any service: bodies, paths, queries, headers
//! and token claims. A NUL acknowledged once used to stop a projector for good.

mod common;

use common::TestSystem;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_are_refused_at_every_edge_and_change_nothing() {
    let t = TestSystem::start().await;
    let topic = t.config.topics().account.clone();
    let before = t.read_log(&topic).await.len();

    let nul = t.command("/v1/accounts", json!({"name": "nul\u{0}byte"}), &[]).await;
    assert_eq!((nul.status, nul.body["field"].as_str()), (422, Some("name")), "{}", nul.body);
    assert!(nul.header("content-type").unwrap().starts_with("application/problem+json"));
    let nested = t.command("/v1/accounts", json!({"name": "ok", "x": [{"y": "bell\u{7}"}]}), &[]).await;
    assert_eq!((nested.status, nested.body["field"].as_str()), (422, Some("x[0].y")), "{}", nested.body);
    // A client library will not send a control character in a header; a raw request can.
    let raw = format!("POST /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nX-Causation-Id: a\u{1}b\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{{\"name\":\"Raw\"}}", t.admin());
    let status_line = raw_request(&t.commands(), &raw).await;
    assert!(status_line.starts_with("HTTP/1.1 400"), "{status_line}");

    // Free text keeps its lines.
    let account = t.open_account("Two\nlines").await;
    let note = json!({"kind": "call", "about": "account", "about_id": account, "subject": "Call\twith notes\nfollow-up"});
    assert_eq!(t.command("/v1/activities", note, &[]).await.status, 201);

    let queries = t.queries();
    for url in [format!("{queries}/v1/opportunities?owner=a%00b"), format!("{queries}/v1/opportunities/a%00b")] {
        let answer = t.get(&url).await;
        assert_eq!(answer.status, 400, "{url}: {}", answer.body);
    }
    let registry = t.registry();
    let answer = t.get(&format!("{registry}/subjects/a%00b/versions")).await;
    assert_eq!(answer.status, 400, "{}", answer.body);

    let token = t.token("nul\u{0}user", "default", &["admin"], None, None);
    let answer = t.get_as(&format!("{queries}/v1/opportunities"), &token).await;
    assert_eq!((answer.status, answer.body["type"].as_str()), (401, Some("/problems/invalid-claims")), "{}", answer.body);
    assert!(!answer.body.to_string().contains("0x00"), "no database text: {}", answer.body);

    let appended = t.read_log(&topic).await.len() - before;
    assert_eq!(appended, 1, "only the account with two lines in its name");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_record_arriving_alone_is_quarantined_and_the_projection_goes_on() {
    use tidemark_events::opportunity::{AmountChanged, OpportunityEvent, Shared};
    let t = TestSystem::start().await;
    let account = t.open_account("Acme").await;
    let deal = t.create_opportunity(&account, "alice", "100").await.body["id"].as_str().unwrap().to_string();
    // Past the edge only by hand: PostgreSQL cannot store the NUL among the deal's shares.
    let poison = OpportunityEvent::Shared(Shared { user_id: "nul\u{0}byte".into() });
    t.append_by_hand(("opportunity", deal.parse().unwrap()), tidemark_events::DomainEvent::Opportunity(poison), ("alice", "poison-1", "poison")).await;
    let pool = t.pool().await;
    let mut quarantined = Vec::new();
    for _ in 0..100 {
        quarantined = sqlx::query_as::<_, (String, String)>("SELECT projection, reason FROM quarantine").fetch_all(&pool).await.unwrap();
        if quarantined.iter().any(|(p, _)| p == "opportunities") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(quarantined.iter().any(|(p, reason)| p == "opportunities" && reason.contains("OpportunityShared")), "{quarantined:?}");

    // A strong read waits for every partition up to its end at arrival: past the poison.
    let read = t.get(&format!("{}/v1/opportunities?consistency=strong", t.queries())).await;
    assert_eq!((read.status, read.body["data"].as_array().map(Vec::len)), (200, Some(1)), "{}", read.body);
    let health = t.get(&format!("{}/healthz/projections", t.queries())).await;
    assert_eq!(health.status, 200, "{}", health.body);

    // The deal's next version follows a version the projection lacks: a gap, held too.
    let change = OpportunityEvent::AmountChanged(AmountChanged { amount: serde_json::from_value(json!({"value": "250", "currency": "EUR"})).unwrap() });
    t.append_by_hand(("opportunity", deal.parse().unwrap()), tidemark_events::DomainEvent::Opportunity(change), ("alice", "after-poison", "poison")).await;
    let ops = t.operator();
    let list = format!("{}/v1/operations/quarantine?projection=opportunities", t.queries());
    let mut held = Vec::new();
    for _ in 0..100 {
        held = t.get_as(&list, &ops).await.body["data"].as_array().unwrap().clone();
        if held.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let versions: Vec<_> = held.iter().map(|q| q["aggregate_version"].as_i64()).collect();
    assert_eq!(versions, [Some(3), Some(2)], "newest first: {held:?}");
    assert!(held[0]["reason"].as_str().unwrap().starts_with("gap"), "{held:?}");

    // An event that decodes is not skipped: the projection would count versions
    // differently from the writer. The refusal says what to do instead.
    let poison_entry = held[1]["id"].as_i64().unwrap();
    let refused = t.post_as(&format!("{}/v1/operations/quarantine/{poison_entry}/skip", t.queries()), &ops, json!({"reason": "a NUL byte"})).await;
    assert_eq!((refused.status, refused.body["type"].as_str()), (409, Some("/problems/record-is-an-event")), "{}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("rebuild"), "{}", refused.body);
    let skipped: i64 = sqlx::query_scalar("SELECT count(*) FROM skipped_records").fetch_one(&pool).await.unwrap();
    assert_eq!(skipped, 0);
}

/// Sends `request` as it is and returns the answer's status line.
async fn raw_request(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}
