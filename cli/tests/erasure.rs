//! Erasure by crypto-shredding, against the real broker and PostgreSQL: personal data is
//! sealed in the log from the start; erasing a person destroys their key, after which no
//! reader (read models, rebuilds, replays) shows their name, email or phone, while everything
//! else replays unchanged; and no plaintext of theirs remains in the log or the database.

mod common;

use common::{raw_log, Answer, TestSystem};
use serde_json::{json, Value};
use tidemark_schemas::Decoded;

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

/// Every form in which the two people's data was given or stored.
const PLAINTEXT: [&str; 8] = [
    "Zelda Quillfeather",
    "zelda.quill@",
    "+442079460312",
    "7946 0312",
    "Yorick Gallowglass",
    "yorick.g@",
    "+49305550199",
    "555 0199",
];

/// Where the database holds any of `PLAINTEXT`: every row of every table, as text (bytea
/// columns as hex, so their bytes are searched too).
async fn plaintext_in_database(t: &TestSystem) -> Vec<String> {
    let pool = t.pool().await;
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'").fetch_all(&pool).await.unwrap();
    let mut found = Vec::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t")).fetch_all(&pool).await.unwrap();
        for row in rows {
            for text in PLAINTEXT {
                let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
                if row.contains(text) || row.contains(&hex) {
                    found.push(format!("{table}: {text}"));
                }
            }
        }
    }
    found
}

