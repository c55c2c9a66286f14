//! The projector process's HTTP port: `/healthz` for orchestrators and `/metrics` for
//! monitoring. How far behind each projection is, the query service reports (from the
//! standings the workers write); here is what only the workers know: batches, rebalances
//! and restarts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;
use tidemark_http::telemetry::Scrape;
use tidemark_http::{Gate, ServiceMetrics};
use tidemark_log::ClosesInBackground;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(info(title = "Tidemark projector", description = "Health and figures of the projector workers."))]
struct ApiDoc;

#[derive(Clone)]
struct Dependencies {
    pool: PgPool,
    broker: Arc<ClosesInBackground<BaseConsumer>>,
}

/// The projector's routes. `brokers`: where its workers read the log.
pub fn router(pool: PgPool, brokers: &str, metrics: ServiceMetrics, gate: Arc<Gate>) -> Result<axum::Router, rdkafka::error::KafkaError> {
    let broker: BaseConsumer = tidemark_log::client(brokers, "tidemark-projector-health").create()?;
    let dependencies = Dependencies { pool: pool.clone(), broker: Arc::new(ClosesInBackground::new(broker)) };
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .merge(tidemark_http::telemetry::routes(Scrape { pool, metrics: metrics.clone() }))
        .with_state(dependencies)
        .split_for_parts();
    Ok(tidemark_http::finish(router, api, gate, metrics))
}

/// Whether the workers' dependencies (PostgreSQL, broker) answer.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(dependencies): State<Dependencies>) -> Response {
    let postgres = tidemark_http::health::postgres_ok(&dependencies.pool).await;
    let client = dependencies.broker.clone();
    let broker = tokio::task::spawn_blocking(move || client.fetch_metadata(None, Duration::from_secs(5)).map(|_| ()).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    tidemark_http::health::answer(&[("postgres", postgres), ("broker", broker)], serde_json::json!({}))
}
