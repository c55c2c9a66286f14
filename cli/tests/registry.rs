//! The schema registry speaks the Confluent REST API, with its error codes and real Avro
//! compatibility checks.

mod common;

use common::TestSystem;
use serde_json::{json, Value};
use tidemark::Services;

fn record(fields: Value) -> Value {
    json!({"schema": json!({"type": "record", "name": "Thing", "namespace": "test", "fields": fields}).to_string()})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_answers_like_confluents() {
    let t = TestSystem::start_with(common::test_config(), Services { registry: true, ..Services::NONE }).await;
    let base = t.registry();
    let operator = t.operator();
    let post = |path: String, body: Value| {
        let request = t
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&operator)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let put = |path: &str, body: Value| {
        let request = t.http.put(format!("{base}{path}")).bearer_auth(&operator).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let get = |path: &str| {
        let request = t.http.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let subject = "things-test.Thing";
    let v1 = record(json!([{"name": "a", "type": "string"}]));

    let (status, first) = post(format!("/subjects/{subject}/versions"), v1.clone()).await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_i64().unwrap();
    assert_eq!(post(format!("/subjects/{subject}/versions"), v1.clone()).await.1["id"], id, "the same schema keeps its id");
    assert_eq!(post("/subjects/other-test.Thing/versions".into(), v1.clone()).await.1["id"], id, "ids are global");

    let (status, by_id) = get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap()["name"], "Thing");
    assert_eq!(get("/subjects").await.1, json!(["other-test.Thing", subject]));
    assert_eq!(get(&format!("/subjects/{subject}/versions")).await.1, json!([1]));
    let (_, latest) = get(&format!("/subjects/{subject}/versions/latest")).await;
    assert_eq!((latest["subject"].as_str(), latest["version"].as_i64(), latest["id"].as_i64()), (Some(subject), Some(1), Some(id)));

    // A new required field breaks BACKWARD_TRANSITIVE, the default.
    assert_eq!(get("/config").await.1, json!({"compatibilityLevel": "BACKWARD_TRANSITIVE"}));
    let breaking = record(json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int"}]));
    let (status, refused) = post(format!("/subjects/{subject}/versions"), breaking.clone()).await;
    assert_eq!((status, refused["error_code"].as_i64()), (409, Some(409)), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("incompatible"));
    let (_, verdict) = post(format!("/compatibility/subjects/{subject}/versions/latest"), breaking.clone()).await;
    assert_eq!(verdict["is_compatible"], false);
    let compatible = record(json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}]));
    let (_, verdict) = post(format!("/compatibility/subjects/{subject}/versions/1"), compatible.clone()).await;
    assert_eq!(verdict, json!({"is_compatible": true, "messages": []}));
    let (status, second) = post(format!("/subjects/{subject}/versions"), compatible).await;
    assert_eq!(status, 200);
    assert_ne!(second["id"], id);
    assert_eq!(get(&format!("/subjects/{subject}/versions")).await.1, json!([1, 2]));

    // FORWARD accepts what BACKWARD refuses: a new required field.
    assert_eq!(get(&format!("/config/{subject}")).await.1["error_code"], 40408);
    assert_eq!(get(&format!("/config/{subject}?defaultToGlobal=true")).await.1["compatibilityLevel"], "BACKWARD_TRANSITIVE");
    assert_eq!(put(&format!("/config/{subject}"), json!({"compatibility": "FORWARD"})).await, (200, json!({"compatibility": "FORWARD"})));
    let forward_only = record(json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}, {"name": "c", "type": "long"}]));
    assert_eq!(post(format!("/subjects/{subject}/versions"), forward_only).await.0, 200);

    // The registry's usual error bodies.
    assert_eq!(get("/subjects/nope/versions").await, (404, json!({"error_code": 40401, "message": "Subject 'nope' not found."})));
    assert_eq!(get(&format!("/subjects/{subject}/versions/9")).await.1["error_code"], 40402);
    assert_eq!(get("/schemas/ids/9999").await.1["error_code"], 40403);
    assert_eq!(get(&format!("/subjects/{subject}/versions/first")).await.1["error_code"], 42202);
    assert_eq!(put("/config", json!({"compatibility": "SIDEWAYS"})).await.1["error_code"], 42203);
    let (status, invalid) = post(format!("/subjects/{subject}/versions"), json!({"schema": "{\"type\": \"recrod\"}"})).await;
    assert_eq!((status, invalid["error_code"].as_i64()), (422, Some(42201)));

    // Writes need an operator (or the system), not a tenant's admin: every tenant shares the
    // registry. Reads stay open, as in Confluent's registry.
    let anonymous = t.http.post(format!("{base}/subjects/{subject}/versions")).json(&v1).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let rep = t.token("bob", "default", &["rep"], Some("east"), None);
    let as_rep = t.http.put(format!("{base}/config")).bearer_auth(rep).json(&json!({"compatibility": "NONE"})).send().await.unwrap();
    assert_eq!(as_rep.status().as_u16(), 403);
    let as_admin = t.http.put(format!("{base}/config")).bearer_auth(t.admin()).json(&json!({"compatibility": "NONE"})).send().await.unwrap();
    assert_eq!(as_admin.status().as_u16(), 403);
    assert_eq!(get("/config").await.1["compatibilityLevel"], "BACKWARD_TRANSITIVE", "the refused writes changed nothing");
    assert_eq!(t.http.get(format!("{base}/subjects")).send().await.unwrap().status().as_u16(), 200);
}
