//! Sends a command on to the writer that owns its shard.
//!
//! A writer decides only on the shards it owns (see `writer::ownership`), yet clients need
//! not know the partitioning: a command that reaches another writer is refused by the writer
//! before any decision (421 Misdirected Request, `not-owner`), and this layer sends the same
//! request to the owner and answers with the owner's answer. A forwarded request is not
//! forwarded again. When the shard is moving (it has no owner, or the owner just lost it),
//! the client gets a 503 with `Retry-After`, and its retry (with its Idempotency-Key) finds
//! the new owner. No client ever sees the 421.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tidemark_http::Problem;

use crate::writer::Writer;

/// Marks a forwarded request, naming the writer that forwarded it.
pub const FORWARDED_BY: &str = "tidemark-forwarded-by";

/// The problem type of a command refused for its shard (see `CommandError::NotOwner`).
pub(crate) const NOT_OWNER: &str = "not-owner";

/// Bounds a forwarded command; the owner's own bounds are below it.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(35);

#[derive(Clone)]
pub(crate) struct Forwarding {
    pub(crate) writer: Arc<Writer>,
    pub(crate) client: reqwest::Client,
}

impl Forwarding {
    pub(crate) fn new(writer: Arc<Writer>) -> Forwarding {
        let client = reqwest::Client::builder().timeout(FORWARD_TIMEOUT).build().expect("an HTTP client builds");
        Forwarding { writer, client }
    }
}

pub(crate) async fn to_owner(State(forwarding): State<Forwarding>, request: Request, next: Next) -> Response {
    if [Method::GET, Method::HEAD, Method::OPTIONS].contains(request.method()) {
        return next.run(request).await;
    }
    let forwarded = request.headers().contains_key(FORWARDED_BY);
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, tidemark_http::MAX_BODY).await else {
        return Problem::payload_too_large(format!("at most {} bytes", tidemark_http::MAX_BODY)).into_response();
    };
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let response = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    if response.status() != StatusCode::MISDIRECTED_REQUEST {
        return response;
    }
    let refused = to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let Some(shard) = not_owner(&refused) else {
        return Problem::unavailable("the command's shard is changing owner").into_response();
    };
    let url = match forwarding.writer.owner_url(shard).await {
        Ok(Some(url)) if !forwarded => url,
        Ok(_) => return moving(shard).into_response(),
        Err(e) => return Problem::unavailable(format!("cannot find the owner of shard {shard}: {e}")).into_response(),
    };
    let target = format!("{}{}", url.trim_end_matches('/'), uri.path_and_query().map_or("/", |p| p.as_str()));
    tracing::debug!(shard, %target, "forwarding a command to its shard's owner");
    let mut forwarded = forwarding.client.request(method, &target).body(body);
    for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(name)) {
        forwarded = forwarded.header(name, value);
    }
    match forwarded.header(FORWARDED_BY, forwarding.writer.name()).send().await {
        Ok(owner) => relay(owner).await,
        Err(e) => Problem::unavailable(format!("the owner of this command's shard ({url}) did not answer: {e}")).into_response(),
    }
}

/// The shard has no owner to serve the command at the moment.
fn moving(shard: i32) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shard-moving", "The command's shard is changing owner", format!("shard {shard} is changing owner; try again in a moment"))
        .retry_after(1)
        .with("shard", shard)
}

/// Headers of one connection, not of the request.
const HOP_BY_HOP: [HeaderName; 5] = [header::HOST, header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE];

/// The shard named by a `not-owner` problem.
fn not_owner(body: &Bytes) -> Option<i32> {
    let problem: serde_json::Value = serde_json::from_slice(body).ok()?;
    problem["type"].as_str()?.ends_with(&format!("/{NOT_OWNER}")).then_some(())?;
    problem["shard"].as_i64().map(|s| s as i32)
}

async fn relay(owner: reqwest::Response) -> Response {
    let status = owner.status();
    let headers = owner.headers().clone();
    let body = match owner.bytes().await {
        Ok(body) => body,
        Err(e) => return Problem::unavailable(format!("the owner's answer broke off: {e}")).into_response(),
    };
    let mut response = (status, body).into_response();
    for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(name)) {
        response.headers_mut().insert(name, value.clone());
    }
    response
}

impl Forwarding {
    /// Sends one intent of an offline batch to the writer that owns its shard, as a batch of
    /// one, and takes that writer's answer for it. A batch may span shards; each intent goes
    /// where its opportunity lives.
    pub(crate) async fn intent_to_owner<R: serde::de::DeserializeOwned>(&self, headers: &axum::http::HeaderMap, shard: i32, batch: serde_json::Value) -> Result<R, Problem> {
        let url = match self.writer.owner_url(shard).await {
            Ok(Some(url)) if !headers.contains_key(FORWARDED_BY) => url,
            Ok(_) => return Err(moving(shard)),
            Err(e) => return Err(Problem::unavailable(format!("cannot find the owner of shard {shard}: {e}"))),
        };
        let mut request = self.client.post(format!("{}/v1/sync", url.trim_end_matches('/'))).json(&batch);
        for (name, value) in headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(name) && *name != header::CONTENT_TYPE) {
            request = request.header(name, value);
        }
        let answer = request.header(FORWARDED_BY, self.writer.name()).send().await;
        let answer = answer.map_err(|e| Problem::unavailable(format!("the owner of shard {shard} ({url}) did not answer: {e}")))?;
        if !answer.status().is_success() {
            return Err(Problem::unavailable(format!("the owner of shard {shard} ({url}) answered {}", answer.status())));
        }
        let mut answer: serde_json::Value = answer.json().await.map_err(|e| Problem::unavailable(format!("the owner's answer broke off: {e}")))?;
        serde_json::from_value(answer["results"][0].take()).map_err(|e| Problem::unavailable(format!("the owner's answer is unreadable: {e}")))
    }
}
