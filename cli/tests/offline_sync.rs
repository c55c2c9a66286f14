//! Offline intent sync, against the real broker and PostgreSQL: a batch of intents recorded
//! offline is decided in order; preference fields go to the last writer by device time,
//! quote lines merge three ways, stage and amount conflicts open reviews, which a person
//! resolves with a command naming both sides; a batch sent again changes nothing.

mod common;

use chrono::{Duration, Utc};
use common::{Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

fn intent(key: &str, opp: &str, base: i64, device_time: chrono::DateTime<Utc>, command: Value) -> Value {
    json!({"idempotency_key": key, "opportunity_id": opp, "base_version": base, "device_time": device_time, "command": command})
}

/// Each intent's outcome, by key.
fn outcomes(answer: &Answer) -> Vec<(String, String)> {
    answer.body["results"].as_array().unwrap().iter().map(|r| (r["idempotency_key"].as_str().unwrap().into(), r["outcome"].as_str().unwrap().into())).collect()
}

fn result<'a>(answer: &'a Answer, key: &str) -> &'a Value {
    answer.body["results"].as_array().unwrap().iter().find(|r| r["idempotency_key"] == key).unwrap_or_else(|| panic!("no result for {key}: {}", answer.body))
}

/// The opportunity's events, decoded from the log, in order.
async fn events_of(t: &TestSystem, opp: &str) -> Vec<tidemark_events::EventRecord> {
    let log = t.read_log(&t.config.topics().opportunity).await;
    log.into_iter()
        .filter_map(|(_, _, d)| match d {
            Decoded::Event(r) if r.envelope.aggregate_id.to_string() == opp => Some(r),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_intents_apply_merge_or_open_reviews_and_a_replay_changes_nothing() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let bob = t.token("bob", "default", &["rep"], Some("east"), None);
    let account = t.open_account("Northwind Freight").await;
    let opp = t.create_opportunity(&account, "alice", "10000.00").await.body["id"].as_str().unwrap().to_string();
    let lines = json!([
        {"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "5"},
        {"product": "Trailer", "quantity": "2", "unit_price": "800.00", "discount_percent": "0"},
        {"product": "Service", "quantity": "1", "unit_price": "1200.00", "discount_percent": "0"},
    ]);
    let drafted = post(&t, &format!("/v1/opportunities/{opp}/quotes"), json!({"currency": "EUR", "valid_until": "2099-06-30", "lines": lines}), &alice).await;
    assert_eq!(drafted.status, 201, "{}", drafted.body);
    let quote = drafted.body["quote_id"].as_str().unwrap().to_string();
    // Alice goes offline here, at version 2 (created, quote drafted), with revision 1.
    let base = 2;
    let offline_since = Utc::now();

    // Meanwhile, online: the stage, the amount, the next step and the trailer line change.
    let online = |path: &str| format!("/v1/opportunities/{opp}/{path}");
    assert_eq!(post(&t, &online("stage"), json!({"stage": "Qualification"}), &alice).await.status, 200);
    assert_eq!(post(&t, &online("amount"), json!({"amount": {"value": "12000.00", "currency": "EUR"}}), &alice).await.status, 200);
    let next_step = post(&t, &online("preferences"), json!({"field": "next_step", "value": "Send the brochure"}), &alice).await;
    assert_eq!(next_step.status, 200, "{}", next_step.body);
    assert_eq!(post(&t, &online("close-date"), json!({"close_date": "2027-01-31"}), &alice).await.status, 200);
    let revised = post(&t, &format!("/v1/opportunities/{opp}/quotes/{quote}/revisions"), json!({"valid_until": "2099-06-30", "lines": [
        {"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "5"},
        {"product": "Trailer", "quantity": "3", "unit_price": "800.00", "discount_percent": "0"},
        {"product": "Service", "quantity": "1", "unit_price": "1200.00", "discount_percent": "0"},
    ]}), &alice).await;
    assert_eq!(revised.status, 200, "{}", revised.body);
    let online_done = Utc::now();

    let before = offline_since - Duration::minutes(5);
    let later = online_done + Duration::seconds(1);
    let batch = json!({"intents": [
        // Written on the device before the online next step: the newer online value stands.
        intent("i-next-step", &opp, base, before, json!({"type": "set_preference", "field": "next_step", "value": "Call the fleet manager"})),
        // Nobody else touched the description: applied.
        intent("i-description", &opp, base, before, json!({"type": "set_preference", "field": "description", "value": "Twelve trucks, maybe more"})),
        // Close dates: one written before the online change loses to it; one written after
        // everything online wins over it.
        intent("i-close-date-older", &opp, base, before, json!({"type": "set_preference", "field": "close_date", "value": "2027-04-30"})),
        intent("i-close-date", &opp, base, later, json!({"type": "set_preference", "field": "close_date", "value": "2027-02-28"})),
        // Truck changed here, Trailer changed online, Tyres added here: both survive.
        intent("i-quote", &opp, base, later, json!({"type": "revise_quote", "quote_id": quote, "base_revision": 1, "valid_until": "2099-06-30", "lines": [
            {"product": "Truck", "quantity": "6", "unit_price": "2500.00", "discount_percent": "5"},
            {"product": "Trailer", "quantity": "2", "unit_price": "800.00", "discount_percent": "0"},
            {"product": "Service", "quantity": "1", "unit_price": "1200.00", "discount_percent": "0"},
            {"product": "Tyres", "quantity": "24", "unit_price": "150.00", "discount_percent": "0"},
        ]})),
        // Trailer changed here too, differently from online: review.
        intent("i-quote-clash", &opp, base, later, json!({"type": "revise_quote", "quote_id": quote, "base_revision": 1, "valid_until": "2099-06-30", "lines": [
            {"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "5"},
            {"product": "Trailer", "quantity": "5", "unit_price": "800.00", "discount_percent": "0"},
            {"product": "Service", "quantity": "1", "unit_price": "1200.00", "discount_percent": "0"},
        ]})),
        // Stage and amount changed online since the base: never merged, reviews.
        intent("i-amount", &opp, base, later, json!({"type": "change_amount", "amount": {"value": "9000.00", "currency": "EUR"}})),
        intent("i-stage", &opp, base, later, json!({"type": "move_stage", "stage": "Qualification"})),
        // A deal that does not exist: refused, with the problem.
        intent("i-missing", &uuid::Uuid::now_v7().to_string(), 1, later, json!({"type": "set_preference", "field": "next_step", "value": "x"})),
    ]});
    let synced = post(&t, "/v1/sync", batch.clone(), &alice).await;
    assert_eq!(synced.status, 200, "{}", synced.body);
    let expected = [
        ("i-next-step", "merged"),
        ("i-description", "applied"),
        ("i-close-date-older", "merged"),
        ("i-close-date", "merged"),
        ("i-quote", "merged"),
        ("i-quote-clash", "needs_review"),
        ("i-amount", "needs_review"),
        // The stage is what the intent wanted already.
        ("i-stage", "merged"),
        ("i-missing", "refused"),
    ];
    assert_eq!(outcomes(&synced), expected.map(|(k, o)| (k.to_string(), o.to_string())).to_vec(), "{}", synced.body);
    for older in ["i-next-step", "i-close-date-older"] {
        assert!(result(&synced, older)["how"].as_str().unwrap().contains("newer than yours"), "{}", synced.body);
    }
    assert!(result(&synced, "i-close-date")["how"].as_str().unwrap().contains("replaced 2027-01-31"), "{}", synced.body);
    assert!(result(&synced, "i-quote")["how"].as_str().unwrap().contains("merged line by line"), "{}", synced.body);
    assert_eq!(result(&synced, "i-missing")["problem"]["status"], 404, "{}", synced.body);

    // The read model, read with the batch's token.
    let read = t.get_as(&format!("{}/v1/opportunities/{opp}?consistency_token={}", t.queries(), synced.token()), &alice).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let data = &read.body["data"];
    assert_eq!((data["next_step"].as_str(), data["description"].as_str(), data["close_date"].as_str()), (Some("Send the brochure"), Some("Twelve trucks, maybe more"), Some("2027-02-28")));
    assert_eq!(data["amount"]["value"], "12000.00", "the amount waits for the review");
    let merged: Vec<(String, String)> = data["quotes"][0]["lines"].as_array().unwrap().iter().map(|l| (l["product"].as_str().unwrap().into(), l["quantity"].as_str().unwrap().into())).collect();
    let want = [("Truck", "6"), ("Trailer", "3"), ("Service", "1"), ("Tyres", "24")].map(|(p, q)| (p.to_string(), q.to_string()));
    assert_eq!(merged, want.to_vec(), "both sides' line changes survive");
    assert_eq!(data["quotes"][0]["revision"], 3);

    // The event of an offline preference names its intent and the value it replaced.
    let events = events_of(&t, &opp).await;
    let description = events.iter().find(|r| r.envelope.command_id == "i-description").expect("the description's event");
    let tidemark_events::DomainEvent::Opportunity(tidemark_events::opportunity::OpportunityEvent::PreferenceChanged(e)) = &description.event else { panic!("{:?}", description.event) };
    assert_eq!((e.offline.as_ref().map(|o| o.intent_key.as_str()), e.replaced.as_deref(), e.written_at), (Some("i-description"), None, before));
    let close = events.iter().find(|r| r.envelope.command_id == "i-close-date").unwrap();
    let tidemark_events::DomainEvent::Opportunity(tidemark_events::opportunity::OpportunityEvent::PreferenceChanged(e)) = &close.event else { panic!() };
    assert_eq!(e.replaced.as_deref(), Some("2027-01-31"));

    // Sent again: the same answers, nothing appended.
    let count = events.len();
    let again = post(&t, "/v1/sync", batch.clone(), &alice).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(outcomes(&again), outcomes(&synced));
    assert!(again.body["results"].as_array().unwrap().iter().all(|r| r["replayed"] == true), "{}", again.body);
    assert_eq!(events_of(&t, &opp).await.len(), count, "a replayed batch appends nothing");
    // A key reused for another intent is refused, not replayed.
    let reused = post(&t, "/v1/sync", json!({"intents": [intent("i-description", &opp, base, before, json!({"type": "set_preference", "field": "description", "value": "other"}))]}), &alice).await;
    assert_eq!(result(&reused, "i-description")["problem"]["type"].as_str().map(|t| t.ends_with("idempotency-key-reused")), Some(true), "{}", reused.body);
    // A malformed batch is refused whole, and changes nothing.
    let bad = post(&t, "/v1/sync", json!({"intents": [
        intent("i-ok", &opp, base, later, json!({"type": "set_preference", "field": "next_step", "value": "fine"})),
        intent("i-bad", &opp, base, later, json!({"type": "paint_it_blue"})),
    ]}), &alice).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.header("content-type"), Some("application/problem+json"));
    assert_eq!(events_of(&t, &opp).await.len(), count);

    // The review queue: Alice's two conflicts, each with the base and both sides.
    let amount_review = result(&synced, "i-amount")["review_id"].as_str().unwrap().to_string();
    let quote_review = result(&synced, "i-quote-clash")["review_id"].as_str().unwrap().to_string();
    let mine = t.get_as(&format!("{}/v1/reviews?consistency_token={}", t.queries(), synced.token()), &alice).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let mut listed: Vec<&str> = mine.body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    listed.sort();
    let mut want = vec![amount_review.as_str(), quote_review.as_str()];
    want.sort();
    assert_eq!(listed, want);
    let review = t.get_as(&format!("{}/v1/reviews/{amount_review}", t.queries()), &alice).await;
    assert_eq!(review.status, 200, "{}", review.body);
    let r = &review.body["data"];
    assert_eq!((r["base"]["amount"]["value"].as_str(), r["theirs"]["amount"]["value"].as_str(), r["mine"]["amount"]["value"].as_str()), (Some("10000.00"), Some("12000.00"), Some("9000.00")), "{r}");
    assert_eq!(r["intent"]["intent_key"], "i-amount");
    let theirs_version = r["theirs_version"].as_i64().unwrap();
    let quote_side = t.get_as(&format!("{}/v1/reviews/{quote_review}", t.queries()), &alice).await;
    assert!(quote_side.body["data"]["reason"].as_str().unwrap().contains("Trailer"), "{}", quote_side.body);
    assert_eq!(t.get_as(&format!("{}/v1/reviews", t.queries()), &bob).await.body["data"], json!([]), "Bob recorded nothing");

    // Resolved: the amount by taking Alice's side, the quote by an edit.
    let resolved = post(&t, &format!("/v1/opportunities/{opp}/reviews/{amount_review}/resolve"), json!({"choose": "mine"}), &alice).await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    let types: Vec<&str> = resolved.body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OpportunityAmountChanged", "OfflineReviewResolved"]);
    let again = post(&t, &format!("/v1/opportunities/{opp}/reviews/{amount_review}/resolve"), json!({"choose": "theirs"}), &alice).await;
    assert_eq!((again.status, again.body["rule"].as_str()), (422, Some("review-resolved")), "{}", again.body);
    let wrong = post(&t, &format!("/v1/opportunities/{opp}/reviews/{quote_review}/resolve"), json!({"choose": "edit", "value": {"stage": "Proposal"}}), &alice).await;
    assert_eq!((wrong.status, wrong.body["field"].as_str()), (422, Some("value")), "an edit of a quote review is a quote: {}", wrong.body);
    let edit = json!({"choose": "edit", "value": {"quote": {"valid_until": "2099-06-30", "lines": [
        {"product": "Truck", "quantity": "6", "unit_price": "2500.00", "discount_percent": "5"},
        {"product": "Trailer", "quantity": "4", "unit_price": "800.00", "discount_percent": "0"},
        {"product": "Service", "quantity": "1", "unit_price": "1200.00", "discount_percent": "0"},
        {"product": "Tyres", "quantity": "24", "unit_price": "150.00", "discount_percent": "0"},
    ]}}});
    let edited = post(&t, &format!("/v1/opportunities/{opp}/reviews/{quote_review}/resolve"), edit, &alice).await;
    assert_eq!(edited.status, 200, "{}", edited.body);

    // Lineage: the resolution names the intent and the concurrent change's version.
    let events = events_of(&t, &opp).await;
    let resolution = events.iter().find_map(|r| match &r.event {
        tidemark_events::DomainEvent::Opportunity(tidemark_events::opportunity::OpportunityEvent::ReviewResolved(e)) if e.review_id.to_string() == amount_review => Some(e.clone()),
        _ => None,
    });
    let resolution = resolution.expect("the resolution's event");
    assert_eq!((resolution.intent_key.as_str(), resolution.theirs_version, resolution.resolved_by.as_str()), ("i-amount", theirs_version, "alice"));
    let theirs = events.iter().find(|r| r.envelope.aggregate_version == theirs_version).unwrap();
    assert_eq!(theirs.envelope.event_type, "OpportunityAmountChanged", "theirs_version names the online amount change");

    let after = t.get_as(&format!("{}/v1/opportunities/{opp}?consistency_token={}", t.queries(), edited.token()), &alice).await;
    assert_eq!(after.body["data"]["amount"]["value"], "9000.00");
    assert_eq!(after.body["data"]["quotes"][0]["lines"][1]["quantity"], "4");
    let open = t.get_as(&format!("{}/v1/reviews?consistency_token={}", t.queries(), edited.token()), &alice).await;
    assert_eq!(open.body["data"], json!([]), "{}", open.body);
    let all = t.get_as(&format!("{}/v1/reviews?status=all", t.queries()), &alice).await;
    let statuses: Vec<&str> = all.body["data"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["resolved", "resolved"], "{}", all.body);

    // The read model is what folding the log gives.
    let (code, out, err) = t.replay(&["verify", "opportunities"]);
    assert_eq!(code, 0, "{out}{err}");
    t.stop().await;
}
