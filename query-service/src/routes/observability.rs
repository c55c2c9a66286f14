//! `/metrics` in Prometheus text format (through the `metrics` crate's exporter) and
//! `/healthz/projections`: how far behind each projection is, per partition, and whether
//! it still makes progress; and `/healthz`.

use axum::extract::State;
use axum::http::StatusCode;
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

/// Whether the service's dependencies (PostgreSQL, its read models' database, broker) answer and no projection is stalled.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(state): State<AppState>) -> Response {
    let (postgres, read_models) = (tidemark_http::health::postgres_ok(&state.pool).await, tidemark_http::health::postgres_ok(&state.reads).await);
    let freshness = state.freshness.clone();
    let broker = tokio::task::spawn_blocking(move || freshness.broker_answers()).await.unwrap_or_else(|e| Err(e.to_string()));
    // Not ready while a projection that answers depend on is stalled: such answers would
    // wait for their bound and fail.
    let projections = match unhealthy(&state).await {
        Ok(unhealthy) if unhealthy.is_empty() => Ok(()),
        Ok(unhealthy) => Err(format!("stalled: {}", unhealthy.join(", "))),
        Err(problem) => Err(problem.detail),
    };
    tidemark_http::health::answer(&[("postgres", postgres), ("read_models", read_models), ("broker", broker), ("projections", projections)], json!({}))
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
        let mut db = state.reads.acquire().await.map_err(database)?;
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
                // projection that just started is behind, but not by old records.) An age
                // nobody can tell (the broker's peek timed out or was busy, and the projection
                // never caught up) is no evidence: the next look decides, rather than a busy
                // moment turning the service unready.
                let stall_ms = state.stall_after.as_millis() as i64;
                let idle_ms = standing.as_ref().map(|s| (now - s.last_progress).num_milliseconds());
                let stalled = view.lag() > 0 && lag_ms.is_some_and(|ms| ms > stall_ms) && idle_ms.is_none_or(|ms| ms > stall_ms);
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

/// The service's request latencies; lag, position, progress and health per projection and
/// partition; the approvals waiting; the answer cache's hits. For operators and the system
/// (a scraper sends a bearer token).
///
/// The survey is recorded at each scrape into a recorder of its own: no sample outlives
/// what it speaks of.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
async fn metrics(State(state): State<AppState>, who: Principal) -> Result<Response, tidemark_http::Problem> {
    crate::access::operator(&state, &who, "read-metrics", "metrics").await?;
    let survey = survey(&state).await?;
    let pending: Vec<(String, i64, Option<f64>)> = sqlx::query!(
        r#"SELECT approver AS "approver!", count(*) AS "count!", extract(epoch FROM now() - min(waiting_since))::float8 AS oldest
           FROM pending_approvals GROUP BY approver"#
    )
    .fetch_all(&state.reads)
    .await
    .map_err(database)?
    .into_iter()
    .map(|r| (r.approver, r.count, r.oldest))
    .collect();
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
        describe_gauge!("tidemark_approvals_pending", "Quote approval steps waiting for a decision, by approver (manager or finance), across tenants.");
        describe_gauge!("tidemark_approvals_oldest_waiting_seconds", "How long the oldest approval step of each approver has been waiting.");
        // Both approvers always have a sample, so that an autoscaler reads 0 rather than nothing.
        for approver in ["manager", "finance"] {
            let (count, oldest) = pending.iter().find(|(a, ..)| a == approver).map_or((0, None), |(_, count, oldest)| (*count, *oldest));
            gauge!("tidemark_approvals_pending", "approver" => approver).set(count as f64);
            gauge!("tidemark_approvals_oldest_waiting_seconds", "approver" => approver).set(oldest.unwrap_or(0.0));
        }
        let (hits, misses) = (state.cache.hits(), state.cache.misses());
        describe_counter!("tidemark_query_cache_hits_total", "Answers served from the cache.");
        describe_counter!("tidemark_query_cache_misses_total", "Answers computed.");
        describe_gauge!("tidemark_query_cache_hit_ratio", "Share of answers served from the cache.");
        counter!("tidemark_query_cache_hits_total").absolute(hits);
        counter!("tidemark_query_cache_misses_total").absolute(misses);
        gauge!("tidemark_query_cache_hit_ratio").set(if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 });
    });
    let slos = slo_histograms(&state.reads).await?;
    Ok(tidemark_http::telemetry::exposition(&state.metrics, &format!("{}\n\n{slos}", recorder.handle().render())))
}

