//! The OpenAPI documents are what the servers do. Schemathesis (installed by `infra/test`)
//! generates requests from each service's `/openapi.json`, valid and invalid ones, as
//! several roles, and fails on any 5xx, any status the document does not list, and any
//! request the document calls valid that is refused as malformed (the check of our own in
//! `fixtures/conformance_checks.py` says why schemathesis's own is not enough).

mod common;

use common::TestSystem;

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
    let checks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/conformance_checks.py");
    let hooks_dir = std::path::Path::new(checks).parent().unwrap();
    let mut failures = Vec::new();
    for (service, base) in [("commands", t.commands()), ("queries", t.queries()), ("registry", t.registry())] {
        for (role, token) in roles(&t) {
            let output = tokio::process::Command::new(&schemathesis)
                .args(["--no-color", "run"])
                .arg(format!("{base}/openapi.json"))
                .args(["--url", &base])
                .args(["--header", &format!("Authorization: Bearer {token}")])
                .args(["--checks", "not_a_server_error,status_code_conformance,valid_request_not_refused_as_malformed"])
                .args(["--phases", "coverage,fuzzing"])
                .args(["--max-examples", EXAMPLES_PER_OPERATION, "--seed", SEED])
                .args(["--workers", "2"])
                .env("SCHEMATHESIS_HOOKS", "conformance_checks")
                .env("PYTHONPATH", hooks_dir)
                .output()
                .await
                .expect("schemathesis runs");
            let out = String::from_utf8_lossy(&output.stdout);
            let summary = out.lines().rev().find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed"))).unwrap_or("").trim().to_string();
            println!("{service} as {role}: {summary}");
            if !output.status.success() {
                failures.push(format!("=== {service} as {role}\n{out}\n{}", String::from_utf8_lossy(&output.stderr)));
            }
        }
    }
    t.stop().await;
    assert!(failures.is_empty(), "schemathesis found answers the documents do not promise:\n{}", failures.join("\n"));
}
