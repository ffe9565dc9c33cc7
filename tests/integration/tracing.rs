//! OpenTelemetry traces end to end: a real `keel serve` exports OTLP/HTTP
//! protobuf to an in-process receiver (a small axum server decoding
//! `ExportTraceServiceRequest` with the `opentelemetry-proto` types), calls
//! the real fake upstream, and the tests read the span tree it received.

use crate::support::{ARTICLE, KeelProcess, fake};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use keel_testkit::fake_llm::FakeLlmConfig;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fast backoff so the retried call stays short.
const FAST_RETRIES: &str = r#"{"exponential_multiplier": 0.1, "exponential_min": 0.5, "exponential_max": 5.0, "jitter_enabled": false, "circuit_breaker_threshold": 10}"#;

/// The client's trace and span in the `traceparent` it sends.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// `SpanKind` numbers of the OTLP protocol.
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    resource: HashMap<String, String>,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    kind: i32,
    attrs: HashMap<String, String>,
    events: Vec<(String, HashMap<String, String>)>,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> &str {
        self.attrs.get(key).map_or("", String::as_str)
    }
}

/// The in-process OTLP/HTTP receiver.
struct Receiver {
    base: String,
    spans: Arc<Mutex<Vec<Got>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

async fn export(State(spans): State<Arc<Mutex<Vec<Got>>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut spans = spans.lock().unwrap();
    for rs in request.resource_spans {
        let resource = text(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(Got {
                    service: resource.get("service.name").cloned().unwrap_or_default(),
                    resource: resource.clone(),
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    kind: s.kind,
                    attrs: text(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), text(&e.attributes)))
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

async fn receiver() -> Receiver {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v1/traces", post(export))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { base, spans }
}

impl Receiver {
    fn all(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of `trace_id` once at least `count` arrived (10 s at most).
    async fn wait_for(&self, trace_id: &str, count: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Got> = self
                .all()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The span tree under `root` as indented text (printed by the main test;
/// the README shows it).
fn tree(spans: &[Got], root: &Got, depth: usize, out: &mut String) {
    let mut attrs: Vec<_> = root.attrs.iter().collect();
    attrs.sort();
    let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!(
        "{}{} [{}]\n",
        "  ".repeat(depth),
        root.name,
        attrs.join(" ")
    ));
    for (name, attrs) in &root.events {
        let mut attrs: Vec<_> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        attrs.sort();
        out.push_str(&format!(
            "{}  event {name} [{}]\n",
            "  ".repeat(depth),
            attrs.join(" ")
        ));
    }
    let mut children: Vec<&Got> = spans.iter().filter(|s| s.parent == root.span_id).collect();
    children.sort_by_key(|s| s.attr("keel.attempt").to_string());
    for child in children {
        tree(spans, child, depth + 1, out);
    }
}

fn body() -> serde_json::Value {
    json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 40}})
}

/// `POST /v1/text_processing/process`, with an optional `traceparent`.
async fn process(keel: &KeelProcess, traceparent: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/text_processing/process", keel.base))
        .json(&body());
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    request.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Keel on the fake upstream (no fallback) exporting to `rx`.
fn traced_vars<'a>(upstream: &'a str, rx: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OPENAI_BASE_URL", upstream),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("RESILIENCE_CUSTOM_CONFIG", FAST_RETRIES),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_SERVICE_NAME", "keel-test"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test,team=a%2Cb",
        ),
    ]
}

/// A request with a client `traceparent` joins that trace: server span under
/// the client's span, job span under it, one client span per upstream call
/// (the retried call shows two, and a backoff event between them), the
/// upstream receives each attempt's `traceparent`, and the response carries
/// the server span's `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_a_retried_request_is_one_tree_in_the_client_trace() {
    let rx = receiver().await;
    let upstream = fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let keel = KeelProcess::start(&traced_vars(&base, &rx.base)).await;
    upstream.set_config(FakeLlmConfig {
        fail_next: 1,
        ..Default::default()
    });
    upstream.reset_stats();

    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = process(&keel, Some(&client_tp)).await;
    assert_eq!(r.status(), 200);
    let returned_tp = header(&r, "traceparent");
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["metadata"]["attempts"], 2, "{answer}");

