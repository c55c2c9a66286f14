//! Each service's Prometheus figures, and `/metrics` to read them.
//!
//! A service owns its recorder rather than installing one for the process: services that
//! share a process (`tidemark serve`, the tests) never mix their figures.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use sqlx::PgPool;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Principal, Problem};

/// Request latencies: from a cached read's milliseconds to a command's time-out.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Sizes (`…_records`): from one command's events to a full batch.
const SIZE_BUCKETS: [f64; 12] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

#[derive(Clone)]
pub struct ServiceMetrics(Arc<PrometheusRecorder>);

impl Default for ServiceMetrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_records".into()), &SIZE_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let service = ServiceMetrics(Arc::new(recorder));
        service.record(|| {
            metrics::describe_histogram!("tidemark_http_request_duration_seconds", metrics::Unit::Seconds, "Time to answer a request, by route, method and status.");
        });
        service
    }
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceMetrics")
    }
}

impl ServiceMetrics {
    /// Runs `f` with this service's recorder behind the `metrics` macros.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.0, f)
    }

    /// The exposition in Prometheus text format.
    pub fn render(&self) -> String {
        self.0.handle().render()
    }
}

/// Times every request by its route: the pattern, not the path, as ids would make a series
/// each.
pub async fn time_requests(State(service): State<ServiceMetrics>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    service.record(|| {
        metrics::histogram!("tidemark_http_request_duration_seconds", "route" => route, "method" => method, "status" => status).record(seconds);
    });
    response
}

/// What `/metrics` of a service with no figures but its own needs.
#[derive(Clone)]
pub struct Scrape {
    /// Where a refusal is recorded.
    pub pool: PgPool,
    pub metrics: ServiceMetrics,
}

/// `/metrics` of a service with no figures but its own, to merge into its routes.
pub fn routes<S: Clone + Send + Sync + 'static>(scrape: Scrape) -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(service_metrics)).with_state(scrape)
}

/// The service's figures in Prometheus text format: request latencies by route, and what
/// the service records besides. For operators and monitoring (a scraper sends a bearer token).
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
async fn service_metrics(State(scrape): State<Scrape>, who: Principal) -> Result<Response, Problem> {
    crate::denials::operator(&scrape.pool, &who, "read-metrics", "metrics").await?;
    Ok(exposition(&scrape.metrics, ""))
}

/// The answer of `/metrics`: the service's figures, and `more` (an exposition of its own).
/// It spans every tenant: the caller has checked that an operator asked
/// ([`crate::denials::operator`]).
pub fn exposition(metrics: &ServiceMetrics, more: &str) -> Response {
    let text = in_order(&format!("{}\n\n{more}", metrics.render()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The exposition with its families, and the samples within each, in order: the exporter
/// writes them in hash order, and the same state should always read the same.
pub fn in_order(exposition: &str) -> String {
    let mut families: Vec<Vec<&str>> = exposition
        .split("\n\n")
        .filter(|family| !family.trim().is_empty())
        .map(|family| {
            let (mut comments, mut samples): (Vec<&str>, Vec<&str>) = family.lines().filter(|l| !l.is_empty()).partition(|l| l.starts_with('#'));
            samples.sort();
            comments.append(&mut samples);
            comments
        })
        .collect();
    families.sort_by_key(|family| family.iter().find(|l| l.starts_with("# TYPE")).copied());
    families.iter().map(|family| family.join("\n") + "\n").collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn families_and_their_samples_come_out_in_order() {
        let exposition = "# TYPE b gauge\nb{p=\"2\"} 1\nb{p=\"1\"} 2\n\n# HELP a An a.\n# TYPE a counter\na 3\n";
        assert_eq!(super::in_order(exposition), "# HELP a An a.\n# TYPE a counter\na 3\n\n# TYPE b gauge\nb{p=\"1\"} 2\nb{p=\"2\"} 1\n");
    }

    #[test]
    fn a_service_records_into_its_own_figures_only() {
        let (one, other) = (super::ServiceMetrics::default(), super::ServiceMetrics::default());
        one.record(|| metrics::counter!("tidemark_test_total").increment(2));
        assert!(one.render().contains("tidemark_test_total 2"), "{}", one.render());
        assert!(!other.render().contains("tidemark_test_total"), "{}", other.render());
    }
}
