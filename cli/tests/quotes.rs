//! Quotes and their discount approval chains, through the public APIs, against the real
//! broker and PostgreSQL: draft → submit → manager → finance → accepted → won, with
//! "my approvals" following each step, and the rules that refuse what must not happen.

mod common;

use common::{Answer, TestSystem};
use serde_json::{json, Value};

struct Team {
    alice: String,
    bob: String,
    mia: String,
    wes: String,
    fiona: String,
}

fn team(t: &TestSystem) -> Team {
    Team {
        alice: t.token("alice", "default", &["rep"], Some("east"), None),
        bob: t.token("bob", "default", &["rep"], Some("east"), None),
        mia: t.token("mia", "default", &["manager", "approver"], Some("east"), None),
        wes: t.token("wes", "default", &["manager", "approver"], Some("west"), None),
        fiona: t.token("fiona", "default", &["finance", "approver"], Some("finance"), None),
    }
}

fn auth(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let (name, value) = auth(token);
    t.command(path, body, &[(name, &value)]).await
}

/// An opportunity of alice's (team east) on a new account, worth 10,000.00 EUR, in
/// Negotiation (from where a deal is won).
async fn opportunity(t: &TestSystem) -> String {
    let account = t.open_account("Acme").await;
    let created = t.create_opportunity(&account, "alice", "10000.00").await;
    let id = created.body["id"].as_str().unwrap().to_string();
    for stage in ["Qualification", "Proposal", "Negotiation"] {
        assert_eq!(t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": stage}), &[]).await.status, 200);
    }
    id
}

fn quote_body(discount: &str) -> Value {
    json!({"currency": "EUR", "valid_until": "2099-12-31",
           "lines": [{"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": discount}]})
}

async fn draft(t: &TestSystem, id: &str, discount: &str, token: &str) -> String {
    let drafted = post(t, &format!("/v1/opportunities/{id}/quotes"), quote_body(discount), token).await;
    assert_eq!(drafted.status, 201, "{}", drafted.body);
    drafted.body["quote_id"].as_str().unwrap().to_string()
}

/// "My approvals" of whoever holds `token`, read strongly (its default).
async fn my_approvals(t: &TestSystem, token: &str) -> Vec<Value> {
    let answer = t.get_as(&format!("{}/v1/approvals/mine", t.queries()), token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["staleness"]["fresh"], true, "{}", answer.body);
    answer.body["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quote_goes_through_two_approval_steps_to_a_won_deal() {
    let t = TestSystem::start().await;
    let p = team(&t);
    let id = opportunity(&t).await;
    let quote = draft(&t, &id, "25", &p.alice).await;
    let q = format!("/v1/opportunities/{id}/quotes/{quote}");

    let submitted = post(&t, &format!("{q}/submit"), json!({}), &p.alice).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    assert_eq!(submitted.body["events"][0]["type"], "QuoteSubmitted");

    // Step 1 of 2 waits for a manager of team east: mia, not wes (west), not finance yet.
    let waiting = my_approvals(&t, &p.mia).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let item = &waiting[0];
    assert_eq!((item["quote_id"].as_str(), item["step"].as_i64(), item["steps"].as_i64()), (Some(quote.as_str()), Some(1), Some(2)));
    assert_eq!((item["requested_by"].as_str(), item["approver"].as_str()), (Some("alice"), Some("manager")));
    assert_eq!((item["net_amount"].as_str(), item["list_amount"].as_str()), (Some("7500.00"), Some("10000.00")));
    assert_eq!((item["discount_percent"].as_str(), item["currency"].as_str()), (Some("25.00"), Some("EUR")));
    assert!(item["age_seconds"].as_i64().unwrap() >= 0);
    assert!(my_approvals(&t, &p.wes).await.is_empty());
    assert!(my_approvals(&t, &p.fiona).await.is_empty());
    assert!(my_approvals(&t, &p.alice).await.is_empty(), "nobody sees their own quote");

    // Out of turn, or one's own: refused with the reason, and recorded for auditors.
    let early = post(&t, &format!("{q}/approve"), json!({}), &p.fiona).await;
    assert_eq!((early.status, early.body["reason_code"].as_str()), (403, Some("not-the-approver")), "{}", early.body);
    assert!(early.body["detail"].as_str().unwrap().contains("a manager of team east"), "{}", early.body);
    let outsider = post(&t, &format!("{q}/approve"), json!({}), &p.wes).await;
    assert_eq!((outsider.status, outsider.body["reason_code"].as_str()), (403, Some("not-the-approver")), "{}", outsider.body);
    assert!(!outsider.body.to_string().contains("east") && !outsider.body.to_string().contains("pending"), "west learns nothing of east's quote: {}", outsider.body);
    let own = post(&t, &format!("{q}/approve"), json!({}), &p.alice).await;
    assert_eq!((own.status, own.body["reason_code"].as_str()), (403, Some("own-quote")), "{}", own.body);
    // Locked while pending, and no win while pending.
    let revise = post(&t, &format!("{q}/revisions"), json!({"valid_until": "2099-12-31", "lines": quote_body("5")["lines"]}), &p.alice).await;
    assert_eq!((revise.status, revise.body["rule"].as_str()), (422, Some("quote-locked")), "{}", revise.body);
    let won = post(&t, &format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), &p.alice).await;
    assert_eq!((won.status, won.body["rule"].as_str()), (422, Some("quote-pending-approval")), "{}", won.body);

    let approved = post(&t, &format!("{q}/approve"), json!({"comment": "fine for a fleet deal"}), &p.mia).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert!(my_approvals(&t, &p.mia).await.is_empty());
    let waiting = my_approvals(&t, &p.fiona).await;
    assert_eq!((waiting.len(), waiting[0]["step"].as_i64()), (1, Some(2)), "{waiting:?}");

    let approved = post(&t, &format!("{q}/approve"), Value::Null, &p.fiona).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert!(my_approvals(&t, &p.fiona).await.is_empty());

    let accepted = post(&t, &format!("{q}/accept"), json!({}), &p.alice).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let types: Vec<_> = accepted.body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["QuoteAccepted", "OpportunityAmountChanged"], "the amount follows the accepted quote");
    let manual = post(&t, &format!("/v1/opportunities/{id}/amount"), json!({"amount": {"value": "1.00", "currency": "EUR"}}), &p.alice).await;
    assert_eq!((manual.status, manual.body["rule"].as_str()), (422, Some("amount-follows-quote")), "{}", manual.body);
    let won = post(&t, &format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), &p.alice).await;
    assert_eq!(won.status, 200, "{}", won.body);

    // The detail shows the quote with its whole approval history.
    let detail = t.get_as(&format!("{}/v1/opportunities/{id}?consistency_token={}", t.queries(), won.token()), &p.alice).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let o = &detail.body["data"];
    assert_eq!((o["status"].as_str(), o["amount"]["value"].as_str(), o["synced_quote_id"].as_str()), (Some("won"), Some("7500.00"), Some(quote.as_str())));
    let shown = &o["quotes"][0];
    assert_eq!((shown["status"].as_str(), shown["totals"]["net"].as_str()), (Some("accepted"), Some("7500.00")));
    let history: Vec<_> = shown["history"].as_array().unwrap().iter().map(|h| (h["step"].as_i64().unwrap(), h["decided_by"].as_str().unwrap().to_string(), h["decision"].as_str().unwrap().to_string())).collect();
    assert_eq!(history, [(1, "mia".to_string(), "approved".to_string()), (2, "fiona".to_string(), "approved".to_string())]);
    assert_eq!(shown["history"][0]["comment"], "fine for a fleet deal");

    // Auditors see the refusals; the read model equals a replay of the log.
    let denials = t.get_as(&format!("{}/v1/audit/denials", t.queries()), &t.token("audrey", "default", &["auditor"], None, None)).await;
    let codes: Vec<_> = denials.body["data"].as_array().unwrap().iter().map(|d| d["reason_code"].as_str().unwrap().to_string()).collect();
    assert!(codes.contains(&"own-quote".to_string()) && codes.contains(&"not-the-approver".to_string()), "{codes:?}");
    let (code, out, err) = t.replay(&["verify", "opportunities"]);
    assert_eq!(code, 0, "{out}{err}");

    // Turnaround is measured per step: one manager step and one finance step, both approved.
    let turnaround = t.get_as(&format!("{}/v1/approvals/turnaround?consistency=strong", t.queries()), &p.fiona).await;
    assert_eq!(turnaround.status, 200, "{}", turnaround.body);
    let rows = turnaround.body["data"].as_array().unwrap();
    let kinds: Vec<_> = rows.iter().map(|r| (r["approver"].as_str().unwrap(), r["approved"].as_i64().unwrap(), r["rejected"].as_i64().unwrap())).collect();
    assert_eq!(kinds, [("finance", 1, 0), ("manager", 1, 0)], "{}", turnaround.body);
    assert!(rows.iter().all(|r| r["p50_seconds"].as_f64().unwrap() >= 0.0));
    assert_eq!(t.get_as(&format!("{}/v1/approvals/turnaround", t.queries()), &p.alice).await.status, 403, "reps see their own deals only");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_quotes_are_revised_and_pending_ones_recalled() {
    let t = TestSystem::start().await;
    let p = team(&t);
    let id = opportunity(&t).await;
    let quote = draft(&t, &id, "15", &p.alice).await;
    let q = format!("/v1/opportunities/{id}/quotes/{quote}");
    assert_eq!(post(&t, &format!("{q}/submit"), json!({}), &p.alice).await.status, 200);

    let silent = post(&t, &format!("{q}/reject"), json!({}), &p.mia).await;
    assert_eq!((silent.status, silent.body["field"].as_str()), (422, Some("comment")), "a rejection says why: {}", silent.body);
    let rejected = post(&t, &format!("{q}/reject"), json!({"comment": "15% is too much for this account"}), &p.mia).await;
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let again = post(&t, &format!("{q}/submit"), json!({}), &p.alice).await;
    assert_eq!((again.status, again.body["rule"].as_str()), (422, Some("revise-before-resubmitting")), "{}", again.body);

    // Revised to 5%, it needs no approval at all.
    let revised = post(&t, &format!("{q}/revisions"), json!({"valid_until": "2099-12-31", "lines": quote_body("5")["lines"]}), &p.alice).await;
    assert_eq!(revised.status, 200, "{}", revised.body);
    let submitted = post(&t, &format!("{q}/submit"), json!({}), &p.alice).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let detail = t.get_as(&format!("{}/v1/opportunities/{id}?consistency_token={}", t.queries(), submitted.token()), &p.alice).await;
    let shown = &detail.body["data"]["quotes"][0];
    assert_eq!((shown["status"].as_str(), shown["revision"].as_i64(), shown["totals"]["net"].as_str()), (Some("approved"), Some(2), Some("9500.00")));
    assert_eq!(shown["history"][0]["decision"], "rejected", "the history keeps the first revision's rejection");

    // A second quote, recalled by its submitter only; then gone from mia's approvals.
    let second = draft(&t, &id, "18", &p.alice).await;
    let q2 = format!("/v1/opportunities/{id}/quotes/{second}");
    assert_eq!(post(&t, &format!("{q2}/submit"), json!({}), &p.alice).await.status, 200);
    assert_eq!(my_approvals(&t, &p.mia).await.len(), 1);
    let not_hers = post(&t, &format!("{q2}/recall"), json!({}), &p.mia).await;
    assert_eq!((not_hers.status, not_hers.body["reason_code"].as_str()), (403, Some("only-the-submitter-recalls")), "{}", not_hers.body);
    let recalled = post(&t, &format!("{q2}/recall"), json!({}), &p.alice).await;
    assert_eq!(recalled.status, 200, "{}", recalled.body);
    assert!(my_approvals(&t, &p.mia).await.is_empty());

    // A deal with quotes is won on an accepted one only; bob may not touch alice's quotes.
    let won = post(&t, &format!("/v1/opportunities/{id}/close"), json!({"outcome": "won", "reason": "signed"}), &p.alice).await;
    assert_eq!((won.status, won.body["rule"].as_str()), (422, Some("accepted-quote-required")), "{}", won.body);
    let bobs = post(&t, &format!("{q2}/submit"), json!({}), &p.bob).await;
    assert_eq!((bobs.status, bobs.body["reason_code"].as_str()), (403, Some("not-your-record")), "{}", bobs.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_quotes_get_a_clear_4xx_and_change_nothing() {
    let t = TestSystem::start().await;
    let p = team(&t);
    let id = opportunity(&t).await;
    let path = format!("/v1/opportunities/{id}/quotes");
    let line = |q: &str, price: Value, d: &str| json!({"currency": "EUR", "valid_until": "2099-12-31", "lines": [{"product": "Truck", "quantity": q, "unit_price": price, "discount_percent": d}]});
    let cases = [
        (line("1", json!(2500.0), "0"), 400, "bad-request"),
        (line("0", json!("2500"), "0"), 422, "invalid-field"),
        (line("1", json!("2500"), "120"), 422, "invalid-field"),
        (json!({"currency": "USD", "valid_until": "2099-12-31", "lines": [{"product": "T", "quantity": "1", "unit_price": "1"}]}), 422, "currency-is-fixed"),
        // A date the document allows but today refuses: a rule, naming its field.
        (json!({"currency": "EUR", "valid_until": "2001-01-01", "lines": [{"product": "T", "quantity": "1", "unit_price": "1"}]}), 422, "date-in-the-past"),
        (json!({"currency": "EUR", "valid_until": "2099-12-31", "lines": []}), 422, "invalid-field"),
    ];
    let before = t.log_end_offsets(&t.config.topics().opportunity).await;
    for (body, status, code) in cases {
        let answer = post(&t, &path, body.clone(), &p.alice).await;
        assert_eq!(answer.status, status, "{body} → {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
        let found = answer.body["rule"].as_str().or(answer.body["code"].as_str()).or(answer.body["type"].as_str()).unwrap_or_default().to_string();
        assert!(found.ends_with(code), "{body}: expected {code}, got {}", answer.body);
    }
    let unknown = post(&t, &format!("{path}/{}/submit", uuid::Uuid::now_v7()), json!({}), &p.alice).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(t.log_end_offsets(&t.config.topics().opportunity).await, before, "nothing was appended");

    // A retried draft (same Idempotency-Key) names the same quote and appends nothing new.
    let (name, value) = auth(&p.alice);
    let first = t.command(&path, quote_body("0"), &[(name, &value), ("Idempotency-Key", "draft-1")]).await;
    let retry = t.command(&path, quote_body("0"), &[(name, &value), ("Idempotency-Key", "draft-1")]).await;
    assert_eq!((first.status, retry.header("idempotent-replayed")), (201, Some("true")), "{}", retry.body);
    assert_eq!(first.body["quote_id"], retry.body["quote_id"]);
    assert_eq!(first.body["events"], retry.body["events"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegate_decides_on_behalf_of_the_approver_while_the_delegation_lasts() {
    let t = TestSystem::start().await;
    let p = team(&t);
    let today = chrono::Utc::now().date_naive();
    let span = json!({"delegate": "bob", "valid_from": today.to_string(), "valid_until": (today + chrono::Days::new(7)).to_string()});
    // Only approvers have approvals to delegate.
    let rep = post(&t, "/v1/delegations", span.clone(), &p.alice).await;
    assert_eq!((rep.status, rep.body["reason_code"].as_str()), (403, Some("only-approvers-delegate")), "{}", rep.body);
    let granted = post(&t, "/v1/delegations", span, &p.mia).await;
    assert_eq!(granted.status, 201, "{}", granted.body);
    let delegation = granted.body["id"].as_str().unwrap().to_string();

    // Carol (team west) asks; bob holds mia's authority, wes is another team's manager.
    let carol = t.token("carol", "default", &["rep"], Some("west"), None);
    let account = t.open_account("Initech").await;
    let body = json!({"account_id": account, "name": "Pilot", "owner_id": "carol", "amount": {"value": "10000.00", "currency": "EUR"}, "close_date": "2099-01-31"});
    let created = post(&t, "/v1/opportunities", body, &carol).await;
    let west_deal = created.body["id"].as_str().unwrap().to_string();
    let east_deal = opportunity(&t).await;
    let east_quote = draft(&t, &east_deal, "15", &p.alice).await;
    let west_quote = draft(&t, &west_deal, "15", &carol).await;
    assert_eq!(post(&t, &format!("/v1/opportunities/{east_deal}/quotes/{east_quote}/submit"), json!({}), &p.alice).await.status, 200);
    assert_eq!(post(&t, &format!("/v1/opportunities/{west_deal}/quotes/{west_quote}/submit"), json!({}), &carol).await.status, 200);

    // Bob sees alice's step on mia's behalf (it is not his own quote), and not carol's.
    let bobs = my_approvals(&t, &p.bob).await;
    let seen: Vec<_> = bobs.iter().map(|a| (a["quote_id"].as_str().unwrap().to_string(), a["on_behalf_of"].as_str().map(String::from))).collect();
    assert_eq!(seen, [(east_quote.clone(), Some("mia".to_string()))], "only mia's team's step, on her behalf");
    let other_team = post(&t, &format!("/v1/opportunities/{west_deal}/quotes/{west_quote}/approve"), json!({}), &p.bob).await;
    assert_eq!((other_team.status, other_team.body["reason_code"].as_str()), (403, Some("not-the-approver")), "{}", other_team.body);
    let approved = post(&t, &format!("/v1/opportunities/{east_deal}/quotes/{east_quote}/approve"), json!({"comment": "for mia"}), &p.bob).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let detail = t.get_as(&format!("{}/v1/opportunities/{east_deal}?consistency_token={}", t.queries(), approved.token()), &p.alice).await;
    let step = &detail.body["data"]["quotes"][0]["history"][0];
    assert_eq!((step["decided_by"].as_str(), step["on_behalf_of"].as_str()), (Some("bob"), Some("mia")), "{step}");

    // Revoked, the delegation gives bob nothing more.
    let second = draft(&t, &east_deal, "12", &p.alice).await;
    assert_eq!(post(&t, &format!("/v1/opportunities/{east_deal}/quotes/{second}/submit"), json!({}), &p.alice).await.status, 200);
    let (name, value) = auth(&p.bob);
    let not_his = t.http.delete(format!("{}/v1/delegations/{delegation}", t.commands())).header(name, &value).send().await.unwrap();
    assert_eq!(not_his.status(), 403);
    let (name, value) = auth(&p.mia);
    let revoked = t.http.delete(format!("{}/v1/delegations/{delegation}", t.commands())).header(name, &value).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert!(my_approvals(&t, &p.bob).await.is_empty());
    let late = post(&t, &format!("/v1/opportunities/{east_deal}/quotes/{second}/approve"), json!({}), &p.bob).await;
    assert_eq!((late.status, late.body["reason_code"].as_str()), (403, Some("not-the-approver")), "{}", late.body);
}

/// The value of the sample of `name` whose labels include each of `labels`.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (found, rest) = series.split_once('{').unwrap_or((series, ""));
        (found == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))).then(|| value.parse().ok())?
    })
}

/// Every service's `/metrics`, for monitoring and autoscalers: request latencies by route,
/// the writer's transactions, the projectors' batches and rebalances, the projections' lag,
/// the approvals waiting and the sales service levels. Only for operators.
#[tokio::test(flavor = "multi_thread")]
async fn every_service_reports_its_figures_to_monitoring() {
    let t = TestSystem::start().await;
    let p = team(&t);
    let id = opportunity(&t).await;
    let quote = draft(&t, &id, "25", &p.alice).await;
    let q = format!("/v1/opportunities/{id}/quotes/{quote}");
    assert_eq!(post(&t, &format!("{q}/submit"), json!({}), &p.alice).await.status, 200);
    assert_eq!(post(&t, &format!("{q}/approve"), json!({}), &p.mia).await.status, 200);
    assert_eq!(my_approvals(&t, &p.fiona).await.len(), 1, "finance's step waits, and the projection has applied it");

    let projector = format!("http://{}", t.system().projector_addr.expect("the projectors run"));
    let services = [("commands", t.commands()), ("queries", t.queries()), ("registry", t.registry()), ("projectors", projector.clone())];
    let mut figures = std::collections::BTreeMap::new();
    for (service, base) in &services {
        let refused = t.get_as(&format!("{base}/metrics"), &p.mia).await;
        assert_eq!((refused.status, refused.body["reason_code"].as_str()), (403, Some("needs-operator")), "{service}: {}", refused.body);
        let answer = t.http.get(format!("{base}/metrics")).bearer_auth(t.operator()).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{service}");
        assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/plain"), "{service}");
        figures.insert(*service, answer.text().await.unwrap());
    }
    let at_least_one = |service: &str, name: &str, labels: &[(&str, &str)]| {
        let value = sample(&figures[service], name, labels);
        assert!(value.is_some_and(|v| v >= 1.0), "{service}: {name} {labels:?} is {value:?} in\n{}", figures[service]);
    };
    let exactly = |service: &str, name: &str, labels: &[(&str, &str)], expected: f64| {
        assert_eq!(sample(&figures[service], name, labels), Some(expected), "{service}: {name} {labels:?} in\n{}", figures[service]);
    };

    let latency = "tidemark_http_request_duration_seconds_count";
    at_least_one("commands", latency, &[("method", "POST"), ("route", "/v1/opportunities/{id}/quotes/{quote_id}/submit"), ("status", "200")]);
    at_least_one("queries", latency, &[("method", "GET"), ("route", "/v1/approvals/mine"), ("status", "200")]);
    at_least_one("registry", latency, &[("method", "POST"), ("status", "200")]);
    at_least_one("commands", "tidemark_writer_transactions_total", &[("outcome", "committed")]);
    at_least_one("commands", "tidemark_writer_commit_seconds_count", &[]);

    at_least_one("projectors", "tidemark_projector_records_total", &[("projection", "opportunities")]);
    at_least_one("projectors", "tidemark_projector_batch_seconds_count", &[("projection", "opportunities")]);
    at_least_one("projectors", "tidemark_projector_rebalances_total", &[("projection", "opportunities"), ("kind", "assigned")]);
    let health = t.get(&format!("{projector}/healthz")).await;
    assert_eq!((health.status, health.body["broker"].as_str()), (200, Some("ok")), "{}", health.body);

    for projection in ["opportunities", "pipeline", "leads", "contacts"] {
        assert!(sample(&figures["queries"], "tidemark_projection_lag_events", &[("projection", projection)]).is_some(), "{projection}'s lag in\n{}", figures["queries"]);
    }
    exactly("queries", "tidemark_approvals_pending", &[("approver", "finance")], 1.0);
    exactly("queries", "tidemark_approvals_pending", &[("approver", "manager")], 0.0);
    exactly("queries", "tidemark_slo_time_to_quote_seconds_count", &[], 1.0);
    exactly("queries", "tidemark_slo_approval_turnaround_seconds_count", &[("approver", "manager")], 1.0);
    exactly("queries", "tidemark_slo_lead_assignment_seconds_count", &[], 0.0);
    // Seconds between the deal's creation and its quote: in the lowest bucket.
    exactly("queries", "tidemark_slo_time_to_quote_seconds_bucket", &[("le", "60")], 1.0);
}
