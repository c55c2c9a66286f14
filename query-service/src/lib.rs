//! The query API over the read models. Every answer says what it is based on and whether
//! it meets the bound the caller asked for; see CONSISTENCY.md for the contract.
//!
//! A resource's route, SQL and response types live in `routes/`; the read path they share
//! (the bound, the snapshot, the cache and the staleness note) in `read.rs`; who may read
//! what in `access.rs`.

mod access;
pub mod bound;
mod cache;
pub mod freshness;
mod paging;
mod query;
mod read;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tidemark_events::Topics;
use tidemark_http::{Gate, ServiceMetrics, TokenCodec};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use cache::AnswerCache;
use freshness::Freshness;

#[derive(Clone)]
struct AppState {
    /// The primary: what the query service records (denials, reads of personal data).
    pool: PgPool,
    /// The read models: a replica's, or the primary's. The projections' standings are read
    /// here too, so a replica's delay shows in every answer's staleness.
    reads: PgPool,
    metrics: ServiceMetrics,
    freshness: Freshness,
    topics: Topics,
    tokens: TokenCodec,
    cache: Arc<AnswerCache>,
    /// A projection that is behind and has made no progress for this long is unhealthy.
    stall_after: Duration,
    /// The log, for lineage.
    log: routes::lineage::Log,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Tidemark query API",
    description = "Reads of the read models. Every answer has a `staleness` note (the offsets it reflects, the log end offsets, the lag in events and milliseconds, the bound asked for and whether it was met) and a `consistency_token` for monotonic reads. See CONSISTENCY.md."
))]
struct ApiDoc;

pub struct QueryConfig {
    /// The read models' database, when not the primary's (a read replica).
    pub reads: Option<PgPool>,
    pub metrics: ServiceMetrics,
    pub topics: Topics,
    pub tokens: TokenCodec,
    pub stall_after: Duration,
    /// Reads the log for the auditors' lineage.
    pub log: tidemark_history::Replayer,
}

pub fn router(pool: PgPool, freshness: Freshness, config: QueryConfig, gate: Arc<Gate>) -> axum::Router {
    let state = AppState {
        reads: config.reads.unwrap_or_else(|| pool.clone()),
        metrics: config.metrics.clone(),
        pool,
        freshness,
        topics: config.topics,
        tokens: config.tokens,
        cache: Arc::default(),
        stall_after: config.stall_after,
        log: Arc::new(config.log),
    };
    let (router, api) = routes::all(OpenApiRouter::with_openapi(ApiDoc::openapi())).with_state(state).split_for_parts();
    tidemark_http::finish(router, api, gate, config.metrics)
}
