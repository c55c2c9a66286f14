//! Auditors' lineage through the query API, against the real broker and PostgreSQL: a number
//! in "my approvals" and in the forecast traced to the events, commands and people that
//! produced it, upstream and downstream, and checked against the raw log.

mod common;

use common::{Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

fn ids(chain: &Value) -> Vec<String> {
    chain.as_array().unwrap().iter().map(|c| c["event_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_in_my_approvals_and_in_the_forecast_traces_back_to_who_and_what_produced_it() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let mia = t.token("mia", "default", &["manager", "approver"], Some("east"), None);
    let fiona = t.token("fiona", "default", &["finance", "approver"], Some("finance"), None);
    let audrey = t.token("audrey", "default", &["auditor"], None, None);
    let lineage = |path: String, token: &str| t.get_as(&format!("{}/v1/audit/lineage/{path}", t.queries()), token);

    // A deal of alice's with a 25% quote: manager step approved by mia, finance step waiting.
    let account = t.open_account("Traceable GmbH").await;
    let id = t.create_opportunity(&account, "alice", "10000.00").await.body["id"].as_str().unwrap().to_string();
    for stage in ["Qualification", "Proposal", "Negotiation"] {
        assert_eq!(t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": stage}), &[]).await.status, 200);
    }
    let lines = json!([{"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "25"}]);
    let drafted = post(&t, &format!("/v1/opportunities/{id}/quotes"), json!({"currency": "EUR", "valid_until": "2099-12-31", "lines": lines}), &alice).await;
    let quote = drafted.body["quote_id"].as_str().unwrap().to_string();
    let q = format!("/v1/opportunities/{id}/quotes/{quote}");
    assert_eq!(post(&t, &format!("{q}/submit"), json!({}), &alice).await.status, 200);
    assert_eq!(post(&t, &format!("{q}/approve"), json!({"comment": "fleet deal"}), &mia).await.status, 200);

    // The number fiona sees in "my approvals"...
    let mine = t.get_as(&format!("{}/v1/approvals/mine", t.queries()), &fiona).await;
    let item = mine.body["data"][0].clone();
    assert_eq!((item["net_amount"].as_str(), item["quote_id"].as_str()), (Some("7500.00"), Some(quote.as_str())), "{}", mine.body);

    // ...traced by an auditor: the quote's chain, each event with who and how.
    assert_eq!(lineage(format!("opportunity/{id}?field=quotes.{quote}"), &alice).await.status, 403, "auditors only");
    let traced = lineage(format!("opportunity/{}?field=quotes.{}", item["opportunity_id"].as_str().unwrap(), quote), &audrey).await;
    assert_eq!(traced.status, 200, "{}", traced.body);
    let chain = traced.body["data"]["chain"].as_array().unwrap().clone();
    let steps: Vec<_> = chain.iter().map(|c| (c["event_type"].as_str().unwrap(), c["actor_id"].as_str().unwrap())).collect();
    assert_eq!(steps, [("QuoteDrafted", "alice"), ("QuoteSubmitted", "alice"), ("QuoteApprovalDecided", "mia")]);
    assert_eq!(traced.body["data"]["value"][format!("quotes.{quote}.status")], "pending_approval", "{}", traced.body);
    // Upstream: the approval builds on the submission (and on the draft, which set the
    // approval history it extends); the submission builds on the draft.
    assert_eq!(chain[2]["builds_on"], json!([chain[0]["event_id"], chain[1]["event_id"]]), "{}", traced.body);
    assert_eq!(chain[1]["builds_on"], json!([chain[0]["event_id"]]), "{}", traced.body);
    // Downstream: which read models' rows each event changed.
    let models: Vec<_> = chain[2]["read_models"].as_array().unwrap().iter().map(|m| m["projection"].as_str().unwrap()).collect();
    assert_eq!(models, ["opportunities", "quote_documents"], "{}", traced.body);
    assert!(chain[2]["read_models"][0]["tables"].as_array().unwrap().contains(&json!("pending_approvals")));

    // Exactness: derived independently from the raw log, the same events in the same order,
    // at the same places, with the same provenance.
    let raw: Vec<_> = t
        .read_log(&t.config.topics().opportunity)
        .await
        .into_iter()
        .filter_map(|(p, o, d)| match d {
            Decoded::Event(e) if e.envelope.aggregate_id.to_string() == id && tidemark_history::event_json(&e)["data"]["quote_id"] == quote.as_str() => Some((p, o, e)),
            _ => None,
        })
        .collect();
    assert_eq!(ids(&traced.body["data"]["chain"]), raw.iter().map(|(_, _, e)| e.envelope.event_id.to_string()).collect::<Vec<_>>());
    for (c, (p, o, e)) in chain.iter().zip(&raw) {
        let env = &e.envelope;
        assert_eq!((c["partition"].as_i64(), c["offset"].as_i64(), c["aggregate_version"].as_i64()), (Some(*p as i64), Some(*o), Some(env.aggregate_version)));
        assert_eq!((c["command_id"].as_str(), c["correlation_id"].as_str(), c["client_id"].as_str()), (Some(env.command_id.as_str()), Some(env.correlation_id.as_str()), Some(env.client_id.as_str())));
        assert_eq!((c["actor_kind"].as_str(), c["policy_version"].as_str(), c["code_version"].as_str()), (Some(env.actor_kind.name()), Some(env.policy_version.as_str()), Some(env.code_version.as_str())));
        assert_eq!((c["causation_id"].as_str(), c["rationale"].as_str(), c["writer_epoch"].as_i64()), (env.causation_id.as_deref(), env.rationale.as_deref(), Some(env.writer_epoch)));
    }
    // The CLI answers the same.
    let (code, out, err) = t.replay(&["lineage", "opportunity", &id, "--field", &format!("quotes.{quote}")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), traced.body["data"]);

    // Finance approves, the customer accepts: the amount follows the quote, in one command.
    assert_eq!(post(&t, &format!("{q}/approve"), json!({}), &fiona).await.status, 200);
    assert_eq!(post(&t, &format!("{q}/accept"), json!({}), &alice).await.status, 200);
    let amount = lineage(format!("opportunity/{id}?field=amount"), &audrey).await;
    let chain = amount.body["data"]["chain"].as_array().unwrap().clone();
    let types: Vec<_> = chain.iter().map(|c| c["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OpportunityCreated", "OpportunityAmountChanged"], "{}", amount.body);
    assert_eq!(chain[1]["changed"]["amount"]["to"]["value"], "7500.00");
    assert_eq!(chain[1]["builds_on"][0], chain[0]["event_id"], "{}", amount.body);
    let whole = lineage(format!("opportunity/{id}"), &audrey).await;
    let accepted = whole.body["data"]["chain"].as_array().unwrap().iter().find(|c| c["event_type"] == "QuoteAccepted").unwrap().clone();
    assert_eq!(accepted["command_id"], chain[1]["command_id"], "the accept and the amount are one command");

    // Errors say what was wrong.
    assert_eq!(lineage(format!("opportunity/{id}?field=colour"), &audrey).await.status, 404, "no such field");
    assert_eq!(lineage(format!("opportunity/{}", uuid::Uuid::now_v7()), &audrey).await.status, 404);
    assert_eq!(lineage(format!("invoice/{id}"), &audrey).await.status, 404);
    assert_eq!(lineage(format!("opportunity/{id}"), &t.token("audrey", "other-tenant", &["auditor"], None, None)).await.status, 404);

    // A number of the forecast: alice's December in EUR, the won deal and one in Proposal.
    let second = t.create_opportunity(&account, "alice", "2000.00").await.body["id"].as_str().unwrap().to_string();
    for stage in ["Qualification", "Proposal"] {
        assert_eq!(t.command(&format!("/v1/opportunities/{second}/stage"), json!({"stage": stage}), &[]).await.status, 200);
    }
    assert_eq!(post(&t, &format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), &alice).await.status, 200);
    let forecast = t.get_as(&format!("{}/v1/forecast?period=month&owner=alice&consistency=strong", t.queries()), &mia).await;
    let row = forecast.body["data"].as_array().unwrap().iter().find(|r| r["period"] == "2026-12" && r["currency"] == "EUR").unwrap().clone();
    let cell = t.get_as(&format!("{}/v1/audit/forecast-lineage?owner=alice&period=2026-12&currency=EUR", t.queries()), &audrey).await;
    assert_eq!(cell.status, 200, "{}", cell.body);
    assert_eq!(cell.body["data"]["figures"], row["total"], "the same number as the forecast shows");
    let deals = cell.body["data"]["deals"].as_array().unwrap();
    assert_eq!(deals.len(), 2, "{}", cell.body);
    for deal in deals {
        assert_eq!(deal["log_agrees"], true, "{deal}");
        assert_eq!(deal["chain"][0]["event_type"], "OpportunityCreated", "{deal}");
    }
    let won = deals.iter().find(|d| d["id"] == id.as_str()).unwrap();
    let won_types: Vec<_> = won["chain"].as_array().unwrap().iter().map(|c| c["event_type"].as_str().unwrap()).collect();
    assert!(won_types.contains(&"OpportunityAmountChanged") && won_types.contains(&"OpportunityClosed"), "{won_types:?}");
    let closed = t.get_as(&format!("{}/v1/audit/forecast-lineage?owner=alice&period=2026-12&currency=EUR&category=closed", t.queries()), &audrey).await;
    assert_eq!(closed.body["data"]["figures"], row["categories"]["closed"], "{}", closed.body);
    let bad = t.get_as(&format!("{}/v1/audit/forecast-lineage?owner=alice&period=December&currency=EUR", t.queries()), &audrey).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("period")), "{}", bad.body);
}
