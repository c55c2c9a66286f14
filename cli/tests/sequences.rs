//! Engagement sequences, against the real broker and PostgreSQL: a mail tracker records
//! openings; the detector finds "an email opened, then a meeting booked within 7 days" by
//! event time, also when the opening is reported late, and records each detection once
//! through the command API, as an automation with a rationale naming the two events. A
//! rebuild of the detector from the log finds the same detections and records none again.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_events::engagement::EngagementEvent;
use tidemark_events::{DomainEvent, EventRecord};
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

async fn detections(t: &TestSystem) -> Vec<EventRecord> {
    t.read_log(&t.config.topics().engagement)
        .await
        .into_iter()
        .filter_map(|(_, _, d)| match d {
            Decoded::Event(r) if matches!(r.event, DomainEvent::Engagement(EngagementEvent::Detected(_))) => Some(r),
            _ => None,
        })
        .collect()
}

/// The detections in the log once there are `n` (or what there is after 60 s).
async fn await_detections(t: &TestSystem, n: usize) -> Vec<EventRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = detections(t).await;
        if found.len() >= n || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opened_email_then_a_meeting_within_seven_days_is_detected_once_even_when_reported_late() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let tracker = t.token("mail-tracker", "default", &[], None, Some("automation"));
    let account = t.open_account("Initech").await;
    let contact = post(&t, "/v1/contacts", json!({"name": "Peter Gibbons", "account_id": account}), &alice).await.body["id"].as_str().unwrap().to_string();
    let deal = t.create_opportunity(&account, "alice", "5000.00").await.body["id"].as_str().unwrap().to_string();
    let days_ago = |days: i64| (Utc::now() - chrono::Duration::days(days)).to_rfc3339();

    // Openings: one two days ago, one ten days ago (outside the window). A report again is
    // no new record; a rep is no mail tracker.
    let opened = |message: &str, when: String| json!({"contact_id": contact, "message_id": message, "opened_at": when});
    let first = post(&t, "/v1/engagements/email-opened", opened("m-2", days_ago(2)), &tracker).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post(&t, "/v1/engagements/email-opened", opened("m-2", days_ago(2)), &tracker).await;
    assert_eq!((again.status, &again.body["already"]), (200, &json!(true)), "{}", again.body);
    assert_eq!(post(&t, "/v1/engagements/email-opened", opened("m-10", days_ago(10)), &tracker).await.status, 201);
    let rep = post(&t, "/v1/engagements/email-opened", opened("m-3", days_ago(1)), &alice).await;
    assert_eq!(rep.status, 403, "{}", rep.body);
    let unknown = post(&t, "/v1/engagements/email-opened", json!({"contact_id": uuid::Uuid::now_v7(), "message_id": "m-4", "opened_at": days_ago(1)}), &tracker).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // A meeting with the contact now: the opening two days ago pairs with it.
    let meeting = post(&t, "/v1/activities", json!({"kind": "meeting", "about": "contact", "about_id": contact, "subject": "Demo"}), &alice).await;
    assert_eq!(meeting.status, 201, "{}", meeting.body);
    // Out of order: a meeting on the deal, and only then the report of an opening (about the
    // deal) from the day before.
    let on_deal = post(&t, "/v1/activities", json!({"kind": "meeting", "about": "opportunity", "about_id": deal, "subject": "Pricing"}), &alice).await;
    assert_eq!(on_deal.status, 201, "{}", on_deal.body);
    let late = json!({"contact_id": contact, "opportunity_id": deal, "message_id": "m-1", "opened_at": days_ago(1)});
    assert_eq!(post(&t, "/v1/engagements/email-opened", late, &tracker).await.status, 201);

    // The late opening also pairs with the meeting on the contact: three pairs in all.
    let found = await_detections(&t, 3).await;
    assert_eq!(found.len(), 3, "{found:#?}");
    for d in &found {
        let env = &d.envelope;
        assert_eq!((env.actor_id.as_str(), env.actor_kind.name()), ("sequence-detector", "automation"));
        let DomainEvent::Engagement(EngagementEvent::Detected(e)) = &d.event else { unreachable!() };
        assert_eq!(e.rule, "email-opened-then-meeting");
        let rationale = env.rationale.as_deref().unwrap_or_default();
        assert!(rationale.contains(&e.first.event_id.to_string()) && rationale.contains(&e.then.event_id.to_string()), "{rationale}");
        assert!(e.then.at >= e.first.at && e.then.at - e.first.at <= chrono::Duration::days(7));
    }
    let on_the_deal = found.iter().filter(|d| matches!(&d.event, DomainEvent::Engagement(EngagementEvent::Detected(e)) if e.opportunity_id.map(|o| o.to_string()) == Some(deal.clone()))).count();
    // Two are about the deal: the late opening named it.
    assert_eq!(on_the_deal, 2, "{found:#?}");

    // The deal shows the detection about it; auditors list every detection with its
    // rationale, among the automations' edits.
    let shown = t.get_as(&format!("{}/v1/opportunities/{deal}?consistency=strong", t.queries()), &alice).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let engagements = shown.body["data"]["engagements"].as_array().unwrap();
    assert_eq!(engagements.len(), 2, "{}", shown.body);
    assert!(engagements.iter().all(|e| e["rule"] == "email-opened-then-meeting" && e["then"]["event_type"] == "ActivityLogged"), "{}", shown.body);
    let audrey = t.token("audrey", "default", &["auditor"], None, None);
    let listed = t.get_as(&format!("{}/v1/audit/automated-edits?actor=sequence-detector&consistency=strong", t.queries()), &audrey).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.body["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|e| e["event_type"] == "EngagementDetected" && e["rationale"].as_str().unwrap().starts_with("rule email-opened-then-meeting: EmailOpened ")));

    // The read models are what folding the log gives.
    for projection in ["sequences", "engagements"] {
        let (code, out, err) = t.replay(&["verify", projection]);
        assert_eq!(code, 0, "verify {projection}: {out} {err}");
    }

    // A rebuild finds the same pairs, and records none again.
    let (code, _, err) = t.replay(&["rebuild", "sequences"]);
    assert_eq!(code, 0, "{err}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(detections(&t).await.len(), 3);
    let pool = t.pool().await;
    let outcomes: Vec<(String,)> = sqlx::query_as("SELECT outcome FROM sequence_detections ORDER BY outcome").fetch_all(&pool).await.unwrap();
    assert_eq!(outcomes, vec![("recorded".to_string(),); 3]);
    t.stop().await;
}

/// Projector processes start together, and each puts the rules in force at its start.
#[tokio::test(flavor = "multi_thread")]
async fn projector_processes_starting_together_all_put_the_rules_in_force() {
    let t = TestSystem::start().await;
    let rules = t.config.sequence_rules().expect("the default rules");
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (url, rules) = (t.config.database_url.clone(), rules.clone());
            tokio::spawn(async move {
                let own_pool = sqlx::PgPool::connect(&url).await.expect("test database");
                tidemark_projectors::sequences::load_rules(&own_pool, &rules).await
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every process puts the rules in force");
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sequence_rules ORDER BY name").fetch_all(&t.pool().await).await.unwrap();
    let mut expected: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    expected.sort();
    assert_eq!(names, expected);
    t.stop().await;
}
