//! Leads through the public APIs, against the real broker and PostgreSQL: captured,
//! assigned by the rules as an automation with its rationale, qualified, and converted
//! into an account, a contact and an opportunity under one correlation id.

mod common;

use common::{Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_events::DomainEvent;
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

fn lead(territory: &str, segment: &str) -> Value {
    json!({"name": "Jane Doe", "company": "Initech", "email": "jane@initech.example", "territory": territory, "segment": segment, "source": "web form"})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lead_is_assigned_by_the_rules_qualified_and_converted() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let bob = t.token("bob", "default", &["rep"], Some("east"), None);
    let mia = t.token("mia", "default", &["manager", "approver"], Some("east"), None);

    // Two east leads: the east team's members take them in turn.
    let first = post(&t, "/v1/leads", lead("East", "smb"), &alice).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = post(&t, "/v1/leads", lead("east", "smb"), &alice).await;
    let (first, second) = (first.body["id"].as_str().unwrap().to_string(), second.body["id"].as_str().unwrap().to_string());
    let read = |id: &str, token: &str| t.get_as(&format!("{}/v1/leads/{id}?consistency=strong", t.queries()), token);
    let one = read(&first, &mia).await;
    assert_eq!(one.status, 200, "{}", one.body);
    let two = read(&second, &mia).await;
    let owners = [one.body["data"]["owner_id"].as_str().unwrap().to_string(), two.body["data"]["owner_id"].as_str().unwrap().to_string()];
    assert_eq!(owners, ["alice", "bob"], "round robin in team east");
    assert!(one.body["data"]["assignment_latency_ms"].as_i64().unwrap() >= 0);

    // The assignment is the lead-router automation's command, with its rationale.
    let log = t.read_log(&t.config.topics().lead).await;
    let assigned: Vec<_> = log
        .iter()
        .filter_map(|(_, _, d)| match d {
            Decoded::Event(e) if e.envelope.event_type == "LeadAssigned" => Some(e.envelope.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(assigned.len(), 2);
    assert_eq!((assigned[0].actor_id.as_str(), assigned[0].actor_kind.name()), ("lead-router", "automation"));
    assert!(assigned[0].rationale.as_deref().unwrap().contains("territory east"), "{:?}", assigned[0].rationale);

    // Bob may not read alice's lead, nor a manager of another team: refused, not hidden,
    // and recorded; the refusal names neither owner nor team.
    let wes = t.token("wes", "default", &["manager", "approver"], Some("west"), None);
    for (token, whose) in [(&bob, "not yours"), (&wes, "neither yours nor your team's")] {
        let refused = read(&first, token).await;
        assert_eq!((refused.status, refused.body["reason_code"].as_str()), (403, Some("not-your-record")), "{}", refused.body);
        assert_eq!(refused.body["detail"], format!("this lead is {whose}"), "{}", refused.body);
    }
    let auditor = t.token("audrey", "default", &["auditor"], None, None);
    let denials = t.get_as(&format!("{}/v1/audit/denials", t.queries()), &auditor).await;
    let reads: Vec<_> = denials.body["data"].as_array().unwrap().iter().filter(|d| d["action"] == "read-lead").map(|d| d["actor_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(reads, ["wes", "bob"], "{}", denials.body);

    // Bob may not work alice's lead; she qualifies and converts it.
    let not_his = post(&t, &format!("/v1/leads/{first}/qualify"), json!({}), &bob).await;
    assert_eq!((not_his.status, not_his.body["reason_code"].as_str()), (403, Some("not-your-record")), "{}", not_his.body);
    let early = post(&t, &format!("/v1/leads/{first}/convert"), json!({"opportunity_name": "Initech pilot", "amount": {"value": "5000.00", "currency": "EUR"}, "close_date": "2027-03-31"}), &alice).await;
    assert_eq!((early.status, early.body["rule"].as_str()), (422, Some("qualify-before-converting")), "{}", early.body);
    assert_eq!(post(&t, &format!("/v1/leads/{first}/qualify"), json!({}), &alice).await.status, 200);
    let converted = post(&t, &format!("/v1/leads/{first}/convert"), json!({"opportunity_name": "Initech pilot", "amount": {"value": "5000.00", "currency": "EUR"}, "close_date": "2027-03-31"}), &alice).await;
    assert_eq!(converted.status, 200, "{}", converted.body);

    let done = read(&first, &alice).await;
    let l = &done.body["data"];
    assert_eq!(l["status"], "converted", "{}", done.body);
    let opportunity = l["opportunity_id"].as_str().unwrap().to_string();
    let deal = t.get_as(&format!("{}/v1/opportunities/{opportunity}", t.queries()), &alice).await;
    assert_eq!(deal.status, 200, "{}", deal.body);
    assert_eq!((deal.body["data"]["owner_id"].as_str(), deal.body["data"]["name"].as_str(), deal.body["data"]["team_id"].as_str()), (Some("alice"), Some("Initech pilot"), Some("east")));
    let account = t.get_as(&format!("{}/v1/accounts/{}?consistency=strong", t.queries(), l["account_id"].as_str().unwrap()), &alice).await;
    assert_eq!(account.body["data"]["name"], "Initech", "{}", account.body);
    assert_eq!(account.body["data"]["contacts"][0]["email"], "jane@initech.example");

    // One correlation id ties the conversion to everything it created.
    let topics = t.config.topics();
    let mut correlated = Vec::new();
    for topic in [&topics.lead, &topics.account, &topics.contact, &topics.opportunity] {
        for (_, _, d) in t.read_log(topic).await {
            if let Decoded::Event(e) = d {
                if matches!(e.event, DomainEvent::Lead(_)) && e.envelope.event_type != "LeadConverted" {
                    continue;
                }
                correlated.push((e.envelope.event_type.clone(), e.envelope.correlation_id.clone(), e.envelope.actor_id.clone()));
            }
        }
    }
    let conversion = correlated.iter().find(|(t, _, _)| t == "LeadConverted").unwrap().1.clone();
    let tied: Vec<_> = correlated.iter().filter(|(_, c, _)| *c == conversion).map(|(t, _, a)| (t.as_str(), a.as_str())).collect();
    assert_eq!(tied, [("LeadConverted", "alice"), ("AccountOpened", "alice"), ("ContactCreated", "alice"), ("OpportunityCreated", "alice")]);

    // Disqualified with a reason, a lead is done; the latency view is for managers.
    let gone = post(&t, &format!("/v1/leads/{second}/disqualify"), json!({"reason": "a student project"}), &bob).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let latency = t.get_as(&format!("{}/v1/leads/assignment-latency?consistency=strong", t.queries()), &mia).await;
    assert_eq!((latency.body["data"]["teams"][0]["team_id"].as_str(), latency.body["data"]["teams"][0]["assigned"].as_i64()), (Some("east"), Some(2)), "{}", latency.body);
    assert_eq!(t.get_as(&format!("{}/v1/leads/assignment-latency", t.queries()), &alice).await.status, 403);
    let bad = post(&t, "/v1/leads", json!({"name": "X", "company": "Y", "email": "nope", "territory": "east", "segment": "smb", "source": "web"}), &alice).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("email")), "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversion_appends_the_lead_and_the_records_it_creates_in_one_answer() {
    let t = TestSystem::start().await;
    let admin = t.admin();
    let id: uuid::Uuid = post(&t, "/v1/leads", lead("east", "smb"), &admin).await.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(post(&t, &format!("/v1/leads/{id}/qualify"), json!({}), &admin).await.status, 200);
    let body = json!({"opportunity_name": "Initech pilot", "amount": {"value": "5000.00", "currency": "EUR"}, "close_date": "2027-03-31"});
    let converted = post(&t, &format!("/v1/leads/{id}/convert"), body.clone(), &admin).await;
    assert_eq!(converted.status, 200, "{}", converted.body);

    // The answer comes after the commit, so every record is in the log when it arrives.
    let topics = t.config.topics();
    let conversion = t.read_log(&topics.lead).await.into_iter().find_map(|(_, _, d)| match d {
        Decoded::Event(tidemark_events::EventRecord { event: tidemark_events::DomainEvent::Lead(tidemark_events::lead::LeadEvent::Converted(c)), .. }) => Some(c),
        _ => None,
    });
    let conversion = conversion.expect("the lead's conversion is in the log");
    // In the lead's shard: one writer appends all four records.
    let shard = |id: uuid::Uuid| tidemark_events::partition::partition_for(id.to_string().as_bytes(), t.config.partitions);
    assert!([conversion.account_id, conversion.contact_id, conversion.opportunity_id].iter().all(|created| shard(*created) == shard(id)), "{conversion:?}");
    let mut created = Vec::new();
    for (topic, target) in [(&topics.lead, id), (&topics.account, conversion.account_id), (&topics.contact, conversion.contact_id), (&topics.opportunity, conversion.opportunity_id)] {
        for (_, _, d) in t.read_log(topic).await {
            if let Decoded::Event(e) = d {
                if e.envelope.aggregate_id == target && e.envelope.event_type != "LeadCaptured" && e.envelope.event_type != "LeadAssigned" && e.envelope.event_type != "LeadQualified" {
                    created.push((e.envelope.event_type.clone(), e.envelope.writer_epoch));
                }
            }
        }
    }
    let types: Vec<&str> = created.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["LeadConverted", "AccountOpened", "ContactCreated", "OpportunityCreated"], "{created:?}");

    // A second conversion is refused and appends nothing.
    let again = post(&t, &format!("/v1/leads/{id}/convert"), body, &admin).await;
    assert_eq!(again.status, 422, "{}", again.body);
    let opportunities = t.read_log(&topics.opportunity).await.into_iter().filter(|(_, _, d)| matches!(d, Decoded::Event(_))).count();
    assert_eq!(opportunities, 1, "one opportunity record");
}
