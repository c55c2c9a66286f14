//! Traces that follow a command across the log. An HTTP request's W3C `traceparent` is the
//! parent of its span; the writer copies the command's context into the `traceparent`
//! header of each record it appends; a projector's batch links to the records it applies.
//! Spans leave the process through OpenTelemetry only when asked to: over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, as JSON lines into `TIDEMARK_TRACES_FILE` for local
//! runs. Otherwise no span has a context, no header is written, and tracing costs what it
//! did before.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

/// The header, in HTTP and in Kafka records, that carries a span's W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("cannot write the traces file {0}: {1}")]
    File(PathBuf, std::io::Error),
    #[error("cannot set up the OTLP exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Where spans go, from the environment; `None` when they go nowhere.
pub fn provider(service: &'static str) -> Result<Option<SdkTracerProvider>, TracesError> {
    let builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service).build());
    if let Some(path) = std::env::var_os("TIDEMARK_TRACES_FILE") {
        let path = PathBuf::from(path);
        let file = File::options().create(true).append(true).open(&path).map_err(|e| TracesError::File(path, e))?;
        // One span at a time, written as it ends: a local run killed at any moment keeps
        // every span that ended before.
        return Ok(Some(builder.with_simple_exporter(JsonLines(Mutex::new(BufWriter::new(file)))).build()));
    }
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
        return Ok(Some(builder.with_batch_exporter(exporter).build()));
    }
    Ok(None)
}

/// The `tracing` layer that hands spans to `provider`.
pub fn layer<S>(provider: &SdkTracerProvider, service: &'static str) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

/// The span's `traceparent`, when the span is recorded for a trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the remote span that `traceparent` names the parent of `span`. A malformed value is
/// ignored: the span starts a trace of its own.
pub fn adopt_parent(span: &tracing::Span, traceparent: &str) {
    let parent = remote(traceparent);
    if parent.is_valid() {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// Links `span` to the remote span that `traceparent` names: for work that serves many
/// traces at once (a batch of records).
pub fn link(span: &tracing::Span, traceparent: &str) {
    let linked = remote(traceparent);
    if linked.is_valid() {
        span.add_link(linked);
    }
}

fn remote(traceparent: &str) -> SpanContext {
    struct Only<'a>(&'a str);
    impl Extractor for Only<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == TRACEPARENT).then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT]
        }
    }
    TraceContextPropagator::new().extract(&Only(traceparent)).span().span_context().clone()
}

/// Spans as JSON lines: trace and span ids, parent, name, times, attributes and links.
#[derive(Debug)]
struct JsonLines(Mutex<BufWriter<File>>);

impl SpanExporter for JsonLines {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = self.0.lock().map_err(|_| OTelSdkError::InternalFailure("the traces file's lock is poisoned".into()))?;
        for span in batch {
            let since_epoch = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let line = serde_json::json!({
                "trace_id": span.span_context.trace_id().to_string(),
                "span_id": span.span_context.span_id().to_string(),
                "parent_span_id": span.parent_span_id.to_string(),
                "name": span.name,
                "start_unix_nanos": since_epoch(span.start_time),
                "end_unix_nanos": since_epoch(span.end_time),
                "attributes": span.attributes.iter().map(|kv| (kv.key.to_string(), serde_json::Value::String(kv.value.to_string()))).collect::<serde_json::Map<_, _>>(),
                "links": span.links.links.iter().map(|l| serde_json::json!({
                    "trace_id": l.span_context.trace_id().to_string(),
                    "span_id": l.span_context.span_id().to_string(),
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_a_remote_span_and_a_malformed_one_names_none() {
        let good = remote("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(good.is_valid() && good.is_remote());
        assert_eq!(good.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!remote("00-not-a-trace-01").is_valid());
    }

    #[test]
    fn a_span_outside_any_trace_has_no_traceparent() {
        assert_eq!(traceparent(&tracing::info_span!("untraced")), None);
    }
}
