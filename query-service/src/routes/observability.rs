//! `/metrics` in Prometheus text format (through the `metrics` crate's exporter) and
//! `/healthz/projections`: how far behind each projection is, per partition, and whether
//! it still makes progress; and `/healthz`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use metrics::{counter, describe_counter, describe_gauge, gauge, Label};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;

use tidemark_http::Principal;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::bound::PartitionView;
use crate::freshness::{self, database, Standing};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(projections_health)).routes(routes!(metrics))
}

/// Whether the service's dependencies (PostgreSQL, broker) answer and no projection is stalled.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(state): State<AppState>) -> Response {
    let postgres = sqlx::query("SELECT 1").execute(&state.pool).await.map(|_| ()).map_err(|e| e.to_string());
    let freshness = state.freshness.clone();
    let broker = tokio::task::spawn_blocking(move || freshness.broker_answers()).await.unwrap_or_else(|e| Err(e.to_string()));
    // Not ready while a projection that answers depend on is stalled: such answers would
    // wait for their bound and fail.
    let projections = match unhealthy(&state).await {
        Ok(unhealthy) if unhealthy.is_empty() => Ok(()),
        Ok(unhealthy) => Err(format!("stalled: {}", unhealthy.join(", "))),
        Err(problem) => Err(problem.detail),
    };
    tidemark_http::health::answer(&[("postgres", postgres), ("broker", broker), ("projections", projections)], json!({}))
}

/// One partition of one projection, as monitoring sees it.
struct PartitionHealth {
    topic: String,
    partition: i32,
    view: PartitionView,
    lag_ms: Option<i64>,
    standing: Option<Standing>,
    stalled: bool,
    /// The projection claims records the log does not have (the log was reset under it).
    ahead_of_log: bool,
}

async fn survey(state: &AppState) -> Result<Vec<(&'static str, Vec<PartitionHealth>)>, tidemark_http::Problem> {
    let now = Utc::now();
    let mut survey = Vec::new();
    for tidemark_projectors::Described { name, topics: topics_of, .. } in tidemark_projectors::described() {
        let topics = topics_of(&state.topics);
        // Standings first, then the log ends: the other way round, records applied in
        // between would stand past an end read before them, and look like a reset log.
        let mut db = state.pool.acquire().await.map_err(database)?;
        let standing = freshness::standings(&mut db, name).await.map_err(database)?;
        drop(db);
        let ends = state.freshness.log_end_offsets(&topics).await?;
        let observation = state.freshness.observe(&ends, &standing, true).await;
        let partitions = observation
            .into_iter()
            .map(|((topic, partition), view)| {
                let standing = standing.iter().find(|s| s.topic == topic && s.partition == partition).cloned();
                let lag_ms = view.lag_ms(now);
                // Behind by more than the interval, and no batch applied nor caught-up moment
                // seen for as long: a consumer that died or hangs, silently or not. (A
                // projection that just started is behind, but not by old records.)
                let stall_ms = state.stall_after.as_millis() as i64;
                let idle_ms = standing.as_ref().map(|s| (now - s.last_progress).num_milliseconds());
                let stalled = view.lag() > 0 && lag_ms.is_none_or(|ms| ms > stall_ms) && idle_ms.is_none_or(|ms| ms > stall_ms);
                let ahead_of_log = view.reflected > view.end;
                PartitionHealth { topic, partition, view, lag_ms, standing, stalled, ahead_of_log }
            })
            .collect();
        survey.push((name, partitions));
    }
    Ok(survey)
}

/// The projections that are stalled or ahead of the log, with their partitions.
async fn unhealthy(state: &AppState) -> Result<Vec<String>, tidemark_http::Problem> {
    let survey = survey(state).await?;
    Ok(survey
        .iter()
        .flat_map(|(name, partitions)| partitions.iter().filter(|p| p.stalled || p.ahead_of_log).map(move |p| format!("{name} at {}/{}", p.topic, p.partition)))
        .collect())
}

