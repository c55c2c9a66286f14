//! Who may do what, end to end through the HTTP APIs: every role against its own record,
//! a team mate's, another team's and another tenant's. Each cell states the answer, so
//! any change to the policy fails a cell here.

mod common;

use common::{test_config, TestSystem};
use serde_json::json;
use tidemark::Config;

struct People {
    tokens: Vec<(&'static str, String)>,
}

impl People {
    fn of(&self, who: &str) -> &str {
        &self.tokens.iter().find(|(name, _)| *name == who).unwrap().1
    }
}

fn people(t: &TestSystem) -> People {
    let d = "default";
    let tokens = vec![
        ("alice", t.token("alice", d, &["rep"], Some("east"), None)),
        ("bob", t.token("bob", d, &["rep"], Some("east"), None)),
        ("carol", t.token("carol", d, &["rep"], Some("west"), None)),
        ("mia", t.token("mia", d, &["manager"], Some("east"), None)),
        ("april", t.token("april", d, &["approver"], Some("east"), None)),
        ("fiona", t.token("fiona", d, &["finance"], None, None)),
        ("andy", t.token("andy", d, &["analyst"], None, None)),
        ("audrey", t.token("audrey", d, &["auditor"], None, None)),
        ("root", t.token("root", d, &["admin"], None, None)),
        ("lead-router", t.token("lead-router", d, &[], None, Some("automation"))),
        ("intruder", t.token("root", "globex", &["admin"], None, None)),
    ];
    People { tokens }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

async fn create(t: &TestSystem, token: &str, account: &str, owner: &str, amount: &str) -> common::Answer {
    let body = json!({"account_id": account, "name": "Deal", "owner_id": owner, "amount": {"value": amount, "currency": "EUR"}, "close_date": "2027-01-01"});
    let auth = bearer(token);
    t.command("/v1/opportunities", body, &[(auth.0, &auth.1)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_sees_and_changes_exactly_what_the_policy_allows() {
    let t = TestSystem::start().await;
    let p = people(&t);
    let auth = bearer(p.of("alice"));
    let account = t.command("/v1/accounts", json!({"name": "Acme"}), &[(auth.0, &auth.1)]).await.body["id"].as_str().unwrap().to_string();
    let alices = create(&t, p.of("alice"), &account, "alice", "100").await;
    assert_eq!(alices.status, 201, "{}", alices.body);
    let auth = bearer(p.of("carol"));
    let carol_account = t.command("/v1/accounts", json!({"name": "Initech"}), &[(auth.0, &auth.1)]).await.body["id"].as_str().unwrap().to_string();
    let carols = create(&t, p.of("carol"), &carol_account, "carol", "200").await;
    let auth = bearer(p.of("intruder"));
    let globex_account = t.command("/v1/accounts", json!({"name": "Globex"}), &[(auth.0, &auth.1)]).await.body["id"].as_str().unwrap().to_string();
    let globex = create(&t, p.of("intruder"), &globex_account, "alice", "300").await;
    assert_eq!((carols.status, globex.status), (201, 201));
    let (a, c, g) = (alices.body["id"].as_str().unwrap(), carols.body["id"].as_str().unwrap(), globex.body["id"].as_str().unwrap());
    // Every read below waits for all three writes.
    let codec = t.config.tokens();
    let all = [(&alices, "default"), (&carols, "default"), (&globex, "globex")].iter().map(|(x, tenant)| codec.decode(tenant, &x.token()).unwrap()).reduce(|x, y| x.merge(&y)).unwrap();
    let session = codec.encode("default", &all);

    // (who, alice's record [own/team east], carol's [other team], globex's [other tenant]): read, change.
    #[rustfmt::skip]
    let cells: &[(&str, [u16; 3], [u16; 3])] = &[
        //               read: alice carol globex   change: alice carol globex
        ("alice",        [200, 403, 404],           [200, 403, 404]),
        ("bob",          [403, 403, 404],           [403, 403, 404]),
        ("carol",        [403, 200, 404],           [403, 200, 404]),
        ("mia",          [200, 403, 404],           [200, 403, 404]),
        ("april",        [403, 403, 404],           [403, 403, 404]),
        ("fiona",        [200, 200, 404],           [403, 403, 404]),
        ("andy",         [200, 200, 404],           [403, 403, 404]),
        ("audrey",       [403, 403, 404],           [403, 403, 404]),
        ("root",         [200, 200, 404],           [200, 200, 404]),
        ("lead-router",  [403, 403, 404],           [403, 403, 404]),
    ];
    let mut refused = 0;
    for (i, (who, reads, changes)) in cells.iter().enumerate() {
        for (j, id) in [a, c, g].iter().enumerate() {
            let read = t.get_as(&format!("{}/v1/opportunities/{id}?consistency_token={session}", t.queries()), p.of(who)).await;
            assert_eq!(read.status, reads[j], "{who} reads {id}: {}", read.body);
            let auth = bearer(p.of(who));
            let amount = json!({"amount": {"value": format!("{}", 1000 + i * 10 + j), "currency": "EUR"}});
            let change = t.command(&format!("/v1/opportunities/{id}/amount"), amount, &[(auth.0, &auth.1)]).await;
            assert_eq!(change.status, changes[j], "{who} changes {id}: {}", change.body);
            for answer in [&read, &change].into_iter().filter(|x| x.status == 403) {
                assert_eq!(answer.header("content-type"), Some("application/problem+json"));
                assert!(answer.body["reason_code"].is_string() && answer.body["detail"].is_string(), "{}", answer.body);
                assert_eq!(answer.body["policy_version"], tidemark_events::POLICY_VERSION);
                refused += 1;
            }
        }
    }

    // Lists and the pipeline show exactly the rows in scope.
    #[rustfmt::skip]
    let lists: &[(&str, u16, &[&str])] = &[
        ("alice", 200, &["alice"]), ("bob", 200, &[]), ("carol", 200, &["carol"]), ("mia", 200, &["alice"]),
        ("fiona", 200, &["alice", "carol"]), ("andy", 200, &["alice", "carol"]), ("root", 200, &["alice", "carol"]),
        ("april", 403, &[]), ("audrey", 403, &[]), ("lead-router", 403, &[]), ("intruder", 200, &["alice"]),
    ];
    for (who, status, owners) in lists {
        let list = t.get_as(&format!("{}/v1/opportunities?consistency=strong", t.queries()), p.of(who)).await;
        assert_eq!(list.status, *status, "{who} lists: {}", list.body);
        let pipeline = t.get_as(&format!("{}/v1/pipeline?consistency=strong", t.queries()), p.of(who)).await;
        assert_eq!(pipeline.status, *status, "{who} reads the pipeline: {}", pipeline.body);
        if *status == 200 {
            let seen: Vec<&str> = list.body["data"].as_array().unwrap().iter().map(|o| o["owner_id"].as_str().unwrap()).collect();
            assert_eq!(&seen, owners, "{who} sees");
            let cells: Vec<&str> = pipeline.body["data"].as_array().unwrap().iter().map(|c| c["owner_id"].as_str().unwrap()).collect();
            assert_eq!(&cells, owners, "{who}'s pipeline");
        } else {
            refused += 2;
        }
    }

    // Creating: reps for themselves, managers for anyone, the automation within its limit.
    #[rustfmt::skip]
    let creations: &[(&str, &str, &str, u16)] = &[
        ("bob", "bob", "10", 201), ("bob", "alice", "10", 403), ("mia", "bob", "10", 201),
        ("fiona", "fiona", "10", 403), ("andy", "andy", "10", 403), ("audrey", "audrey", "10", 403),
        ("lead-router", "carol", "50000", 201), ("lead-router", "carol", "50000.01", 403), ("root", "dave", "10", 201),
    ];
    for (who, owner, amount, status) in creations {
        let answer = create(&t, p.of(who), &account, owner, amount).await;
        assert_eq!(answer.status, *status, "{who} creates for {owner}, {amount}: {}", answer.body);
        refused += usize::from(*status == 403);
    }
    for (who, status) in [("alice", 201), ("mia", 201), ("lead-router", 201), ("fiona", 403), ("andy", 403), ("audrey", 403), ("april", 403)] {
        let auth = bearer(p.of(who));
        let answer = t.command("/v1/accounts", json!({"name": format!("{who}'s account")}), &[(auth.0, &auth.1)]).await;
        assert_eq!(answer.status, status, "{who} opens an account: {}", answer.body);
        refused += usize::from(status == 403);
    }

    // Every refusal is there for auditors, with its reason and policy version; only they see it.
    for (who, status) in [("alice", 403), ("fiona", 403), ("audrey", 200), ("root", 200)] {
        assert_eq!(t.get_as(&format!("{}/v1/audit/denials?limit=1000", t.queries()), p.of(who)).await.status, status, "{who} lists denials");
    }
    let denials = t.get_as(&format!("{}/v1/audit/denials?limit=1000", t.queries()), p.of("audrey")).await;
    let rows = denials.body["data"].as_array().unwrap();
    // The two refused audit reads above are denials too.
    assert_eq!(rows.len(), refused + 2, "one row per refusal: {}", denials.body);
    assert!(rows.iter().all(|r| r["policy_version"] == tidemark_events::POLICY_VERSION && r["reason_code"].is_string() && r["reason"].is_string()));
    assert!(rows.iter().any(|r| r["actor_id"] == "bob" && r["action"] == "change-opportunity" && r["reason_code"] == "not-your-record"));
    let globex_denials = t.get_as(&format!("{}/v1/audit/denials", t.queries()), p.of("intruder")).await;
    assert_eq!(globex_denials.body["data"], json!([]), "denials stay in their tenant");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_expired_and_missing_tokens_get_401_and_nothing_else() {
    let t = TestSystem::start().await;
    let other_secret = Config { jwt_secret: "someone else's secret".into(), ..t.config.clone() };
    let now = tidemark_http::auth::now_secs();
    let claims = |exp: u64| tidemark_http::auth::Claims {
        sub: "root".into(), tenant: "default".into(), roles: vec!["admin".into()], team: None, manager: None, kind: None, exp, iat: now, client_id: None, azp: None,
    };
    let good = t.admin();
    let mut forged = good.split('.').map(String::from).collect::<Vec<_>>();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(&forged[1]).unwrap()).unwrap().replace("\"default\"", "\"globex\"");
    forged[1] = b64.encode(payload);
    let unsigned = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), b64.encode(serde_json::to_string(&claims(now + 60)).unwrap()));
    let cases = [
        (None, "missing-token"),
        (Some("Basic cm9vdDpyb290".to_string()), "malformed-token"),
        (Some("Bearer not-a-jwt".to_string()), "malformed-token"),
        (Some(format!("Bearer {}", tidemark::users::mint(&t.config, &claims(now - 3600)).unwrap())), "expired-token"),
        (Some(format!("Bearer {}", tidemark::users::mint(&other_secret, &claims(now + 60)).unwrap())), "invalid-signature"),
        (Some(format!("Bearer {}", forged.join("."))), "invalid-signature"),
        (Some(format!("Bearer {unsigned}")), "malformed-token"),
    ];
    for (authorization, code) in cases {
        for url in [format!("{}/v1/pipeline", t.queries()), format!("{}/v1/opportunities", t.queries())] {
            let mut request = t.http.get(&url);
            if let Some(a) = &authorization {
                request = request.header("Authorization", a);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["type"], format!("/problems/{code}"), "{authorization:?}: {body}");
            assert_eq!(body.as_object().unwrap().len(), 4, "type, title, status and detail only: {body}");
        }
        let header = authorization.clone().unwrap_or_default();
        let answer = t.command("/v1/accounts", json!({"name": "x"}), &[("Authorization", &header)]).await;
        assert_eq!(answer.status, 401, "{header}");
    }
    // The `none` case may be judged malformed or unsigned; either way, not accepted.
}

#[tokio::test(flavor = "multi_thread")]
async fn rates_and_bodies_are_limited() {
    let t = TestSystem::start_with(Config { rate_per_principal: 3, ..test_config() }, tidemark::Services::ALL).await;
    let bob = t.token("bob", "default", &["rep"], Some("east"), None);
    let mut answers = Vec::new();
    for _ in 0..12 {
        answers.push(t.get_as(&format!("{}/v1/pipeline", t.queries()), &bob).await);
    }
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!limited.is_empty(), "a burst of 12 exceeds 3/s with bursts of 6");
    assert!(limited.iter().all(|a| a.header("retry-after").is_some() && a.body["type"] == "/problems/rate-limited"));
    let carol = t.token("carol", "default", &["rep"], Some("west"), None);
    assert_eq!(t.get_as(&format!("{}/v1/pipeline", t.queries()), &carol).await.status, 200, "another principal is not held back");

    let metrics = t.get_as(&format!("{}/metrics", t.queries()), &carol).await;
    assert_eq!(metrics.status, 403, "metrics are for operators");
    let root = t.token("root", "default", &["admin"], None, None);
    assert_eq!(t.get_as(&format!("{}/metrics", t.queries()), &root).await.status, 403, "not for a tenant's admin either");

    let huge = json!({"name": "x".repeat(100 * 1024)});
    let answer = t.command("/v1/accounts", huge, &[]).await;
    assert_eq!((answer.status, answer.body["type"].as_str()), (413, Some("/problems/payload-too-large")), "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_an_identity_provider_are_checked_against_its_published_keys() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let key = EncodingKey::from_ec_pem(&std::fs::read(format!("{fixtures}/es256-test-key.pem")).unwrap()).unwrap();
    let now = tidemark_http::auth::now_secs();
    let sign = |sub: &str, roles: &[&str], kind: Option<&str>| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("tidemark-test-es256".into());
        let claims = tidemark_http::auth::Claims {
            sub: sub.into(), tenant: "default".into(), roles: roles.iter().map(|r| r.to_string()).collect(),
            team: Some("east".into()), manager: None, kind: kind.map(String::from), exp: now + 600, iat: now, client_id: None, azp: None,
        };
        encode(&header, &claims, &key).unwrap()
    };
    let config = Config {
        jwks: Some(format!("{fixtures}/jwks.json")),
        // With published keys Tidemark cannot mint its own token: the provider issues one.
        service_token: Some(sign("tidemark-writer", &[], Some("system"))),
        ..test_config()
    };
    let t = TestSystem::start_with(config, tidemark::Services::ALL).await;
    let alice = sign("alice", &["rep"], None);
    let auth = bearer(&alice);
    let opened = t.command("/v1/accounts", json!({"name": "Provider Inc"}), &[(auth.0, &auth.1)]).await;
    assert_eq!(opened.status, 201, "an ES256 token with a known kid: {}", opened.body);
    let read = t.get_as(&format!("{}/v1/opportunities", t.queries()), &alice).await;
    assert_eq!(read.status, 200, "{}", read.body);

    // The shared-secret token of the embedded default means nothing here.
    let hs256 = tidemark::users::mint(&Config { jwks: None, ..t.config.clone() }, &tidemark::users::claims("root", None, None, None, None, 1).unwrap()).unwrap();
    let refused = t.get_as(&format!("{}/v1/opportunities", t.queries()), &hs256).await;
    assert_eq!((refused.status, refused.body["type"].as_str()), (401, Some("/problems/invalid-signature")));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_as_an_identity_provider_issues_them_are_accepted_and_checked() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let key = EncodingKey::from_rsa_pem(&std::fs::read(format!("{fixtures}/rs256-test-key.pem")).unwrap()).unwrap();
    let now = tidemark_http::auth::now_secs();
    let issuer = "https://idp.example/realms/crm";
    // What Keycloak puts in an access token, give or take: audience, issuer, authorized
    // party, not-before, and claims Tidemark does not read.
    let sign = |sub: &str, kind: Option<&str>, changes: serde_json::Value, crit: bool| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("tidemark-test-rs256".into());
        if crit {
            header.crit = Some(vec!["http://idp.example/policy".into()]);
        }
        let mut claims = json!({"sub": sub, "tenant": "default", "roles": ["rep"], "team": "east", "exp": now + 600, "iat": now, "nbf": now - 5,
            "aud": "tidemark", "iss": issuer, "azp": "crm-web", "typ": "Bearer", "scope": "openid profile", "session_state": "7c1d"});
        if let Some(kind) = kind {
            claims["kind"] = json!(kind);
        }
        claims.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        encode(&header, &claims, &key).unwrap()
    };
    let config = Config {
        jwks: Some(format!("{fixtures}/jwks.json")),
        jwt_audience: Some("tidemark".into()),
        jwt_issuer: Some(issuer.into()),
        service_token: Some(sign("tidemark-writer", Some("system"), json!({"roles": []}), false)),
        ..test_config()
    };
    let t = TestSystem::start_with(config, tidemark::Services::ALL).await;
    let alice = sign("alice", None, json!({}), false);
    let auth = bearer(&alice);
    let opened = t.command("/v1/accounts", json!({"name": "Provider Inc"}), &[(auth.0, &auth.1)]).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let log = t.read_log(&t.config.topics().account).await;
    let client = log.iter().find_map(|(_, _, d)| match d { tidemark_schemas::Decoded::Event(e) => Some(e.envelope.client_id.clone()), _ => None });
    assert_eq!(client.as_deref(), Some("crm-web"), "the client is the token's authorized party");

    let refused = [
        (sign("alice", None, json!({"aud": "another-app"}), false), "/problems/invalid-claims"),
        (sign("alice", None, json!({"iss": "https://evil.example"}), false), "/problems/invalid-claims"),
        (sign("alice", None, json!({"nbf": now + 600}), false), "/problems/token-not-yet-valid"),
        (sign("alice", None, json!({}), true), "/problems/malformed-token"),
    ];
    for (token, problem) in refused {
        let answer = t.get_as(&format!("{}/v1/opportunities", t.queries()), &token).await;
        assert_eq!((answer.status, answer.body["type"].as_str()), (401, Some(problem)), "{}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_lets_a_colleague_read_but_not_change_until_it_is_withdrawn() {
    let t = TestSystem::start().await;
    let p = people(&t);
    let auth = |who: &str| bearer(p.of(who));
    let (h, v) = auth("alice");
    let account = t.command("/v1/accounts", json!({"name": "Acme"}), &[(h, &v)]).await.body["id"].as_str().unwrap().to_string();
    let id = create(&t, p.of("alice"), &account, "alice", "100").await.body["id"].as_str().unwrap().to_string();
    let read = |who: &'static str| t.get_as(&format!("{}/v1/opportunities/{id}", t.queries()), p.of(who));

    assert_eq!(read("carol").await.status, 403);
    let (h, v) = auth("bob");
    let by_bob = t.command(&format!("/v1/opportunities/{id}/shares"), json!({"user_id": "bob"}), &[(h, &v)]).await;
    assert_eq!((by_bob.status, by_bob.body["reason_code"].as_str()), (403, Some("not-your-record")), "only who may change it may share it");
    let (h, v) = auth("alice");
    let shared = t.command(&format!("/v1/opportunities/{id}/shares"), json!({"user_id": "carol"}), &[(h, &v)]).await;
    assert_eq!(shared.status, 200, "{}", shared.body);

    let as_carol = read("carol").await;
    assert_eq!(as_carol.status, 200, "{}", as_carol.body);
    assert_eq!(as_carol.body["data"]["shared_with"], json!(["carol"]));
    let list = t.get_as(&format!("{}/v1/opportunities?consistency=strong", t.queries()), p.of("carol")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1, "a shared opportunity is in the list: {}", list.body);
    let (h, v) = auth("carol");
    let change = t.command(&format!("/v1/opportunities/{id}/stage"), json!({"stage": "Proposal"}), &[(h, &v)]).await;
    assert_eq!(change.status, 403, "a share is for reading: {}", change.body);

    let (h, v) = auth("alice");
    let url = format!("/v1/opportunities/{id}/shares/carol");
    let request = t.http.delete(format!("{}{url}", t.commands())).header(h, v).send().await.unwrap();
    assert_eq!(request.status().as_u16(), 200);
    assert_eq!(read("carol").await.status, 403, "the share is withdrawn");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_its_senders_alone() {
    let t = TestSystem::start().await;
    let p = people(&t);
    let (alice, carol, mia) = (bearer(p.of("alice")), bearer(p.of("carol")), bearer(p.of("mia")));
    let account = t.command("/v1/accounts", json!({"name": "Acme"}), &[(alice.0, &alice.1)]).await.body["id"].as_str().unwrap().to_string();
    let deal = create(&t, p.of("alice"), &account, "alice", "100").await.body["id"].as_str().unwrap().to_string();
    let stage = format!("/v1/opportunities/{deal}/stage");

    let moved = t.command(&stage, json!({"stage": "Qualification"}), &[(alice.0, &alice.1), ("Idempotency-Key", "k1")]).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    // Carol, of another team, sends the same key to the same route: her own decision (a
    // denial, recorded), not alice's answer.
    let carols = t.command(&stage, json!({"stage": "Qualification"}), &[(carol.0, &carol.1), ("Idempotency-Key", "k1")]).await;
    assert_eq!(carols.status, 403, "{}", carols.body);
    assert_eq!(carols.header("idempotent-replayed"), None);
    assert!(carols.body.get("consistency_token").is_none(), "{}", carols.body);
    // Mia, her manager, may change it: her equal key is a command of her own.
    let mias = t.command(&stage, json!({"stage": "Proposal"}), &[(mia.0, &mia.1), ("Idempotency-Key", "k1")]).await;
    assert_eq!((mias.status, mias.header("idempotent-replayed"), mias.body["version"].as_i64()), (200, None, Some(3)), "{}", mias.body);
    // Alice's retry still gets her own first answer.
    let again = t.command(&stage, json!({"stage": "Qualification"}), &[(alice.0, &alice.1), ("Idempotency-Key", "k1")]).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")));
    let without_token = |body: &serde_json::Value| { let mut b = body.clone(); b.as_object_mut().unwrap().remove("consistency_token"); b };
    assert_eq!(without_token(&again.body), without_token(&moved.body));
    let codec = t.config.tokens();
    assert_eq!(codec.decode("default", &again.token()).unwrap(), codec.decode("default", &moved.token()).unwrap(), "the same positions, sealed afresh");

    // Nobody can take a key first: carol's account under "fleet" does not refuse alice's.
    let squatted = t.command("/v1/accounts", json!({"name": "Carol's"}), &[(carol.0, &carol.1), ("Idempotency-Key", "fleet")]).await;
    assert_eq!(squatted.status, 201, "{}", squatted.body);
    let own = t.command("/v1/accounts", json!({"name": "Alice's"}), &[(alice.0, &alice.1), ("Idempotency-Key", "fleet")]).await;
    assert_eq!((own.status, own.header("idempotent-replayed")), (201, None), "{}", own.body);
    assert_ne!(own.body["id"], squatted.body["id"]);
    let retried = t.command("/v1/accounts", json!({"name": "Alice's"}), &[(alice.0, &alice.1), ("Idempotency-Key", "fleet")]).await;
    assert_eq!((retried.status, retried.header("idempotent-replayed"), &retried.body["id"]), (201, Some("true"), &own.body["id"]));

    // Carol's denial is on record; alice's replays are not denials.
    let pool = t.pool().await;
    let denials: Vec<String> = sqlx::query_scalar("SELECT actor_id FROM denials").fetch_all(&pool).await.unwrap();
    assert_eq!(denials, ["carol"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_is_authorized_again_before_it_is_answered() {
    let t = TestSystem::start().await;
    let p = people(&t);
    let (bob, mia) = (bearer(p.of("bob")), bearer(p.of("mia")));
    let account = t.command("/v1/accounts", json!({"name": "Acme"}), &[(bob.0, &bob.1)]).await.body["id"].as_str().unwrap().to_string();
    let deal = create(&t, p.of("bob"), &account, "bob", "100").await.body["id"].as_str().unwrap().to_string();
    let stage = format!("/v1/opportunities/{deal}/stage");
    let moved = t.command(&stage, json!({"stage": "Qualification"}), &[(mia.0, &mia.1), ("Idempotency-Key", "q")]).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    // Mia now manages team west: bob's deals are no longer hers to change, retries included.
    let moved_on = bearer(&t.token("mia", "default", &["manager"], Some("west"), None));
    let retry = t.command(&stage, json!({"stage": "Qualification"}), &[(moved_on.0, &moved_on.1), ("Idempotency-Key", "q")]).await;
    assert_eq!((retry.status, retry.header("idempotent-replayed")), (403, None), "{}", retry.body);
    let again = t.command(&stage, json!({"stage": "Qualification"}), &[(mia.0, &mia.1), ("Idempotency-Key", "q")]).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")), "{}", again.body);
}
