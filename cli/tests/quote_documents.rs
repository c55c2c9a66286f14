//! Quote documents, against the real broker and PostgreSQL: the consumer renders the PDF
//! of a revision when it is approved and keeps it once; its text (read with `pdftotext`)
//! shows the lines, exact totals, discount, validity, approval history and provenance; an
//! erasure deletes the documents that name the person, and documents rendered after it do
//! not name them.

mod common;

use common::{Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

/// A fetched document: the status, the headers and, for a PDF, its text.
struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// The document of `quote` (`query`: e.g. `?revision=2`), as `token` sees it.
async fn document(t: &TestSystem, quote: &str, query: &str, token: &str) -> Fetched {
    let response = t.http.get(format!("{}/v1/quotes/{quote}/document{query}", t.queries())).bearer_auth(token).send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let bytes = response.bytes().await.unwrap();
    if !bytes.starts_with(b"%PDF-") {
        return Fetched { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() };
    }
    let file = std::env::temp_dir().join(format!("tidemark-quote-{}.pdf", uuid::Uuid::new_v4()));
    std::fs::write(&file, &bytes).unwrap();
    let out = std::process::Command::new("pdftotext").args(["-layout", "-enc", "UTF-8"]).arg(&file).arg("-").output();
    std::fs::remove_file(&file).ok();
    let out = out.expect("pdftotext runs (infra/test installs poppler-utils)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    Fetched { status, headers, text: String::from_utf8(out.stdout).unwrap() }
}

/// The event ids of `id`'s events of these types, from the log.
async fn event_ids(t: &TestSystem, id: &str, types: &[&str]) -> Vec<String> {
    let log = t.read_log(&t.config.topics().opportunity).await;
    log.iter()
        .filter_map(|(_, _, d)| match d {
            Decoded::Event(r) if r.envelope.aggregate_id.to_string() == id && types.contains(&r.envelope.event_type.as_str()) => Some(r.envelope.event_id.to_string()),
            _ => None,
        })
        .collect()
}

/// Waits until the contacts read model holds what `created` wrote: a document names the
/// people that read model holds when it is rendered.
async fn await_contact(t: &TestSystem, created: &Answer, token: &str) {
    let id = created.body["id"].as_str().unwrap();
    let read = t.get_as(&format!("{}/v1/contacts/{id}?consistency_token={}", t.queries(), created.token()), token).await;
    assert_eq!(read.status, 200, "{}", read.body);
}

async fn kept(t: &TestSystem, quote: &str) -> Vec<(i32, String, chrono::DateTime<chrono::Utc>)> {
    let pool = t.pool().await;
    sqlx::query_as("SELECT revision, rendered_for, rendered_at FROM quote_documents WHERE quote_id = $1::uuid ORDER BY revision")
        .bind(quote)
        .fetch_all(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_revision_has_one_document_with_its_figures_history_and_provenance() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let bob = t.token("bob", "default", &["rep"], Some("east"), None);
    let mia = t.token("mia", "default", &["manager", "approver"], Some("east"), None);
    let fiona = t.token("fiona", "default", &["finance", "approver"], Some("finance"), None);
    let ana = t.token("ana", "default", &["analyst"], None, None);
    let other = t.token("olga", "other", &["admin"], None, None);

    let account = t.open_account("Northwind Freight").await;
    let contact = post(&t, "/v1/contacts", json!({"name": "Zoë Quartermaine", "title": "Head of Fleet", "account_id": account}), &alice).await;
    assert_eq!(contact.status, 201, "{}", contact.body);
    await_contact(&t, &contact, &alice).await;
    let opp = t.create_opportunity(&account, "alice", "10000.00").await.body["id"].as_str().unwrap().to_string();
    let lines = json!([
        {"product": "Electric truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "25"},
        {"product": "Service plan (3 years)", "quantity": "3", "unit_price": "333.33", "discount_percent": "0"},
    ]);
    let drafted = post(&t, &format!("/v1/opportunities/{opp}/quotes"), json!({"currency": "EUR", "valid_until": "2099-06-30", "lines": lines}), &alice).await;
    assert_eq!(drafted.status, 201, "{}", drafted.body);
    let quote = drafted.body["quote_id"].as_str().unwrap().to_string();
    let q = format!("/v1/opportunities/{opp}/quotes/{quote}");

    assert_eq!(post(&t, &format!("{q}/submit"), json!({}), &alice).await.status, 200);
    let pending = document(&t, &quote, "", &alice).await;
    assert_eq!(pending.status, 404, "no document before the approval: {}", pending.text);
    assert_eq!(post(&t, &format!("{q}/approve"), json!({"comment": "fine for a fleet deal"}), &mia).await.status, 200);
    let approved = post(&t, &format!("{q}/approve"), json!({}), &fiona).await;
    assert_eq!(approved.status, 200, "{}", approved.body);

    let doc = document(&t, &quote, &format!("?consistency_token={}", approved.token()), &alice).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert_eq!(doc.header("content-type"), "application/pdf");
    assert_eq!((doc.header("document-revision"), doc.header("document-rendered-for")), ("1", "approval"), "the consumer rendered it at the approval");
    let text = &doc.text;
    // 4 × 2500.00 = 10000.00 less 25 %, and 3 × 333.33 = 999.99: 10999.99 list, 2500.00 off, 8499.99 net.
    for shown in [
        format!("Quote {quote} - revision 1"),
        "Fleet renewal".into(),
        "Northwind Freight".into(),
        "Zoë Quartermaine (Head of Fleet)".into(),
        "Electric truck".into(),
        "Service plan (3 years)".into(),
        "333.33".into(),
        "7500.00".into(),
        "10999.99 EUR".into(),
        "2500.00 EUR (22.73% of the list price)".into(),
        "8499.99 EUR".into(),
        "2099-06-30".into(),
        "Submitted by alice".into(),
        "approved by mia".into(),
        "\"fine for a fleet deal\"".into(),
        "approved by fiona".into(),
        format!("rendered by Tidemark {}", doc.header("document-code-version")),
    ] {
        assert!(text.contains(&shown), "the document shows {shown:?}:\n{text}");
    }
    assert!(doc.header("document-code-version").starts_with(env!("CARGO_PKG_VERSION")), "{}", doc.header("document-code-version"));
    let made_from = event_ids(&t, &opp, &["OpportunityCreated", "QuoteDrafted", "QuoteSubmitted", "QuoteApprovalDecided"]).await;
    assert_eq!(made_from.len(), 5);
    for id in &made_from {
        assert!(text.contains(id.as_str()), "the provenance names event {id}:\n{text}");
    }

    // Who may not see the deal, or the customer's people, gets no document; another tenant
    // learns nothing of the quote.
    let refused = document(&t, &quote, "", &bob).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let refused = document(&t, &quote, "", &ana).await;
    assert!(refused.status == 403 && refused.text.contains("personal-data-withheld"), "{} {}", refused.status, refused.text);
    assert_eq!(document(&t, &quote, "", &other).await.status, 404);
    let bad = document(&t, &quote, "?revision=one", &alice).await;
    assert!(bad.status == 422 && bad.headers["content-type"] == "application/problem+json", "{} {}", bad.status, bad.text);

    // A revision after the approval: the approved one keeps its document; the new one has
    // none until it is approved itself.
    let revised = post(&t, &format!("{q}/revisions"), json!({"valid_until": "2099-06-30", "lines": [lines[0]]}), &alice).await;
    assert_eq!(revised.status, 200, "{}", revised.body);
    let latest = document(&t, &quote, &format!("?consistency_token={}", revised.token()), &alice).await;
    assert_eq!((latest.status, latest.header("document-revision")), (200, "1"));
    let second = document(&t, &quote, "?revision=2", &alice).await;
    assert!(second.status == 404 && second.text.contains("approved revisions: 1"), "{} {}", second.status, second.text);

    // Applying the events again renders nothing twice: a rebuild of the consumer's read
    // model finds the document kept.
    let before = kept(&t, &quote).await;
    assert_eq!(before.len(), 1);
    let (code, _, err) = t.replay(&["rebuild", "quote_documents"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(kept(&t, &quote).await, before, "one document per revision, rendered once");
    let again = document(&t, &quote, "", &alice).await;
    assert_eq!((again.status, again.header("document-rendered-for")), (200, "approval"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_person_is_in_no_document_rendered_after_the_erasure() {
    let t = TestSystem::start().await;
    let root = t.token("root", "default", &["admin"], None, None);
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);

    let account = t.open_account("Fleet Buyers Ltd").await;
    let mut people = Vec::new();
    for (name, title) in [("Yorick Gallowglass", "CFO"), ("Wanda Łęcka", "Buyer")] {
        let created = post(&t, "/v1/contacts", json!({"name": name, "title": title, "account_id": account}), &alice).await;
        assert_eq!(created.status, 201, "{}", created.body);
        await_contact(&t, &created, &alice).await;
        people.push(created.body["id"].as_str().unwrap().to_string());
    }
    let opp = t.create_opportunity(&account, "alice", "900.00").await.body["id"].as_str().unwrap().to_string();
    // A small discount needs no approver: the submission approves it.
    let lines = json!([{"product": "Tyres", "quantity": "9", "unit_price": "100.00", "discount_percent": "0"}]);
    let drafted = post(&t, &format!("/v1/opportunities/{opp}/quotes"), json!({"currency": "EUR", "valid_until": "2099-06-30", "lines": lines}), &alice).await;
    let quote = drafted.body["quote_id"].as_str().unwrap().to_string();
    let submitted = post(&t, &format!("/v1/opportunities/{opp}/quotes/{quote}/submit"), json!({}), &alice).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);

    let before = document(&t, &quote, &format!("?consistency_token={}", submitted.token()), &alice).await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert!(before.text.contains("Wanda Łęcka (Buyer), Yorick Gallowglass (CFO)"), "{}", before.text);
    assert!(before.text.contains("No approval was needed"), "{}", before.text);

    let erased = post(&t, "/v1/erasures", json!({"subject": format!("contact/{}", people[0]), "reason": "asked to be forgotten"}), &root).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert!(kept(&t, &quote).await.is_empty(), "the erasure deleted the document that named the person");

    let after = document(&t, &quote, "", &alice).await;
    assert_eq!((after.status, after.header("document-rendered-for")), (200, "request"), "{}", after.text);
    assert!(!after.text.contains("Yorick") && !after.text.contains("Gallowglass"), "{}", after.text);
    assert!(after.text.contains("Wanda Łęcka (Buyer)") && after.text.contains("900.00 EUR"), "{}", after.text);
    assert_eq!(kept(&t, &quote).await.len(), 1);
    t.stop().await;
}