    let spans = rx.wait_for(CLIENT_TRACE, 4).await;
    assert_eq!(spans.len(), 4, "server, job, two attempts: {spans:#?}");
    for s in &spans {
        assert_eq!(s.service, "keel-test");
        assert_eq!(s.resource["deployment.environment.name"], "test");
        assert_eq!(s.resource["team"], "a,b");
        assert_eq!(s.resource["service.version"], env!("CARGO_PKG_VERSION"));
    }
    let server = spans.iter().find(|s| s.kind == KIND_SERVER).unwrap();
    assert_eq!(server.name, "POST /v1/text_processing/process");
    assert_eq!(server.parent, CLIENT_SPAN, "joined under the client's span");
    assert_eq!(server.attr("http.request.method"), "POST");
    assert_eq!(server.attr("http.route"), "/v1/text_processing/process");
    assert_eq!(server.attr("http.response.status_code"), "200");
    assert_eq!(
        returned_tp,
        format!("00-{CLIENT_TRACE}-{}-01", server.span_id),
        "the response names the server span"
    );

    let mut text = String::new();
    tree(&spans, server, 0, &mut text);
    println!("{text}");

    let job = spans.iter().find(|s| s.name == "job summarize").unwrap();
    assert_eq!(job.parent, server.span_id);
    assert_eq!(job.attr("keel.operation"), "summarize");
    assert_eq!(job.attr("keel.cache"), "miss");
    assert_eq!(job.attr("keel.attempts"), "2");
    assert_eq!(job.attr("keel.degraded"), "false");
    assert_eq!(job.attr("keel.provider"), "openai");
    let backoff = job
        .events
        .iter()
        .find(|(name, _)| name == "backoff")
        .unwrap_or_else(|| panic!("a backoff event: {job:#?}"));
    assert_eq!(backoff.1["attempt"], "1");
    assert_eq!(backoff.1["delay_ms"], "500");

    let mut attempts: Vec<&Got> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
    attempts.sort_by_key(|s| s.attr("keel.attempt").to_string());
    assert_eq!(attempts.len(), 2);
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a.parent, job.span_id, "attempts are children of the job");
        assert_eq!(a.attr("keel.attempt"), (i + 1).to_string());
        assert_eq!(a.attr("gen_ai.system"), "openai");
        assert_eq!(a.attr("gen_ai.operation.name"), "chat");
        assert!(!a.attr("gen_ai.request.model").is_empty(), "{a:#?}");
        assert_eq!(a.name, format!("chat {}", a.attr("gen_ai.request.model")));
        assert_eq!(a.attr("keel.breaker_state"), "closed");
    }
    assert_eq!(attempts[0].attr("keel.outcome"), "transient");
    assert_eq!(attempts[0].attr("http.response.status_code"), "500");
    assert_eq!(attempts[1].attr("keel.outcome"), "ok");
    assert!(
        attempts[1]
            .attr("gen_ai.usage.input_tokens")
            .parse::<u64>()
            .is_ok_and(|n| n > 0),
        "{:#?}",
        attempts[1]
    );

    // The upstream saw each call's own span as the parent, in the same trace.
    let sent: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{CLIENT_TRACE}-{}-01", a.span_id))
        .collect();
    assert_eq!(upstream.traceparents(), sent);
    let over_http: Vec<String> =
        reqwest::get(format!("{}/_fake/traceparents", upstream.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(over_http, sent);
}

/// The exemplars (`# {trace_id=…,span_id=…} value timestamp`) on the
/// bucket lines of `family` in an OpenMetrics scrape, as
/// `(labels, trace_id, span_id)`.
fn exemplars(scrape: &str, family: &str) -> Vec<(String, String, String)> {
    let prefix = format!("{family}_bucket{{");
    scrape
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let (series, exemplar) = l.split_once(" # {")?;
            let labels = series.split_once('{')?.1.split_once('}')?.0.to_string();
            let (ids, _) = exemplar.split_once('}')?;
            let mut trace = String::new();
            let mut span = String::new();
            for kv in ids.split(',') {
                let (k, v) = kv.split_once('=')?;
                let v = v.trim_matches('"').to_string();
                match k {
                    "trace_id" => trace = v,
                    "span_id" => span = v,
                    _ => {}
                }
            }
            Some((labels, trace, span))
        })
        .collect()
}

