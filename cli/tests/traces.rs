//! A command's trace crosses the log: the caller's `traceparent` is the parent of the
//! command's HTTP span, the writer's transaction links to the command, and the projectors'
//! batches that apply its record link back to the command's span, whose context only the
//! record's headers carried across the broker. A read that waits for the command (its
//! consistency token) links on to those batches.

mod common;

use std::time::{Duration, Instant};

use common::{test_config, Serve};
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";
/// The trace of a read that comes after the command.
const READER: &str = "0af7651916cd43dd8448eb211c80319c";

/// The spans the process has written so far, one JSON object per line.
fn spans(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(|line| serde_json::from_str(line).expect("each line is a span")).collect()
}

fn links_into(span: &Value, trace: &str) -> Vec<String> {
    span["links"].as_array().into_iter().flatten().filter(|l| l["trace_id"] == trace).map(|l| l["span_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commands_trace_follows_it_through_the_log_into_the_projections() {
    let serve = Serve::new(test_config()).await;
    let file = std::env::temp_dir().join(format!("tidemark-traces-{}.jsonl", uuid::Uuid::new_v4()));
    let _process = serve.spawn_with(&[("TIDEMARK_TRACES_FILE", file.to_str().unwrap())]);
    serve.ready().await;

    let response = serve
        .http
        .post(format!("http://{}/v1/accounts", serve.config.command_addr))
        .bearer_auth(&serve.token)
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .json(&json!({"name": "Traced Ltd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.unwrap();
    let read = serve
        .http
        .get(format!("http://{}/v1/accounts/{}?consistency_token={}", serve.config.query_addr, answer["id"].as_str().unwrap(), answer["consistency_token"].as_str().unwrap()))
        .bearer_auth(&serve.token)
        .header("traceparent", format!("00-{READER}-{CALLER}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (spans, applied) = loop {
        let spans = spans(&file);
        let applied: Vec<&Value> = spans.iter().filter(|s| s["name"] == "apply" && !links_into(s, TRACE).is_empty()).collect();
        let answered = spans.iter().any(|s| s["name"] == "http" && s["trace_id"] == TRACE);
        let read = spans.iter().any(|s| s["name"] == "read" && s["trace_id"] == READER);
        if answered && read && applied.iter().any(|s| s["attributes"]["projection"] == "accounts") {
            let applied = applied.into_iter().cloned().collect::<Vec<_>>();
            break (spans, applied);
        }
        assert!(Instant::now() < deadline, "no accounts batch linked to the command's trace; spans written:\n{}", spans.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let in_trace: Vec<&Value> = spans.iter().filter(|s| s["trace_id"] == TRACE).collect();
    let http = in_trace.iter().find(|s| s["name"] == "http").expect("the request's span is in the caller's trace");
    assert_eq!(http["parent_span_id"], CALLER, "the request's span is the caller's child: {http}");
    assert_eq!(http["attributes"]["path"], "/v1/accounts");
    let command_spans: Vec<&str> = in_trace.iter().map(|s| s["span_id"].as_str().unwrap()).collect();
    assert!(
        spans.iter().any(|s| s["name"] == "commit" && links_into(s, TRACE).iter().any(|l| command_spans.contains(&l.as_str()))),
        "the transaction that carried the command links to it"
    );
    for batch in &applied {
        for linked in links_into(batch, TRACE) {
            assert!(command_spans.contains(&linked.as_str()), "a batch links to a span of the command's trace ({linked}): {batch}");
        }
    }
    // The read that waited for the command links to the accounts batch that applied it.
    let read = spans.iter().find(|s| s["name"] == "read" && s["trace_id"] == READER).expect("the read's span");
    let accounts: Vec<(&str, &str)> = applied.iter().filter(|s| s["attributes"]["projection"] == "accounts").map(|s| (s["trace_id"].as_str().unwrap(), s["span_id"].as_str().unwrap())).collect();
    assert!(
        accounts.iter().any(|(trace, span)| links_into(read, trace).iter().any(|l| l == span)),
        "the read links to the batch that applied the command: {read}"
    );
    let _ = std::fs::remove_file(&file);
}
