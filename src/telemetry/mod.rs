//! OpenTelemetry traces (issue 20): the exporter, the spans keel makes and
//! W3C trace-context propagation.
//!
//! Why this exists: one request of keel can become several upstream calls
//! (retries, hedges, fallbacks); a trace shows them as one tree next to the
//! client's own spans. Off by default: without an OTLP endpoint there is no
//! exporter and no OpenTelemetry layer, [`enabled`] is false and every helper
//! here returns at once (no allocation, no header).
//!
//! Invariants:
//! - spans are exported by the SDK's batch processor on its own thread, from
//!   a bounded queue: a slow or dead collector never slows or fails a
//!   request, and a full queue drops spans instead of growing (counted, see
//!   [`queue`]);
//! - keel's spans use the target [`TARGET`]; the log output never shows them
//!   (log lines keep the `request` span with `request_id` and `trace_id`),
//!   and the OpenTelemetry layer sees only them;
//! - the provider is shut down (queue flushed, bounded wait) when `keel
//!   serve` ends, through [`TracerGuard`].
//!
//! Layering: this module is infrastructure and depends on nothing of keel's
//! but [`crate::env`] (for its config). Recording a domain value on a span is
//! that domain's job: the provider-attempt span is
//! [`crate::providers::span`], a job's outcome is recorded by
//! [`crate::outcome::finish_job_span`], and the exemplar ids
//! ([`TraceRef`]) live here because the metrics histograms and this module
//! both need them.

pub mod config;
pub mod queue;

pub use config::{SamplerConfig, TracingConfig};

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span and event meant for OpenTelemetry.
pub const TARGET: &str = "keel_otel";

/// The log filter directive that keeps [`TARGET`] out of the log output.
pub const LOG_OFF_DIRECTIVE: &str = "keel_otel=off";

/// Longest wait for the last spans to be exported when keel stops.
const SHUTDOWN_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// True once [`install`] built an exporter: the request path checks this one
/// atomic before doing any tracing work.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported by this process.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration.
    #[error("cannot build the OTLP trace exporter for {endpoint}: {reason}")]
    Exporter {
        /// The traces endpoint.
        endpoint: String,
        /// The SDK's message.
        reason: String,
    },
}

/// Owns the tracer provider; [`TracerGuard::shutdown`] (or dropping it)
/// exports what is queued, waiting at most a few seconds.
pub struct TracerGuard {
    provider: Option<SdkTracerProvider>,
}

impl TracerGuard {
    /// Flushes and stops the exporter; later spans are not exported.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take() {
            ENABLED.store(false, Ordering::Relaxed);
            let _ = provider.shutdown_with_timeout(SHUTDOWN_FLUSH_WAIT);
        }
    }
}