async fn scrape(keel: &KeelProcess) -> String {
    reqwest::get(format!("{}/internal/metrics", keel.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// With tracing on, the latency histograms of `/internal/metrics` carry
/// OpenMetrics exemplars naming the exported trace of one request in the
/// bucket: the HTTP histogram names the server span, the provider-call
/// histogram the attempt span, both in the client's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_latency_buckets_carry_exemplars_of_exported_traces() {
    let rx = receiver().await;
    let upstream = fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let keel = KeelProcess::start(&traced_vars(&base, &rx.base)).await;

    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = process(&keel, Some(&client_tp)).await;
    assert_eq!(r.status(), 200);
    let spans = rx.wait_for(CLIENT_TRACE, 3).await;
    let server = spans.iter().find(|s| s.kind == KIND_SERVER).unwrap();
    let attempt = spans.iter().find(|s| s.kind == KIND_CLIENT).unwrap();

    let text = scrape(&keel).await;
    let http = exemplars(&text, "keel_http_request_duration_seconds");
    assert!(
        http.iter().any(|(labels, trace, span)| labels
            .starts_with("route=\"/v1/text_processing/process\"")
            && trace == CLIENT_TRACE
            && *span == server.span_id),
        "an exemplar names the server span: {http:?}\n{text}"
    );
    let calls = exemplars(&text, "keel_provider_call_duration_seconds");
    assert_eq!(
        calls,
        vec![(
            calls.first().map_or(String::new(), |c| c.0.clone()),
            CLIENT_TRACE.to_string(),
            attempt.span_id.clone()
        )],
        "one call, one exemplar naming its attempt span:\n{text}"
    );
    assert!(calls[0].0.starts_with("provider=\"openai\""), "{calls:?}");
    assert!(text.ends_with("# EOF\n"));
}

/// Every JSON log line of a request carries its trace id next to its
/// request id; keel's OpenTelemetry spans never show in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_log_lines_carry_the_trace_id() {
    let rx = receiver().await;
    let upstream = fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let mut vars = traced_vars(&base, &rx.base);
    vars.push(("LOG_FORMAT", "json"));
    // The `request` span (request_id, trace_id) is an info span.
    vars.push(("LOG_LEVEL", "info"));
    let (mut keel, out) = KeelProcess::start_capturing(&vars).await;
    upstream.set_config(FakeLlmConfig {
        fail_next: 1,
        ..Default::default()
    });
    let r = process(&keel, Some(&format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status(), 200);
    let request_id = header(&r, "x-request-id");
    assert_eq!(keel.terminate(), Some(0));

    let log = out.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["span"]["request_id"] == request_id.as_str())
        .collect();
    // The failed first call is logged at warn inside the request.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "provider call failed"
                || l["message"] == "provider call failed"),
        "{log}"
    );
    for line in &lines {
        assert_eq!(line["span"]["trace_id"], CLIENT_TRACE, "{line}");
        assert_eq!(line["span"]["name"], "request", "{line}");
    }
    assert!(!log.contains("keel_otel"), "{log}");
}

/// `OTEL_TRACES_SAMPLER_ARG=0`: root requests export nothing (the exporter
/// works: a request whose caller sampled its trace is still exported,
/// parent-based), and shutdown flushes what was queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_ratio_zero_exports_no_root_trace() {
    let rx = receiver().await;
    let (mut keel, _out) = KeelProcess::start_capturing(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.base),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ])
    .await;
    for _ in 0..5 {
        let r = process(&keel, None).await;
        assert_eq!(r.status(), 200);
        let tp = header(&r, "traceparent");
        assert!(tp.ends_with("-00"), "not sampled: {tp:?}");
    }
    let text = scrape(&keel).await;
    assert!(
        !text.contains(" # {"),
        "no exemplar points at an unexported trace:\n{text}"
    );
    let r = process(&keel, Some(&format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(keel.terminate(), Some(0));
    let all = rx.all();
    assert!(!all.is_empty(), "the sampled request was exported");
    assert!(
        all.iter().all(|s| s.trace_id == CLIENT_TRACE),
        "only the caller-sampled trace: {all:#?}"
    );
}

/// A collector that refuses connections, or accepts and never answers:
/// every request still succeeds quickly, the bounded queue drops (and
/// counts) what it cannot hold, and keel still stops promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_a_dead_or_hanging_collector_never_slows_requests() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    for (endpoint, hangs) in [(closed, false), (hanging_url, true)] {
        let (mut keel, _out) = KeelProcess::start_capturing(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ])
        .await;
        for _ in 0..30 {
            let started = Instant::now();
            let r = process(&keel, None).await;
            assert_eq!(r.status(), 200, "{endpoint}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{endpoint}: {:?}",
                started.elapsed()
            );
        }
        // 30 requests make about 60 spans (the repeats are cache hits: no
        // attempt span); while the first export hangs, the 16-span queue is
        // full and the rest are dropped — and counted.
        let metrics = reqwest::get(format!("{}/internal/metrics", keel.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dropped: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("keel_trace_spans_dropped_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{metrics}"));
        if hangs {
            assert!(dropped >= 20, "dropped {dropped}");
        }
        let started = Instant::now();
        assert_eq!(keel.terminate(), Some(0), "{endpoint}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{endpoint}: shutdown took {:?}",
            started.elapsed()
        );
    }
}

