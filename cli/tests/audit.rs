//! What auditors read besides the log, against the real broker and PostgreSQL: commands
//! the domain refused, and who saw personal data.

mod common;

use common::TestSystem;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn refused_commands_and_reads_of_personal_data_are_recorded_for_auditors() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let andy = t.token("andy", "default", &["analyst"], None, None);
    let audrey = t.token("audrey", "default", &["auditor"], None, None);
    let as_alice = format!("Bearer {alice}");
    let account = t.open_account("Audit Inc").await;
    let id = t.create_opportunity(&account, "alice", "10.00").await.body["id"].as_str().unwrap().to_string();

    // Three refusals of the domain and one of an older version; none reaches the log.
    let before = t.log_end_offsets(&t.config.topics().opportunity).await;
    let refused = [
        (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Negotiation"}), vec![("Idempotency-Key", "skip-1")], 422),
        (format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), vec![], 422),
        (format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "10", "currency": "USD"}}), vec![], 422),
        (format!("/v1/opportunities/{id}/stage"), json!({"stage": "Qualification"}), vec![("If-Match", "\"7\"")], 409),
    ];
    for (path, body, mut headers, status) in refused {
        headers.push(("Authorization", as_alice.as_str()));
        let answer = t.command(&path, body, &headers).await;
        assert_eq!(answer.status, status, "{}", answer.body);
    }
    assert_eq!(t.log_end_offsets(&t.config.topics().opportunity).await, before);
    let rejections = t.get_as(&format!("{}/v1/audit/rejected-commands", t.queries()), &audrey).await;
    assert_eq!(rejections.status, 200, "{}", rejections.body);
    let rows = rejections.body["data"].as_array().unwrap();
    let rules: Vec<&str> = rows.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["version-conflict", "currency-is-fixed", "stages-in-order", "stages-in-order"], "newest first");
    let skip = &rows[3];
    assert_eq!((skip["actor_id"].as_str(), skip["command_id"].as_str(), skip["target"].as_str()), (Some("alice"), Some("skip-1"), Some(format!("opportunity/{id}").as_str())));
    assert!(skip["reason"].as_str().unwrap().contains("next stage is Qualification"), "{skip}");
    assert_eq!(t.get_as(&format!("{}/v1/audit/rejected-commands", t.queries()), &alice).await.status, 403, "auditors only");

    // Alice sees Jane's personal fields and that is recorded; andy sees them withheld, and
    // nothing is recorded for him.
    let jane = t.command("/v1/contacts", json!({"name": "Jane Doe", "email": "jane@audit.example", "account_id": account}), &[]).await;
    let contact = jane.body["id"].as_str().unwrap().to_string();
    let shown = t.get_as(&format!("{}/v1/contacts/{contact}", t.queries()), &alice).await;
    assert_eq!(shown.body["data"]["personal_fields"], "shown", "{}", shown.body);
    let withheld = t.get_as(&format!("{}/v1/contacts/{contact}", t.queries()), &andy).await;
    assert_eq!(withheld.body["data"]["personal_fields"], "withheld");
    let overview = t.get_as(&format!("{}/v1/accounts/{account}?consistency=strong", t.queries()), &alice).await;
    assert_eq!(overview.status, 200);
    // Answers that show nobody's personal data record nothing: an empty list, an account
    // without contacts.
    let empty = t.get_as(&format!("{}/v1/leads?consistency=strong", t.queries()), &alice).await;
    assert_eq!((empty.status, empty.body["data"].as_array().map(Vec::len)), (200, Some(0)), "{}", empty.body);
    let bare = t.open_account("No Contacts Ltd").await;
    let without = t.get_as(&format!("{}/v1/accounts/{bare}?consistency=strong", t.queries()), &alice).await;
    assert_eq!(without.status, 200, "{}", without.body);
    let reads = t.get_as(&format!("{}/v1/audit/personal-data-reads", t.queries()), &audrey).await;
    let seen: Vec<(String, String)> = reads.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["actor_id"].as_str().unwrap().to_string(), r["target"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(seen, [("alice".to_string(), format!("contacts of account/{account}")), ("alice".to_string(), format!("contact/{contact}"))]);
    assert!(reads.body["data"][0]["read_at"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn automated_edits_are_listed_with_their_rationale_and_rebuild_from_the_log() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let audrey = t.token("audrey", "default", &["auditor"], None, None);
    let lead = json!({"name": "Jo Bloggs", "company": "Bloggs Ltd", "territory": "west", "segment": "smb", "source": "web form"});
    let captured = t.command("/v1/leads", lead, &[("Authorization", &format!("Bearer {alice}"))]).await;
    assert_eq!(captured.status, 201, "{}", captured.body);
    // A user's change is not an automated edit.
    let account = t.open_account("Manual Ltd").await;
    t.create_opportunity(&account, "alice", "10.00").await;

    let url = format!("{}/v1/audit/automated-edits?consistency=strong", t.queries());
    let listed = t.get_as(&url, &audrey).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let edits = listed.body["data"].as_array().unwrap().clone();
    assert_eq!(edits.len(), 1, "{}", listed.body);
    let edit = &edits[0];
    assert_eq!((edit["event_type"].as_str(), edit["actor_id"].as_str(), edit["aggregate_id"].as_str()), (Some("LeadAssigned"), Some("lead-router"), captured.body["id"].as_str()));
    assert!(edit["rationale"].as_str().unwrap().contains("territory west"), "{edit}");
    assert_eq!(listed.body["staleness"]["fresh"], true);
    assert_eq!(t.get_as(&url, &alice).await.status, 403, "auditors only");
    assert_eq!(t.get_as(&format!("{url}&actor=someone-else"), &audrey).await.body["data"], json!([]));
    assert_eq!(t.get_as(&format!("{url}&limit=0"), &audrey).await.status, 422);

    let (code, _, err) = t.replay(&["rebuild", "automated_edits"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.get_as(&url, &audrey).await.body["data"], json!(edits), "the same rows, rebuilt from the log");
}