impl Drop for TracerGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Builds the OTLP/HTTP exporter, the batch processor and the tracer, and
/// marks tracing enabled. The caller wraps the tracer in the
/// `tracing-opentelemetry` layer of its subscriber.
pub fn install(
    config: &TracingConfig,
) -> Result<(opentelemetry_sdk::trace::Tracer, TracerGuard), TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.export_timeout)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: config.endpoint.clone(),
            reason: e.to_string(),
        })?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue_size)
        .with_max_export_batch_size(config.max_export_batch_size)
        .with_scheduled_delay(config.schedule_delay)
        .build();
    let pending = std::sync::Arc::new(queue::Pending::default());
    let exporter = queue::Counting {
        inner: exporter,
        pending: pending.clone(),
    };
    let processor = queue::Admission {
        inner: BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build(),
        capacity: config.max_queue_size,
        pending,
    };
    let resource = opentelemetry_sdk::Resource::builder_empty()
        // keel's version first: `OTEL_RESOURCE_ATTRIBUTES` may override it.
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(config.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config.sampler))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("keel");
    ENABLED.store(true, Ordering::Relaxed);
    Ok((
        tracer,
        TracerGuard {
            provider: Some(provider),
        },
    ))
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::Ratio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// Reads W3C `traceparent` / `tracestate` from request headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes W3C `traceparent` / `tracestate` into headers.
struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The server span of one HTTP request, joined to the client's trace when
/// the request carries a valid `traceparent`. `Span::none()` when tracing
/// is off.
pub fn server_span(
    method: &http::Method,
    route: Option<&str>,
    path: &str,
    request_id: &str,
    headers: &http::HeaderMap,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let name = match route {
        Some(r) => format!("{method} {r}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        target: TARGET,
        "http.server",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        http.route = route,
        url.path = path,
        http.response.status_code = Empty,
        keel.request_id = request_id,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    span
}

/// The trace id of `span` as 32 hex digits, for the log lines of the
/// request; `None` when the span is not exported.
pub fn trace_id(span: &Span) -> Option<String> {
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The exported trace an observation belongs to: the ids an OpenMetrics
/// exemplar carries so an operator can jump from a latency bucket to the
/// trace of one request in it (the metrics histograms keep them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRef {
    /// The W3C trace id (128 bits, never zero).
    pub trace_id: u128,
    /// The id of the span the observation was made in.
    pub span_id: u64,
}

/// The ids of `span` for a latency exemplar ([`TraceRef`]);
/// `None` when tracing is off or the span is not sampled (an exemplar must
/// point at a trace the collector actually received).
pub fn trace_ref(span: &Span) -> Option<TraceRef> {
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    (span_context.is_valid() && span_context.is_sampled()).then(|| TraceRef {
        trace_id: u128::from_be_bytes(span_context.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(span_context.span_id().to_bytes()),
    })
}

/// Records the answer's status on the server span and returns the
/// `traceparent` (and `tracestate`) of the server span in `headers`.
pub fn finish_server_span(span: &Span, status: u16, headers: &mut http::HeaderMap) {
    if span.is_none() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    inject(&span.context(), headers);
}

fn inject(context: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
    }
}

/// The `traceparent` of the current span (the server span of a job
/// submission), stored with an async job so its execution can link back;
/// `None` when tracing is off or the span is not exported.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// The span of one async job's execution. It starts a trace of its own (the
/// job may run long after its submission, on another instance) and carries
/// a link to the submission's span (`submitted`, the stored `traceparent`),
/// so a tracing UI can jump from one to the other. `Span::none()` when
/// tracing is off.
pub fn async_job_span(job_id: &str, operation: &str, submitted: Option<&str>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "async_job",
        otel.name = format!("async job {operation}"),
        otel.kind = "consumer",
        keel.job_id = job_id,
        keel.operation = operation,
    );
    let _ = span.set_parent(opentelemetry::Context::new());
    if let Some(traceparent) = submitted {
        let carrier: std::collections::HashMap<String, String> =
            [("traceparent".to_string(), traceparent.to_string())].into();
        let context = TraceContextPropagator::new().extract(&carrier);
        let submission = context.span().span_context().clone();
        if submission.is_valid() {
            span.add_link(submission);
        }
    }
    span
}

/// The span of one job (cache lookup and resilience pipeline).
pub fn job_span(operation: &'static str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "job",
        otel.name = format!("job {operation}"),
        otel.status_code = Empty,
        keel.operation = operation,
        keel.cache = Empty,
        keel.degraded = Empty,
        keel.attempts = Empty,
        keel.provider = Empty,
        gen_ai.response.model = Empty,
        error.type = Empty,
    )
}

/// The span of one webhook POST of a finished async job, a child of the
/// job's execution span. The URL's query is left out (it may carry a
/// token). `Span::none()` when tracing is off.
pub fn webhook_span(job_id: &str, url: &str, attempt: u32) -> Span {
    if !enabled() {
        return Span::none();
    }
    let parsed = reqwest::Url::parse(url).ok();
    let address = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let port = parsed
        .as_ref()
        .and_then(reqwest::Url::port_or_known_default);
    let path = parsed.as_ref().map_or("", reqwest::Url::path).to_string();
    tracing::info_span!(
        target: TARGET,
        "webhook",
        otel.name = "POST",
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = "POST",
        server.address = address,
        server.port = port,
        url.path = path,
        keel.job_id = job_id,
        keel.attempt = attempt,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Records how a webhook POST ended: the receiver's status, or that it
/// could not be reached.
pub fn finish_webhook_span<E>(span: &Span, sent: Result<u16, E>) {
    if span.is_none() {
        return;
    }
    match sent {
        Ok(status) => {
            span.record("http.response.status_code", status);
            if !(200..300).contains(&status) {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.to_string());
            }
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "unreachable");
        }
    }
}

/// Adds the current span's `traceparent` to an upstream request (the
/// OpenAI-compatible and Gemini providers); unchanged when tracing is off.
pub fn inject_upstream(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !enabled() {
        return request;
    }
    let mut headers = http::HeaderMap::new();
    inject(&Span::current().context(), &mut headers);
    if headers.is_empty() {
        request
    } else {
        request.headers(headers)
    }
}