/// With a long export interval, the spans still queued when SIGTERM comes
/// are exported before keel exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_are_flushed_on_graceful_shutdown() {
    let rx = receiver().await;
    let mut keel = KeelProcess::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.base),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .await;
    let r = process(&keel, Some(&format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.all().is_empty(), "nothing exported before the interval");
    assert_eq!(keel.terminate(), Some(0));
    let spans = rx.wait_for(CLIENT_TRACE, 3).await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"POST /v1/text_processing/process") && names.contains(&"job summarize"),
        "{names:?}"
    );
    // The local provider's call is an attempt span too.
    let attempt = spans.iter().find(|s| s.kind == KIND_CLIENT).unwrap();
    assert_eq!(attempt.attr("gen_ai.system"), "keel.local");
}

/// Fallback and breaker rejection are events of the job span, and the
/// Gemini upstream receives the `traceparent` of its own attempt span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_fallback_breaker_rejection_and_gemini_propagation() {
    let rx = receiver().await;
    let upstream = fake(FakeLlmConfig::default()).await;
    let openai = upstream.openai_base_url();
    let gemini = upstream.base_url();
    let keel = KeelProcess::start(&[
        ("AI_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &openai),
        ("AI_FALLBACK_PROVIDERS", "gemini"),
        ("GEMINI_BASE_URL", &gemini),
        ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 1}"#),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.base),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ])
    .await;

    // The OpenAI call fails once, with no retry: Gemini answers.
    upstream.set_config(FakeLlmConfig {
        fail_next: 1,
        ..Default::default()
    });
    upstream.reset_stats();
    let trace_a = "11111111111111111111111111111111";
    let r = process(&keel, Some(&format!("00-{trace_a}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status(), 200);
    let spans = rx.wait_for(trace_a, 4).await;
    let job = spans.iter().find(|s| s.name == "job summarize").unwrap();
    assert_eq!(job.attr("keel.degraded"), "true");
    assert_eq!(job.attr("keel.provider"), "gemini");
    let fallback = job.events.iter().find(|(n, _)| n == "fallback").unwrap();
    assert_eq!(fallback.1["from"], "openai");
    assert_eq!(fallback.1["to"], "gemini");
    let mut attempts: Vec<&Got> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
    attempts.sort_by_key(|s| s.attr("keel.attempt").to_string());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert_eq!(attempts[0].attr("gen_ai.system"), "openai");
    assert_eq!(attempts[0].attr("keel.outcome"), "transient");
    assert_eq!(attempts[1].attr("gen_ai.system"), "gcp.gemini");
    assert_eq!(
        attempts[1].attr("gen_ai.operation.name"),
        "generate_content"
    );
    assert_eq!(attempts[1].attr("keel.outcome"), "ok");
    let sent: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{trace_a}-{}-01", a.span_id))
        .collect();
    assert_eq!(upstream.traceparents(), sent, "OpenAI then Gemini");

    // An open breaker refuses the OpenAI call before it starts.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/internal/resilience/circuit-breakers/openai:summarize/force-open",
            keel.base
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let trace_b = "22222222222222222222222222222222";
    let r = process(&keel, Some(&format!("00-{trace_b}-{CLIENT_SPAN}-01"))).await;
    assert_eq!(r.status(), 200);
    let spans = rx.wait_for(trace_b, 3).await;
    let job = spans.iter().find(|s| s.name == "job summarize").unwrap();
    let rejected = job
        .events
        .iter()
        .find(|(n, _)| n == "breaker_rejected")
        .unwrap_or_else(|| panic!("{job:#?}"));
    assert_eq!(rejected.1["provider"], "openai");
    assert_eq!(rejected.1["breaker_state"], "forced_open");
    assert!(job.events.iter().any(|(n, _)| n == "fallback"), "{job:#?}");
    let attempts: Vec<&Got> = spans.iter().filter(|s| s.kind == KIND_CLIENT).collect();
    assert_eq!(attempts.len(), 1, "no call to the open breaker: {spans:#?}");
    assert_eq!(attempts[0].attr("gen_ai.system"), "gcp.gemini");
}

/// An async job's execution is a trace of its own, linked to the span of
/// its submission (`POST /v1/jobs`, joined to the client's trace), with the
/// usual job and attempt spans under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_an_async_job_links_its_execution_to_the_submission() {
    let rx = receiver().await;
    let upstream = fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let mut vars = traced_vars(&base, &rx.base);
    vars.push(("API_KEY", "alpha"));
    vars.push(("JOB_WEBHOOK_BACKOFF_MS", "50"));
    let keel = KeelProcess::start(&vars).await;
    let hook = webhook_receiver().await;
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let http = reqwest::Client::new();
    let mut submitted = body();
    submitted["callback_url"] = json!(format!("{}/hook?token=t0ps3cret", hook.base));
    let r = http
        .post(format!("{}/v1/jobs", keel.base))
        .bearer_auth("alpha")
        .header("traceparent", &client_tp)
        .json(&submitted)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: serde_json::Value = r.json().await.unwrap();
    let id = accepted["job_id"].as_str().unwrap().to_string();
    let (status, job) = keel.get(&format!("/v1/jobs/{id}?wait=10")).await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "succeeded", "{job}");

    let submission = rx.wait_for(CLIENT_TRACE, 1).await;
    let server = submission
        .iter()
        .find(|s| s.kind == KIND_SERVER && s.name == "POST /v1/jobs")
        .unwrap_or_else(|| panic!("no submission span: {submission:#?}"));
    assert_eq!(server.parent, CLIENT_SPAN);
    // The execution: its own trace, linked to the submission's server span.
    let deadline = Instant::now() + Duration::from_secs(10);
    let execution = loop {
        let found = rx
            .all()
            .into_iter()
            .find(|s| s.name == "async job summarize");
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no async job span: {:#?}",
            rx.all()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_ne!(execution.trace_id, CLIENT_TRACE, "a trace of its own");
    assert_eq!(execution.parent, "", "a root span");
    assert_eq!(execution.attr("keel.job_id"), id);
    assert_eq!(
        execution.links,
        vec![(CLIENT_TRACE.to_string(), server.span_id.clone())],
        "linked to the submission"
    );
    let spans = rx.wait_for(&execution.trace_id, 3).await;
    let job_span = spans
        .iter()
        .find(|s| s.name == "job summarize")
        .unwrap_or_else(|| panic!("no job span: {spans:#?}"));
    assert_eq!(job_span.parent, execution.span_id);
    assert!(
        spans
            .iter()
            .any(|s| s.kind == KIND_CLIENT && s.parent == job_span.span_id),
        "an attempt span under the job: {spans:#?}"
    );

    // The webhook: the receiver answers 500, then 200; each POST is a client
    // span under the execution, and the receiver gets its `traceparent`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hooks: Vec<Got> = loop {
        let found: Vec<Got> = rx
            .all()
            .into_iter()
            .filter(|s| s.trace_id == execution.trace_id && s.attr("keel.job_id") == id)
            .filter(|s| s.span_id != execution.span_id)
            .collect();
        if found.len() >= 2 || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    hooks.sort_by_key(|s| s.attr("keel.attempt").to_string());
    assert_eq!(hooks.len(), 2, "two webhook POSTs: {hooks:#?}");
    for (i, h) in hooks.iter().enumerate() {
        assert_eq!(h.name, "POST");
        assert_eq!(h.kind, KIND_CLIENT);
        assert_eq!(h.parent, execution.span_id, "a child of the execution");
        assert_eq!(h.attr("keel.attempt"), (i + 1).to_string());
        assert_eq!(h.attr("http.request.method"), "POST");
        assert_eq!(h.attr("server.address"), "127.0.0.1");
        assert_eq!(h.attr("url.path"), "/hook");
        assert!(
            !h.attrs.values().any(|v| v.contains("t0ps3cret")),
            "the query stays out of the span: {h:#?}"
        );
    }
    assert_eq!(hooks[0].attr("http.response.status_code"), "500");
    assert_eq!(hooks[0].attr("error.type"), "500");
    assert_eq!(hooks[1].attr("http.response.status_code"), "200");
    let expected: Vec<String> = hooks
        .iter()
        .map(|h| format!("00-{}-{}-01", execution.trace_id, h.span_id))
        .collect();
    assert_eq!(*hook.traceparents.lock().unwrap(), expected);
}

/// A webhook receiver that answers 500 to the first POST and 200 after,
/// keeping each POST's `traceparent`.
struct WebhookReceiver {
    base: String,
    traceparents: Arc<Mutex<Vec<String>>>,
}

async fn webhook_receiver() -> WebhookReceiver {
    let traceparents = Arc::new(Mutex::new(Vec::new()));
    let seen = traceparents.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let tp = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut seen = seen.lock().unwrap();
                seen.push(tp);
                if seen.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    WebhookReceiver { base, traceparents }
}
