//! The OpenAPI documents are what the servers do. Schemathesis (installed by `infra/test`)
//! generates requests from each service's `/openapi.json`, valid and invalid ones, as
//! several roles, and fails on any 5xx, any status the document does not list, and any
//! request the document calls valid that is refused as malformed (the check of our own in
//! `fixtures/conformance_checks.py` says why schemathesis's own is not enough).

mod common;

use common::TestSystem;
use serde_json::json;

/// Enough examples per operation to meet every enum, format and boundary once, few
/// enough to keep the whole run to a few minutes on two cores.
const EXAMPLES_PER_OPERATION: &str = "25";
/// A fixed seed: a failure found once is found again.
const SEED: &str = "20261202";

/// The roles whose views differ: a rep sees their own, a manager the team, an admin the
/// tenant, and an operator the deployment (the registry's writes, quarantine).
fn roles(t: &TestSystem) -> Vec<(&'static str, String)> {
    vec![
        ("rep", t.token("alice", "default", &["rep"], Some("east"), None)),
        ("manager", t.token("mia", "default", &["manager", "approver"], Some("east"), None)),
        ("admin", t.token("root", "default", &["admin"], None, None)),
        ("operator", t.operator()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_is_one_the_openapi_documents_promise() {
    let schemathesis = std::env::var("TIDEMARK_SCHEMATHESIS")
        .expect("TIDEMARK_SCHEMATHESIS is not set: run the tests with infra/test, which installs schemathesis for them");
    let t = TestSystem::start().await;
    let config = std::env::temp_dir().join(format!("tidemark-schemathesis-{}.toml", uuid::Uuid::new_v4()));
    let (known, consistency_token) = known_values(&t).await;
    std::fs::write(&config, known).expect("the schemathesis config is written");
    let checks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/conformance_checks.py");
    let hooks_dir = std::path::Path::new(checks).parent().unwrap();
    let mut failures = Vec::new();
    for (service, base) in [("commands", t.commands()), ("queries", t.queries()), ("registry", t.registry())] {
        for (role, bearer) in roles(&t) {
            let output = tokio::process::Command::new(&schemathesis)
                .arg("--config-file")
                .arg(&config)
                .args(["--no-color", "run"])
                .arg(format!("{base}/openapi.json"))
                .args(["--url", &base])
                .args(["--header", &format!("Authorization: Bearer {bearer}")])
                .args(["--checks", "not_a_server_error,status_code_conformance,valid_request_not_refused_as_malformed"])
                .args(["--phases", "coverage,fuzzing"])
                .args(["--max-examples", EXAMPLES_PER_OPERATION, "--seed", SEED])
                // One worker: Hypothesis's lambda descriptions are not thread-safe ("AST constructor
                // recursion depth mismatch" stopped a run with two).
                .args(["--workers", "1"])
                .env("SCHEMATHESIS_HOOKS", "conformance_checks")
                .env("PYTHONPATH", hooks_dir)
                .env("TIDEMARK_CONSISTENCY_TOKEN", &consistency_token)
                .output()
                .await
                .expect("schemathesis runs");
            let out = String::from_utf8_lossy(&output.stdout);
            let summary = out.lines().rev().find(|l| l.starts_with('=') && l.contains(" in ")).unwrap_or("").trim_matches(|c| c == '=' || c == ' ');
            let cases = out.lines().skip_while(|l| l.trim() != "Test cases:").nth(1).unwrap_or("").trim();
            println!("{service} as {role}: {cases}; {summary}");
            // Schemathesis's warnings (operations that only met 404s, say) tell how deep the fuzzing reached.
            let warnings = out.lines().skip_while(|l| !l.starts_with("=== WARNINGS") && !l.contains("= WARNINGS =")).skip(1).take_while(|l| !l.contains("= SUMMARY ="));
            for line in warnings.filter(|l| !l.trim().is_empty()) {
                println!("    {line}");
            }
            if !output.status.success() {
                failures.push(format!("=== {service} as {role}\n{out}\n{}", String::from_utf8_lossy(&output.stderr)));
            }
        }
    }
    t.stop().await;
    let _ = std::fs::remove_file(&config);
    assert!(failures.is_empty(), "schemathesis found answers the documents do not promise:\n{}", failures.join("\n"));
}

/// A schemathesis config that puts the ids of one record of each kind (and a registry
/// subject) in the paths, so that requests reach the domain rules and not only "404 no
/// such ..." (random ids were fuzzed before, and meet the same 404 everywhere); and a
/// consistency token the server issued.
async fn known_values(t: &TestSystem) -> (String, String) {
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let mia = t.token("mia", "default", &["manager", "approver"], Some("east"), None);
    let create = |path: &str, token: &str, body: serde_json::Value| {
        let answer = t.post_as(&format!("{}{path}", t.commands()), token, body);
        async move {
            let answer = answer.await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer
        }
    };
    let id = |answer: &common::Answer, field: &str| answer.body[field].as_str().expect("an id").to_string();
    let account = t.open_account("Conformance Ltd").await;
    let opportunity = t.create_opportunity(&account, "alice", "12000.00").await;
    let opportunity_id = id(&opportunity, "id");
    let lines = json!([{"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "15"}]);
    let quote = create(&format!("/v1/opportunities/{opportunity_id}/quotes"), &alice, json!({"currency": "EUR", "valid_until": "2099-12-31", "lines": lines})).await;
    let contact = create("/v1/contacts", &alice, json!({"name": "Ana Conformance"})).await;
    let lead = create("/v1/leads", &alice, json!({"name": "Lea Lead", "company": "Lead GmbH", "email": "lea@lead.example", "territory": "east", "segment": "smb", "source": "web form"})).await;
    let activity = create("/v1/activities", &alice, json!({"kind": "call", "about": "opportunity", "about_id": opportunity_id, "subject": "Discovery call"})).await;
    let today = chrono::Utc::now().date_naive();
    let delegation = create("/v1/delegations", &mia, json!({"delegate": "bob", "valid_from": today.to_string(), "valid_until": (today + chrono::Days::new(7)).to_string()})).await;
    let subjects = t.get(&format!("{}/subjects", t.registry())).await.body;
    let subject = subjects[0].as_str().expect("the registry has a subject").to_string();

    let by_path: [(&str, Vec<(&str, String)>); 7] = [
        ("^/v1/accounts/", vec![("id", account)]),
        ("^/v1/(opportunities|audit/lineage)/", vec![("id", opportunity_id), ("quote_id", id(&quote, "quote_id")), ("user_id", "bob".into())]),
        ("^/v1/contacts/", vec![("id", id(&contact, "id"))]),
        ("^/v1/leads/", vec![("id", id(&lead, "id"))]),
        ("^/v1/activities/", vec![("id", id(&activity, "id"))]),
        ("^/v1/delegations/", vec![("id", id(&delegation, "id"))]),
        ("^/(subjects|config|compatibility)/", vec![("subject", subject)]),
    ];
    let mut config = String::new();
    for (path, parameters) in by_path {
        let parameters: Vec<String> = parameters.iter().map(|(name, value)| format!("\"path.{name}\" = {value:?}")).collect();
        config += &format!("[[operations]]\ninclude-path-regex = {path:?}\nparameters = {{ {} }}\n\n", parameters.join(", "));
    }
    (config, opportunity.token())
}