/// The sales process's service levels, each a duration per deal, lead or approval step,
/// as the read models hold it: (name, help, SQL of (label, seconds)).
const SLOS: [(&str, &str, &str); 3] = [
    (
        "tidemark_slo_time_to_quote_seconds",
        "From a deal's creation to its first submitted quote.",
        "SELECT NULL::text, extract(epoch FROM first_quoted_at - created_at)::float8 FROM opportunities WHERE first_quoted_at IS NOT NULL",
    ),
    (
        "tidemark_slo_lead_assignment_seconds",
        "From a lead's capture to its owner.",
        "SELECT NULL::text, assignment_latency_ms / 1000.0::float8 FROM leads WHERE assigned_at IS NOT NULL",
    ),
    (
        "tidemark_slo_approval_turnaround_seconds",
        "From an approval step's request to its decision, by approver (manager or finance).",
        "SELECT approver, extract(epoch FROM decided_at - requested_at)::float8 FROM approval_decisions",
    ),
];

/// Upper bounds of the service-level histograms' buckets: from a minute to a quarter.
const SLO_BUCKETS: [f64; 10] = [60.0, 600.0, 3600.0, 4.0 * 3600.0, 86400.0, 2.0 * 86400.0, 7.0 * 86400.0, 14.0 * 86400.0, 30.0 * 86400.0, 90.0 * 86400.0];

/// The service levels as Prometheus histograms, counted by the database from every row:
/// the same at every query service, and after a rebuild, as they come from the log.
async fn slo_histograms(reads: &sqlx::PgPool) -> Result<String, tidemark_http::Problem> {
    let mut text = String::new();
    for (name, help, durations) in SLOS {
        // width_bucket: 0 below the first bound, i for [bound i-1, bound i), len for the rest.
        let rows: Vec<(Option<String>, i32, i64, f64)> = sqlx::query_as(&format!(
            "SELECT label, width_bucket(seconds, $1::float8[]), count(*), coalesce(sum(seconds), 0)::float8
             FROM ({durations}) AS d(label, seconds) WHERE seconds IS NOT NULL GROUP BY 1, 2"
        ))
        .bind(SLO_BUCKETS.to_vec())
        .fetch_all(reads)
        .await
        .map_err(database)?;
        text += &format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut labels: Vec<Option<&String>> = rows.iter().map(|(label, ..)| label.as_ref()).collect();
        labels.sort();
        labels.dedup();
        if labels.is_empty() {
            labels.push(None);
        }
        for label in labels {
            let of_label = || rows.iter().filter(move |(l, ..)| l.as_ref() == label);
            let with = |more: &str| match label {
                Some(l) => format!("{{approver=\"{l}\"{}{more}}}", if more.is_empty() { "" } else { "," }),
                None if more.is_empty() => String::new(),
                None => format!("{{{more}}}"),
            };
            // A value on a bound belongs to the bucket below it in Prometheus (le), to the
            // one above in width_bucket: close enough for durations measured in ms.
            for (i, bound) in SLO_BUCKETS.iter().enumerate() {
                let count: i64 = of_label().filter(|(_, bucket, ..)| (*bucket as usize) <= i).map(|(_, _, n, _)| n).sum();
                text += &format!("{name}_bucket{} {count}\n", with(&format!("le=\"{bound}\"")));
            }
            let (count, sum) = of_label().fold((0i64, 0.0f64), |(c, s), (_, _, n, total)| (c + *n, s + *total));
            text += &format!("{name}_bucket{} {count}\n{name}_sum{} {sum}\n{name}_count{} {count}\n", with("le=\"+Inf\""), with(""), with(""));
        }
        text += "\n";
    }
    Ok(text)
}
