//! The views reps live in, through the public APIs against the real broker and PostgreSQL:
//! activities and "my open tasks", the opportunity's timeline, and the forecast.

mod common;

use common::{Answer, TestSystem};
use serde_json::{json, Value};

async fn post(t: &TestSystem, path: &str, body: Value, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    t.command(path, body, &[("Authorization", &auth)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_and_calls_make_the_timeline_and_my_open_tasks() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let bob = t.token("bob", "default", &["rep"], Some("east"), None);
    let fiona = t.token("fiona", "default", &["finance", "approver"], Some("finance"), None);
    let account = t.open_account("Acme").await;
    let id = t.create_opportunity(&account, "alice", "5000.00").await.body["id"].as_str().unwrap().to_string();
    let today = chrono::Utc::now().date_naive();

    let call = post(&t, "/v1/activities", json!({"kind": "call", "about": "opportunity", "about_id": id, "subject": "Discovery call"}), &alice).await;
    assert_eq!(call.status, 201, "{}", call.body);
    let late = json!({"kind": "task", "about": "opportunity", "about_id": id, "subject": "Send the proposal", "due_date": (today - chrono::Days::new(2)).to_string()});
    let overdue = post(&t, "/v1/activities", late, &alice).await;
    assert_eq!(overdue.status, 201, "{}", overdue.body);
    let later = json!({"kind": "task", "about": "account", "about_id": account, "subject": "Check the credit limit", "due_date": (today + chrono::Days::new(5)).to_string(), "assignee": "alice"});
    let upcoming = post(&t, "/v1/activities", later, &alice).await;
    assert_eq!(upcoming.status, 201, "{}", upcoming.body);

    // Bad input and the wrong people are refused with the reason, and append nothing.
    let cases = [
        (json!({"kind": "chat", "about": "opportunity", "about_id": id, "subject": "x"}), &alice, 400, None),
        (json!({"kind": "task", "about": "opportunity", "about_id": id, "subject": "x"}), &alice, 422, Some("due_date")),
        (json!({"kind": "call", "about": "account", "about_id": uuid::Uuid::now_v7(), "subject": "x"}), &alice, 422, Some("about_id")),
        (json!({"kind": "call", "about": "opportunity", "about_id": id, "subject": "x"}), &bob, 403, None),
        (json!({"kind": "call", "about": "opportunity", "about_id": id, "subject": "x"}), &fiona, 403, None),
        // A colleague must be a member of one of the tenant's teams.
        (json!({"kind": "task", "about": "opportunity", "about_id": id, "subject": "x", "due_date": today.to_string(), "assignee": "mallory"}), &alice, 422, Some("assignee")),
    ];
    let before = t.log_end_offsets(&t.config.topics().activity).await;
    for (body, token, status, field) in cases {
        let answer = post(&t, "/v1/activities", body.clone(), token).await;
        assert_eq!(answer.status, status, "{body} → {}", answer.body);
        assert_eq!(answer.body["field"].as_str(), field, "{}", answer.body);
    }
    assert_eq!(t.log_end_offsets(&t.config.topics().activity).await, before);
    let for_bob = json!({"kind": "task", "about": "account", "about_id": account, "subject": "Book the demo", "due_date": today.to_string(), "assignee": "bob"});
    assert_eq!(post(&t, "/v1/activities", for_bob, &alice).await.status, 201, "bob is in team east");

    // The tasks are on different partitions: a strong read sees both.
    let tasks = t.get_as(&format!("{}/v1/tasks/mine?consistency=strong", t.queries()), &alice).await;
    assert_eq!(tasks.status, 200, "{}", tasks.body);
    assert_eq!(tasks.body["staleness"]["projection"], "activities");
    let mine: Vec<_> = tasks.body["data"].as_array().unwrap().iter().map(|a| (a["subject"].as_str().unwrap().to_string(), a["overdue"].as_bool().unwrap())).collect();
    assert_eq!(mine, [("Send the proposal".to_string(), true), ("Check the credit limit".to_string(), false)], "most urgent first");

    // Done: gone from my open tasks; only its assignee or its setter may close it.
    let task = overdue.body["id"].as_str().unwrap();
    let not_bobs = post(&t, &format!("/v1/activities/{task}/complete"), json!({}), &bob).await;
    assert_eq!((not_bobs.status, not_bobs.body["reason_code"].as_str()), (403, Some("not-your-task")), "{}", not_bobs.body);
    let done = post(&t, &format!("/v1/activities/{task}/complete"), json!({}), &alice).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let tasks = t.get_as(&format!("{}/v1/tasks/mine?consistency_token={}", t.queries(), done.token()), &alice).await;
    assert_eq!(tasks.body["data"].as_array().unwrap().len(), 1, "{}", tasks.body);

    // The opportunity's detail carries its timeline, newest first.
    let closed = post(&t, &format!("/v1/opportunities/{id}/close"), json!({"outcome": "lost", "reason": "no budget"}), &alice).await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    let detail = t.get_as(&format!("{}/v1/opportunities/{id}", t.queries()), &alice).await;
    let timeline: Vec<_> = detail.body["data"]["activities"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(timeline.len(), 2, "{}", detail.body);
    assert!(timeline.contains(&"call".to_string()) && timeline.contains(&"task".to_string()));

    // A closed opportunity takes an activity only when the caller says so.
    let note = json!({"kind": "email", "about": "opportunity", "about_id": id, "subject": "Thanks anyway"});
    let refused = post(&t, "/v1/activities", note.clone(), &alice).await;
    assert_eq!((refused.status, refused.body["rule"].as_str()), (422, Some("closed-opportunity-needs-intent")), "{}", refused.body);
    let mut meant = note;
    meant["on_closed_opportunity"] = json!(true);
    assert_eq!(post(&t, "/v1/activities", meant, &alice).await.status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_forecast_weighs_each_category_by_probability() {
    let t = TestSystem::start().await;
    let account = t.open_account("Globex").await;
    let deal = |amount: &str, close: &str| json!({"account_id": account, "name": "Deal", "owner_id": "carol", "amount": {"value": amount, "currency": "EUR"}, "close_date": close});
    let mut ids = Vec::new();
    for (amount, close) in [("1000.00", "2027-01-15"), ("2000.00", "2027-02-10"), ("4000.00", "2027-03-31"), ("8000.00", "2027-04-01"), ("500.00", "2027-01-20")] {
        let created = t.command("/v1/opportunities", deal(amount, close), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["id"].as_str().unwrap().to_string());
    }
    // 2,000 goes to Proposal (best case, 50%); 4,000 to Negotiation (commit, 75%); 500 is lost.
    for (i, stages) in [(1, vec!["Qualification", "Proposal"]), (2, vec!["Qualification", "Proposal", "Negotiation"])] {
        for stage in stages {
            assert_eq!(t.command(&format!("/v1/opportunities/{}/stage", ids[i]), json!({"stage": stage}), &[]).await.status, 200);
        }
    }
    assert_eq!(t.command(&format!("/v1/opportunities/{}/close", ids[4]), json!({"outcome": "lost", "reason": "price"}), &[]).await.status, 200);
    // The deals are on several partitions: a strong read sees every one of them.
    let forecast = t.get(&format!("{}/v1/forecast?period=quarter&owner=carol&consistency=strong", t.queries())).await;
    assert_eq!(forecast.status, 200, "{}", forecast.body);
    let rows = forecast.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "two quarters: {}", forecast.body);
    let q1 = &rows[0];
    assert_eq!((q1["period"].as_str(), q1["currency"].as_str()), (Some("2027-Q1"), Some("EUR")));
    assert_eq!(q1["categories"]["pipeline"], json!({"count": 1, "amount": "1000.00", "weighted": "100.00"}));
    assert_eq!(q1["categories"]["best_case"], json!({"count": 1, "amount": "2000.00", "weighted": "1000.00"}));
    assert_eq!(q1["categories"]["commit"], json!({"count": 1, "amount": "4000.00", "weighted": "3000.00"}));
    assert_eq!(q1["total"], json!({"count": 3, "amount": "7000.00", "weighted": "4100.00"}), "the lost deal counts nowhere");
    assert_eq!(rows[1]["period"], "2027-Q2");
    let months = t.get(&format!("{}/v1/forecast?period=month&owner=carol&consistency=strong", t.queries())).await;
    assert_eq!(months.body["data"][0]["period"], "2027-01");
    let bad = t.get(&format!("{}/v1/forecast?period=week", t.queries())).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("period")), "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_company_fills_every_view() {
    let t = TestSystem::start().await;
    let args = tidemark::demo::DemoArgs { command_url: t.commands(), accounts: 120, concurrency: 4 };
    tidemark::demo::load(args, &t.config).await.expect("the demo loads");
    let as_user = |name: &str| {
        let u = tidemark::users::find(name).unwrap();
        let claims = tidemark::users::claims(name, None, None, None, None, 1).unwrap();
        assert_eq!(claims.roles.len(), u.roles.len());
        tidemark::users::mint(&t.config, &claims).unwrap()
    };
    let read = |path: &str, user: &str| t.get_as(&format!("{}{path}?consistency=strong", t.queries()), &as_user(user));

    // Wes is away: mia decides west's manager steps on his behalf, beside her own.
    let mias = read("/v1/approvals/mine", "mia").await;
    let behalf: Vec<_> = mias.body["data"].as_array().unwrap().iter().map(|a| a["on_behalf_of"].clone()).collect();
    assert!(behalf.contains(&Value::Null) && behalf.contains(&json!("wes")), "{}", mias.body);
    assert!(!read("/v1/approvals/mine", "fiona").await.body["data"].as_array().unwrap().is_empty(), "finance has steps waiting");

    let mut overdue = 0;
    for rep in ["alice", "bob", "carol", "dave", "erin", "gina", "hank"] {
        let tasks = read("/v1/tasks/mine", rep).await;
        overdue += tasks.body["data"].as_array().unwrap().iter().filter(|a| a["overdue"] == true).count();
    }
    assert!(overdue > 0, "some tasks are overdue");

    let forecast = read("/v1/forecast", "fiona").await;
    let categories: std::collections::BTreeSet<String> =
        forecast.body["data"].as_array().unwrap().iter().flat_map(|r| r["categories"].as_object().unwrap().keys().cloned()).collect();
    assert_eq!(categories.into_iter().collect::<Vec<_>>(), ["best_case", "closed", "commit", "pipeline"]);

    // Leads came in, and the rules gave each an owner.
    let mut leads = 0;
    for manager in ["mia", "wes", "nora"] {
        let theirs = read("/v1/leads", manager).await;
        for lead in theirs.body["data"].as_array().unwrap() {
            assert!(lead["owner_id"].is_string(), "{lead}");
            leads += 1;
        }
    }
    assert!(leads > 0, "the demo captures leads");

    let pool = t.pool().await;
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts").fetch_one(&pool).await.unwrap();
    assert_eq!(contacts, 120, "a contact per account");
    let states: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT q->>'status' FROM opportunities, jsonb_array_elements(quotes) q ORDER BY 1").fetch_all(&pool).await.unwrap();
    assert_eq!(states, ["accepted", "approved", "declined", "draft", "pending_approval", "rejected"], "quotes in every state");
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_are_validated_and_their_personal_fields_shown_only_to_sellers() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let andy = t.token("andy", "default", &["analyst"], None, None);
    let account = t.open_account("Acme").await;
    let jane = json!({"name": "Jane Doe", "email": "Jane@ACME.example", "phone": "+49 (30) 1234-567", "title": "CFO", "account_id": account});
    let created = post(&t, "/v1/contacts", jane, &alice).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();

    let cases = [
        (json!({"name": "X", "email": "not-an-email"}), 422, Some("email")),
        (json!({"name": "X", "phone": "030 1234567"}), 422, Some("phone")),
        (json!({"name": " "}), 422, Some("name")),
        (json!({"name": "X", "account_id": uuid::Uuid::now_v7()}), 422, None),
        (json!({"email": "x@y.example"}), 400, None),
    ];
    let before = t.log_end_offsets(&t.config.topics().contact).await;
    for (body, status, field) in cases {
        let answer = post(&t, "/v1/contacts", body.clone(), &alice).await;
        assert_eq!((answer.status, answer.body["field"].as_str()), (status, field), "{body} → {}", answer.body);
    }
    assert_eq!(t.log_end_offsets(&t.config.topics().contact).await, before, "nothing was appended");
    let denied = post(&t, "/v1/contacts", json!({"name": "X"}), &andy).await;
    assert_eq!(denied.status, 403, "analysts do not write: {}", denied.body);

    // Sellers see the personal fields, normalized; analysts see the contact without them.
    let shown = t.get_as(&format!("{}/v1/contacts/{id}", t.queries()), &alice).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let c = &shown.body["data"];
    assert_eq!((c["email"].as_str(), c["phone"].as_str(), c["personal_fields"].as_str()), (Some("Jane@acme.example"), Some("+49301234567"), Some("shown")));
    let hidden = t.get_as(&format!("{}/v1/contacts?account_id={account}&consistency=strong", t.queries()), &andy).await;
    let c = &hidden.body["data"][0];
    assert_eq!((c["name"].clone(), c["email"].clone(), c["title"].as_str(), c["personal_fields"].as_str()), (Value::Null, Value::Null, Some("CFO"), Some("withheld")), "{}", hidden.body);

    // Updated, linked elsewhere, and a call logged on her.
    let update = json!({"name": "Jane Doe-Smith", "email": "jane@acme.example", "phone": "+49 30 1234567", "title": "CFO"});
    let (name, value) = ("Authorization", format!("Bearer {alice}"));
    let updated = t.http.put(format!("{}/v1/contacts/{id}", t.commands())).header(name, &value).json(&update).send().await.unwrap();
    assert_eq!(updated.status(), 200);
    let other = t.open_account("Globex").await;
    let linked = post(&t, &format!("/v1/contacts/{id}/account"), json!({"account_id": other}), &alice).await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    let call = post(&t, "/v1/activities", json!({"kind": "call", "about": "contact", "about_id": id, "subject": "Intro call"}), &alice).await;
    assert_eq!(call.status, 201, "{}", call.body);
    let read = t.get_as(&format!("{}/v1/contacts/{id}?consistency_token={}", t.queries(), linked.token()), &alice).await;
    assert_eq!((read.body["data"]["name"].as_str(), read.body["data"]["account_id"].as_str(), read.body["data"]["version"].as_i64()), (Some("Jane Doe-Smith"), Some(other.as_str()), Some(3)));

    // The replay tools serve analysts: no personal field leaves through them.
    let (code, out, err) = t.replay(&["events", "--aggregate", "contact"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ContactCreated") && !out.contains("Jane") && !out.contains("+49"), "{out}");
    assert!(out.contains("CFO"), "the title is not personal: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_overview_shows_what_each_caller_may_see() {
    let t = TestSystem::start().await;
    let alice = t.token("alice", "default", &["rep"], Some("east"), None);
    let mia = t.token("mia", "default", &["manager", "approver"], Some("east"), None);
    let andy = t.token("andy", "default", &["analyst"], None, None);
    let account = t.open_account("Umbrella Ltd").await;
    t.create_opportunity(&account, "alice", "1000.00").await;
    t.create_opportunity(&account, "bob", "2500.50").await;
    assert_eq!(post(&t, "/v1/contacts", json!({"name": "Ada", "email": "ada@umbrella.example", "account_id": account}), &alice).await.status, 201);
    assert_eq!(post(&t, "/v1/activities", json!({"kind": "meeting", "about": "account", "about_id": account, "subject": "Quarterly review"}), &alice).await.status, 201);

    let url = format!("{}/v1/accounts/{account}?consistency=strong", t.queries());
    let overview = |token: &str| t.get_as(&url, token);
    let hers = overview(&alice).await;
    assert_eq!(hers.status, 200, "{}", hers.body);
    let a = &hers.body["data"];
    assert_eq!((a["name"].as_str(), hers.body["staleness"]["projection"].as_str()), (Some("Umbrella Ltd"), Some("accounts")));
    assert_eq!(a["opportunity_totals"], json!([{"status": "open", "currency": "EUR", "count": 1, "amount": "1000.00"}]), "a rep sees her own deals only");
    assert_eq!((a["contacts"][0]["email"].as_str(), a["activities"][0]["subject"].as_str()), (Some("ada@umbrella.example"), Some("Quarterly review")));
    let team = overview(&mia).await;
    assert_eq!(team.body["data"]["opportunity_totals"][0]["amount"], "3500.50", "the manager sees the team's");
    let analyst = overview(&andy).await;
    assert_eq!(analyst.body["data"]["contacts"][0]["personal_fields"], "withheld");
    let missing = t.get_as(&format!("{}/v1/accounts/{}", t.queries(), uuid::Uuid::now_v7()), &alice).await;
    assert_eq!(missing.status, 404);
}