async fn in_log(t: &TestSystem, texts: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for topic in t.config.topics().all() {
        for record in raw_log(&t.config.brokers, topic).await {
            for text in texts {
                if record.windows(text.len()).any(|w| w == text.as_bytes()) {
                    found.push(format!("{topic}: {text}"));
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_person_cannot_be_read_anywhere_and_everything_else_replays_unchanged() {
    let t = TestSystem::start().await;
    let root = t.token("root", "default", &["admin"], None, None);
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let read = |path: String| t.get_as(&format!("{}{path}?consistency=strong", t.queries()), &alice);

    // A contact, and a lead that is converted into a second contact: the same person twice.
    let account = t.open_account("Fleet Buyers Ltd").await;
    let zelda = post(&t, "/v1/contacts", json!({"name": "Zelda Quillfeather", "email": "zelda.quill@fleetbuyers.example", "phone": "+44 20 7946 0312", "title": "Head of Fleet", "account_id": account}), &alice).await;
    assert_eq!(zelda.status, 201, "{}", zelda.body);
    let zelda = zelda.body["id"].as_str().unwrap().to_string();
    let refused = post(&t, "/v1/contacts", json!({"name": "Zelda Quillfeather", "email": "zelda.quill@fleetbuyers"}), &alice).await;
    assert_eq!((refused.status, refused.body["field"].as_str()), (422, Some("email")), "{}", refused.body);
    let lead = post(&t, "/v1/leads", json!({"name": "Yorick Gallowglass", "company": "Gallowglass Farms", "email": "yorick.g@farms.example", "phone": "+49 30 555 0199", "territory": "east", "segment": "smb", "source": "web form"}), &alice).await;
    assert_eq!(lead.status, 201, "{}", lead.body);
    let lead = lead.body["id"].as_str().unwrap().to_string();
    assert_eq!(read(format!("/v1/leads/{lead}")).await.body["data"]["owner_id"], "alice");
    assert_eq!(post(&t, &format!("/v1/leads/{lead}/qualify"), json!({}), &alice).await.status, 200);
    let deal = json!({"opportunity_name": "Farm fleet", "amount": {"value": "8000.00", "currency": "EUR"}, "close_date": "2027-03-31"});
    assert_eq!(post(&t, &format!("/v1/leads/{lead}/convert"), deal, &alice).await.status, 200);
    let converted = read(format!("/v1/leads/{lead}")).await.body["data"]["contact_id"].as_str().unwrap().to_string();
    let shown = read(format!("/v1/contacts/{converted}")).await;
    assert_eq!((shown.body["data"]["name"].as_str(), shown.body["data"]["personal_fields"].as_str()), (Some("Yorick Gallowglass"), Some("shown")), "{}", shown.body);

    // Sealed from the start: the log never held the plain values (it does hold the rest).
    assert_eq!(in_log(&t, &PLAINTEXT).await, Vec::<String>::new());
    assert!(!in_log(&t, &["Gallowglass Farms", "Head of Fleet"]).await.is_empty(), "the search sees plain text");
    assert!(plaintext_in_database(&t).await.len() >= 6, "the read models hold the values before the erasure");

    // Only admins erase, a subject they name exactly.
    let erase = |subject: String| json!({"subject": subject, "reason": "the person asked to be forgotten (request 2026-118)"});
    let denied = post(&t, "/v1/erasures", erase(format!("contact/{zelda}")), &alice).await;
    assert_eq!((denied.status, denied.body["reason_code"].as_str()), (403, Some("role-may-not")), "{}", denied.body);
    let bad = post(&t, "/v1/erasures", erase(format!("account/{account}")), &root).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("subject")), "{}", bad.body);
    assert_eq!(post(&t, "/v1/erasures", erase(format!("contact/{}", uuid::Uuid::now_v7())), &root).await.status, 404);
    let no_reason = post(&t, "/v1/erasures", json!({"subject": format!("contact/{zelda}")}), &root).await;
    assert_eq!(no_reason.status, 400, "{}", no_reason.body);

    let erased = post(&t, "/v1/erasures", erase(format!("contact/{zelda}")), &root).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body["erased"], json!([{"subject": format!("contact/{zelda}"), "version": 2, "already": false}]));
    // Erasing the lead erases the contact it became: the same person.
    let erased = post(&t, "/v1/erasures", erase(format!("lead/{lead}")), &root).await;
    let subjects: Vec<_> = erased.body["erased"].as_array().unwrap().iter().map(|e| (e["subject"].as_str().unwrap().to_string(), e["already"].as_bool().unwrap())).collect();
    assert_eq!(subjects, [(format!("lead/{lead}"), false), (format!("contact/{converted}"), false)], "{}", erased.body);
    let again = post(&t, "/v1/erasures", erase(format!("contact/{converted}")), &root).await;
    assert_eq!(again.body["erased"][0]["already"], true, "{}", again.body);

    // The read models show the erasure; the rest of each row stays.
    let check = |view: &Value, title: Option<&str>| {
        let d = &view["data"];
        assert_eq!((d["name"].as_str(), d["personal_fields"].as_str()), (Some("[erased]"), Some("erased")), "{view}");
        assert_eq!((d["email"].as_str(), d["phone"].as_str()), (Some("[erased]"), Some("[erased]")), "{view}");
        assert!(d["erased_at"].is_string(), "{view}");
        if let Some(title) = title {
            assert_eq!(d["title"].as_str(), Some(title), "{view}");
        }
    };
    check(&read(format!("/v1/contacts/{zelda}")).await.body, Some("Head of Fleet"));
    check(&read(format!("/v1/contacts/{converted}")).await.body, None);
    let l = read(format!("/v1/leads/{lead}")).await.body;
    check(&l, None);
    assert_eq!((l["data"]["company"].as_str(), l["data"]["status"].as_str()), (Some("Gallowglass Farms"), Some("converted")), "{l}");

    // An erased person takes no more changes.
    let update = t.http.put(format!("{}/v1/contacts/{zelda}", t.commands())).bearer_auth(&alice).json(&json!({"name": "Zelda Q."})).send().await.unwrap();
    let update: Value = update.json().await.unwrap();
    assert_eq!(update["rule"], "personal-data-erased", "{update}");

    // The erasure is audited: an event with who, why and through which client.
    let log = t.read_log(&t.config.topics().contact).await;
    let audited: Vec<_> = log
        .iter()
        .filter_map(|(_, _, d)| match d {
            Decoded::Event(e) if e.envelope.event_type == "ContactErased" => Some((e.envelope.aggregate_id.to_string(), e.envelope.actor_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    for contact in [&zelda, &converted] {
        assert!(audited.contains(&(contact.clone(), "root".to_string())), "{audited:?}");
    }

    // Rebuilt from the log, the read models still show the erasure and keep everything else.
    for projection in ["contacts", "leads"] {
        let (code, _, err) = t.replay(&["rebuild", projection]);
        assert_eq!(code, 0, "{err}");
    }
    check(&read(format!("/v1/contacts/{zelda}")).await.body, Some("Head of Fleet"));
    check(&read(format!("/v1/leads/{lead}")).await.body, None);

    // Replays show the fields as erased; the state before the erasure too.
    let (code, out, err) = t.replay(&["as-of", "contact", &zelda, "--version", "1"]);
    assert_eq!(code, 0, "{err}");
    let before: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((before["state"]["name"].as_str(), before["state"]["title"].as_str()), (Some("[erased]"), Some("Head of Fleet")), "{before}");
    let (code, out, err) = t.replay(&["lineage", "contact", &zelda]);
    assert_eq!(code, 0, "{err}");
    let lineage: Value = serde_json::from_str(&out).unwrap();
    let last = lineage["chain"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["event_type"].as_str(), last["actor_id"].as_str()), (Some("ContactErased"), Some("root")), "{lineage}");

    let (code, out, err) = t.replay(&["export", "--from", "2020-01-01T00:00:00Z", "--types", "ContactCreated,LeadCaptured"]);
    assert_eq!(code, 0, "{err}");
    let exported: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 3, "{out}");
    assert!(exported.iter().all(|e| e["data"]["name"] == "[erased]"), "{out}");
    assert!(!PLAINTEXT.iter().any(|p| out.contains(p)), "{out}");

    // Nothing of either person remains in plain text, in the log or in the database.
    assert_eq!(in_log(&t, &PLAINTEXT).await, Vec::<String>::new());
    assert_eq!(plaintext_in_database(&t).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_interrupted_before_its_key_was_destroyed_is_finished_at_start() {
    use tidemark_events::contact::ContactEvent;
    use tidemark_events::personal::PersonalDataErased;
    use tidemark_events::DomainEvent;

    let config = common::test_config();
    let t = TestSystem::start_with(config.clone(), tidemark::Services::ALL).await;
    let created = t.command("/v1/contacts", json!({"name": "Wilma Interrupta", "email": "wilma@interrupted.example"}), &[]).await;
    let id: uuid::Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    let key_exists = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT key IS NOT NULL FROM personal_data_keys WHERE subject = $1").bind(format!("contact/{id}")).fetch_one(&pool).await.unwrap()
    };
    assert!(key_exists(t.pool().await).await);

    // The erasure reaches the log and the process dies before destroying the key: append
    // the ContactErased by hand, as the writer would have, and stop.
    let erased = PersonalDataErased { reason: "the person asked".into(), erased_at: chrono::Utc::now() };
    t.append_by_hand(("contact", id), DomainEvent::Contact(ContactEvent::Erased(erased)), ("root", "erase-before-the-crash", "corr-erasure")).await;
    t.stop().await;
    assert!(key_exists(sqlx::PgPool::connect(&config.database_url).await.unwrap()).await, "the crash left the key");

    // The next process finishes the erasure before it serves.
    let t = TestSystem::start_with(config, tidemark::Services::ALL).await;
    assert!(!key_exists(t.pool().await).await, "the key is destroyed");
    let shown = t.get(&format!("{}/v1/contacts/{id}?consistency=strong", t.queries())).await;
    assert_eq!((shown.body["data"]["name"].as_str(), shown.body["data"]["email"].as_str()), (Some("[erased]"), Some("[erased]")), "{}", shown.body);
}