/// Whether every projection makes progress; 503 naming the stalled partitions otherwise.
#[utoipa::path(get, path = "/healthz/projections", security(()), responses((status = 200), (status = 503)))]
async fn projections_health(State(state): State<AppState>) -> Result<Response, tidemark_http::Problem> {
    let survey = survey(&state).await?;
    let mut healthy = true;
    let mut body = serde_json::Map::new();
    for (name, partitions) in &survey {
        let named =
            |f: fn(&PartitionHealth) -> bool| -> Vec<String> { partitions.iter().filter(|p| f(p)).map(|p| format!("{}/{}", p.topic, p.partition)).collect() };
        let (stalled, ahead) = (named(|p| p.stalled), named(|p| p.ahead_of_log));
        healthy &= stalled.is_empty() && ahead.is_empty();
        body.insert(
            name.to_string(),
            json!({
                "healthy": stalled.is_empty() && ahead.is_empty(),
                "stalled_partitions": stalled,
                "ahead_of_log_partitions": ahead,
                "lag_events": partitions.iter().map(|p| p.view.lag()).sum::<i64>(),
                "stall_after_ms": state.stall_after.as_millis() as u64,
            }),
        );
    }
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(json!({ "status": if healthy { "ok" } else { "stalled" }, "projections": body }))).into_response())
}

/// Lag, position, progress and health per projection and partition; the answer cache's
/// hits. For operators and the system (a scraper sends a bearer token).
///
/// Each scrape records a fresh survey into a recorder of its own: no sample outlives what
/// it speaks of, and services that share a process never mix their figures.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
async fn metrics(State(state): State<AppState>, who: Principal) -> Result<Response, tidemark_http::Problem> {
    crate::access::operator(&state, &who, "read-metrics", "metrics").await?;
    let survey = survey(&state).await?;
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        describe_gauge!("tidemark_projection_lag_events", "Records in the log that the projection has not applied.");
        describe_gauge!("tidemark_projection_lag_ms", "Age of the oldest record the projection has not applied (0 when caught up).");
        describe_counter!("tidemark_projection_applied_offset", "Next offset the projection will apply; its rate is the projection's throughput.");
        describe_gauge!("tidemark_projection_log_end_offset", "Log end offset of the partition.");
        describe_gauge!("tidemark_projection_last_progress_seconds", "Unix time of the projection's last batch or caught-up moment.");
        describe_gauge!("tidemark_projection_stalled", "1 when the projection is behind and made no progress for the stall interval.");
        for (projection, partitions) in &survey {
            for p in partitions {
                let labels = vec![Label::new("projection", *projection), Label::new("topic", p.topic.clone()), Label::new("partition", p.partition.to_string())];
                gauge!("tidemark_projection_lag_events", labels.clone()).set(p.view.lag() as f64);
                gauge!("tidemark_projection_lag_ms", labels.clone()).set(p.lag_ms.map_or(f64::NAN, |ms| ms as f64));
                counter!("tidemark_projection_applied_offset", labels.clone()).absolute(p.view.reflected.max(0) as u64);
                gauge!("tidemark_projection_log_end_offset", labels.clone()).set(p.view.end as f64);
                let progress = p.standing.as_ref().map_or(0.0, |s| s.last_progress.timestamp_millis() as f64 / 1000.0);
                gauge!("tidemark_projection_last_progress_seconds", labels.clone()).set(progress);
                gauge!("tidemark_projection_stalled", labels).set(f64::from(u8::from(p.stalled)));
            }
        }
        let (hits, misses) = (state.cache.hits(), state.cache.misses());
        describe_counter!("tidemark_query_cache_hits_total", "Answers served from the cache.");
        describe_counter!("tidemark_query_cache_misses_total", "Answers computed.");
        describe_gauge!("tidemark_query_cache_hit_ratio", "Share of answers served from the cache.");
        counter!("tidemark_query_cache_hits_total").absolute(hits);
        counter!("tidemark_query_cache_misses_total").absolute(misses);
        gauge!("tidemark_query_cache_hit_ratio").set(if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 });
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], in_order(&recorder.handle().render())).into_response())
}

/// The exposition with its families, and the samples within each, in order: the exporter
/// writes them in hash order, and the same state should always read the same.
fn in_order(exposition: &str) -> String {
    let mut families: Vec<Vec<&str>> = exposition
        .split("\n\n")
        .filter(|family| !family.trim().is_empty())
        .map(|family| {
            let (mut comments, mut samples): (Vec<&str>, Vec<&str>) = family.lines().partition(|l| l.starts_with('#'));
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
}
