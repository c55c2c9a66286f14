//! `/healthz`: whether a service's dependencies answer, each named with its error.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Whether `url` answers 2xx within two seconds.
pub async fn http_ok(url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Whether the database at the other end of `pool` answers a statement.
pub async fn postgres_ok(pool: &sqlx::PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(|e| e.to_string())
}

/// 200 when every check passed, else 503; the body names each dependency's state.
pub fn answer(checks: &[(&str, Result<(), String>)], extra: Value) -> Response {
    let healthy = checks.iter().all(|(_, r)| r.is_ok());
    let mut body = json!({ "status": if healthy { "ok" } else { "unavailable" } });
    for (name, result) in checks {
        body[*name] = match result {
            Ok(()) => json!("ok"),
            Err(e) => json!(e),
        };
    }
    if let Value::Object(extra) = extra {
        body.as_object_mut().expect("an object").extend(extra);
    }
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
