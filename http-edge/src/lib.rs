//! The HTTP edge shared by the command and query services.

pub mod audit;
pub mod auth;
pub mod denials;
pub mod health;
pub mod openapi;
pub mod principal;
pub mod problem;
pub mod telemetry;
pub mod text;
pub mod token;
pub mod traces;

pub use principal::{Gate, Principal, Rate};
pub use problem::{Problem, ProblemJson, ProblemPath, ProblemQuery};
pub use telemetry::ServiceMetrics;
pub use token::{ConsistencyToken, Position, TokenCodec, TokenError};

use axum::http::{HeaderName, HeaderValue, Request};
use axum::Router;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("consistency-token");

#[derive(Clone, Copy)]
struct NewCorrelationId;

impl MakeRequestId for NewCorrelationId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

/// Finishes a service's router: serves its OpenAPI document at `/openapi.json` and adds
/// the layers every service wants: a correlation id (taken from `X-Correlation-Id` or
/// made), echoed in the answer and carried by the request's tracing span, which continues
/// the caller's trace when the request has a `traceparent`. The document is
/// completed with what the edge answers on every operation ([`openapi::complete`]). Every
/// request that matched a route is timed into the service's `metrics`.
pub fn finish(router: Router, api: utoipa::openapi::OpenApi, gate: std::sync::Arc<Gate>, metrics: ServiceMetrics) -> Router {
    let api = openapi::complete(api);
    router
        .route("/openapi.json", axum::routing::get(move || std::future::ready(axum::Json(api.clone()))))
        .route_layer(axum::middleware::from_fn_with_state(metrics, telemetry::time_requests))
        .fallback(|uri: axum::http::Uri| async move { Problem::not_found(format!("no resource at {uri}; see /openapi.json")) })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            Problem::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", format!("{uri} does not take {method}; see /openapi.json"))
        })
        .layer(PropagateRequestIdLayer::new(CORRELATION_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let correlation_id = req
                .headers()
                .get(CORRELATION_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), correlation_id);
            if let Some(parent) = req.headers().get(traces::TRACEPARENT).and_then(|v| v.to_str().ok()) {
                traces::adopt_parent(&span, parent);
            }
            span
        }))
        .layer(SetRequestIdLayer::new(CORRELATION_ID, NewCorrelationId))
        .layer(axum::Extension(gate))
        .layer(axum::middleware::from_fn(text::refuse_control_characters))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
}

/// Lets pages served from `origins` (the sales console) call this API from the browser,
/// with the headers that commands and reads take and give.
pub fn cors(origins: Vec<axum::http::HeaderValue>) -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, Method};
    let take = [header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_MATCH, HeaderName::from_static("idempotency-key"), CONSISTENCY_TOKEN, CORRELATION_ID, HeaderName::from_static(traces::TRACEPARENT)];
    let give = [header::ETAG, header::RETRY_AFTER, CONSISTENCY_TOKEN, CORRELATION_ID];
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers(take)
        .expose_headers(give)
        .max_age(std::time::Duration::from_secs(600))
}

/// Commands are small; anything larger is a mistake or an attack.
pub const MAX_BODY: usize = 64 * 1024;
/// No request holds a connection longer; every dependency is bounded well below this.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);

