//! A fake LLM upstream: a real HTTP server speaking the OpenAI
//! chat-completions and Gemini generateContent wire formats, with injectable
//! faults (latency, errors, 429s, hangs, malformed and empty answers).
//!
//! keel's integration tests start it in-process with [`FakeLlm::spawn`] on
//! `127.0.0.1:0`; the `fake_llm` binary (this crate) wraps it in a CLI for demos and load
//! benchmarks. Answers are deterministic functions of the prompt (see
//! `answers.rs`), and fault selection is driven by a seeded PRNG, so a run
//! with a given seed and request order is reproducible.
//!
//! Invariants:
//! - The hot path takes no lock: configuration is read through an
//!   [`ArcSwap`], counters and the PRNG are atomics.
//! - Per request, faults are decided in a fixed order: auth, shape
//!   validation, `fail_next`, then one random draw over the cumulative rates
//!   hang → error → rate limit → malformed → empty → ok.
//! - `in_flight` is maintained by a drop guard, so it also goes down when a
//!   handler future is dropped (client disconnect during a hang or latency).
//! - Control endpoints (`/_fake/*`, `/health`) are never counted in stats.
//! - Nothing panics on any input; bind errors are returned to the caller.

mod answers;
mod wire;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use wire::{ErrorKind, Parsed, Provider, Usage};

/// How long a "hung" request sleeps before giving up; effectively forever
/// for any client, yet bounded so a forgotten server cannot leak forever.
const HANG_DURATION: Duration = Duration::from_secs(3600);
/// How long [`FakeLlmHandle::shutdown`] waits for in-flight requests before
/// aborting the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Seed used when the configured seed is 0, so "no seed" is still
/// deterministic.
const DEFAULT_SEED: u64 = 0x0DDB_1A5E_5BAD_5EED;
/// Splitmix64 increment (the golden ratio in fixed point).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Fault-injection and behaviour settings; every field has a default, so a
/// partial JSON document (e.g. `PUT /_fake/config`) is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FakeLlmConfig {
    /// Base latency added to every completion request, in milliseconds.
    pub latency_ms: u64,
    /// Extra latency drawn uniformly from `0..=jitter_ms` per request.
    pub jitter_ms: u64,
    /// Fraction of requests answered with `error_status` (0.0..=1.0).
    pub error_rate: f64,
    /// HTTP status used for injected errors and `fail_next` (default 500).
    pub error_status: u16,
    /// Fraction of requests answered 429 with a `Retry-After` header.
    pub rate_limit_rate: f64,
    /// Value of the `Retry-After` header on injected 429s, in seconds.
    pub retry_after_secs: u64,
    /// Fraction of requests that never answer (sleep ~1h; the handler is
    /// dropped when the client goes away or the server shuts down).
    pub hang_rate: f64,
    /// Fraction answered 200 with a truncated, invalid JSON body.
    pub malformed_rate: f64,
    /// Fraction answered 200 with valid wire JSON but empty content `""`.
    pub empty_rate: f64,
    /// The next N requests (after auth and shape checks) fail with
    /// `error_status` regardless of rates; decremented atomically. Reading
    /// the config back reports how many are left.
    pub fail_next: u32,
    /// PRNG seed for fault choice and jitter (0 = a fixed default seed).
    /// Setting a config restarts the sequence from this seed.
    pub seed: u64,
    /// When set, completion requests must carry this key (OpenAI:
    /// `Authorization: Bearer KEY`; Gemini: `x-goog-api-key` or `?key=`),
    /// otherwise they get 401 in the provider's error format.
    pub api_key: Option<String>,
    /// Status answered to model-metadata `GET`s (`/v1/models`,
    /// `/v1beta/models/{model}`: keel's upstream health probes); 200 by
    /// default. Probes ignore the other faults and never consume
    /// `fail_next`, so they cannot disturb what a test counts.
    pub probe_status: u16,
}

impl Default for FakeLlmConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            empty_rate: 0.0,
            fail_next: 0,
            seed: 0,
            api_key: None,
            probe_status: 200,
        }
    }
}

/// A snapshot of the server's counters (`GET /_fake/stats`).
///
/// Outcome counters (`ok`, `errors`, ...) are disjoint and counted when the
/// response is produced (after latency), except `hangs`, counted when the
/// hang starts; a request dropped during its latency only shows in
/// `requests_total`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeLlmStats {
    /// Completion requests received (both formats, any outcome).
    pub requests_total: u64,
    /// Requests on the OpenAI chat-completions endpoints.
    pub openai_requests: u64,
    /// Requests on the Gemini generateContent endpoint (incl. unknown actions).
    pub gemini_requests: u64,
    /// Requests currently being handled (a live gauge; not reset).
    pub in_flight: u64,
    /// Requests answered 200 with a real answer.
    pub ok: u64,
    /// Requests answered with the injected error status (rates or `fail_next`).
    pub errors: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests that started hanging.
    pub hangs: u64,
    /// Requests answered with a truncated, invalid JSON body.
    pub malformed: u64,
    /// Requests answered with empty content.
    pub empty: u64,
    /// Requests rejected for a missing or wrong API key.
    pub unauthorized: u64,
    /// Requests rejected for a bad shape (400) or unknown Gemini action (404).
    pub bad_requests: u64,
    /// Estimated prompt tokens of `ok` and `empty` answers.
    pub prompt_tokens: u64,
    /// Estimated completion tokens of `ok` answers.
    pub completion_tokens: u64,
    /// Model-metadata `GET`s (health probes), any outcome; not part of
    /// `requests_total`.
    #[serde(default)]
    pub probes: u64,
}

/// Lock-free counters behind [`FakeLlmStats`]; `in_flight` lives apart
/// because it is a gauge that reset must not touch.
#[derive(Debug, Default)]
struct Counters {
    requests_total: AtomicU64,
    openai_requests: AtomicU64,
    gemini_requests: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
    hangs: AtomicU64,
    malformed: AtomicU64,
    empty: AtomicU64,
    unauthorized: AtomicU64,
    bad_requests: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    probes: AtomicU64,
}

impl Counters {
    fn all(&self) -> [&AtomicU64; 14] {
        [
            &self.requests_total,
            &self.openai_requests,
            &self.gemini_requests,
            &self.ok,
            &self.errors,
            &self.rate_limited,
            &self.hangs,
            &self.malformed,
            &self.empty,
            &self.unauthorized,
            &self.bad_requests,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.probes,
        ]
    }
}

/// Bump a counter; relaxed ordering is enough for statistics.
fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Shared state of one fake server: config, counters, PRNG and the shutdown
/// signal. Create it with [`FakeLlmState::new`] to embed [`FakeLlm::router`]
/// in your own server; [`FakeLlm::spawn`] does that for you.
#[derive(Debug)]
pub struct FakeLlmState {
    config: ArcSwap<FakeLlmConfig>,
    /// Authoritative `fail_next` count (the copy inside `config` is ignored
    /// on the hot path so it can be decremented without swapping configs).
    fail_next: AtomicU32,
    /// Splitmix64 state; each draw is one `fetch_add`, so concurrent
    /// requests never contend on a lock.
    rng: AtomicU64,
    /// Source of `chatcmpl-<n>` ids.
    next_id: AtomicU64,
    counters: Counters,
    in_flight: AtomicU64,
    /// Flipped to `true` on shutdown: stops the server gracefully and wakes
    /// hung requests so graceful shutdown does not wait an hour.
    shutdown: watch::Sender<bool>,
    /// The `traceparent` headers of the last completion requests (oldest
    /// first, at most [`TRACEPARENTS_KEPT`]), so tests can check that keel
    /// propagates its trace upstream.
    traceparents: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// How many `traceparent` headers [`FakeLlmState`] remembers.
pub const TRACEPARENTS_KEPT: usize = 64;

impl FakeLlmState {
    /// Fresh state with zeroed counters.
    pub fn new(config: FakeLlmConfig) -> Arc<Self> {
        let state = Self {
            config: ArcSwap::from_pointee(FakeLlmConfig::default()),
            fail_next: AtomicU32::new(0),
            rng: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            in_flight: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
            traceparents: std::sync::Mutex::new(std::collections::VecDeque::new()),
        };
        state.set_config(config);
        Arc::new(state)
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> FakeLlmStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FakeLlmStats {
            requests_total: load(&c.requests_total),
            openai_requests: load(&c.openai_requests),
            gemini_requests: load(&c.gemini_requests),
            in_flight: load(&self.in_flight),
            ok: load(&c.ok),
            errors: load(&c.errors),
            rate_limited: load(&c.rate_limited),
            hangs: load(&c.hangs),
            malformed: load(&c.malformed),
            empty: load(&c.empty),
            unauthorized: load(&c.unauthorized),
            bad_requests: load(&c.bad_requests),
            prompt_tokens: load(&c.prompt_tokens),
            completion_tokens: load(&c.completion_tokens),
            probes: load(&c.probes),
        }
    }

    /// Zero every counter except the live `in_flight` gauge (zeroing it would
    /// underflow when the in-flight requests finish).
    pub fn reset_stats(&self) {
        for counter in self.counters.all() {
            counter.store(0, Ordering::Relaxed);
        }
        if let Ok(mut kept) = self.traceparents.lock() {
            kept.clear();
        }
    }

    /// The `traceparent` headers of the last completion requests, oldest first
    /// (`GET /_fake/traceparents`).
    pub fn traceparents(&self) -> Vec<String> {
        self.traceparents
            .lock()
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Remembers the request's `traceparent`, if it has one.
    fn record_traceparent(&self, headers: &HeaderMap) {
        let Some(value) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Ok(mut kept) = self.traceparents.lock() {
            if kept.len() >= TRACEPARENTS_KEPT {
                kept.pop_front();
            }
            kept.push_back(value.to_string());
        }
    }

    /// The current config; `fail_next` reports how many forced failures are
    /// still pending.
    pub fn config(&self) -> FakeLlmConfig {
        let mut config = FakeLlmConfig::clone(&self.config.load());
        config.fail_next = self.fail_next.load(Ordering::Acquire);
        config
    }

    /// Replace the config at runtime; takes effect for requests that start
    /// afterwards. Also re-arms `fail_next` and restarts the PRNG from `seed`.
    pub fn set_config(&self, config: FakeLlmConfig) {
        let seed = if config.seed == 0 {
            DEFAULT_SEED
        } else {
            config.seed
        };
        self.rng.store(seed, Ordering::Relaxed);
        self.fail_next.store(config.fail_next, Ordering::Release);
        self.config.store(Arc::new(config));
    }

    /// Next pseudo-random u64 (splitmix64 over an atomic counter).
    fn next_u64(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform f64 in `[0, 1)` from the top 53 bits.
    fn next_unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Latency for this request: base plus uniform `0..=jitter`.
    fn delay(&self, config: &FakeLlmConfig) -> Duration {
        let jitter = match config.jitter_ms {
            0 => 0,
            j => self.next_u64() % j.saturating_add(1),
        };
        Duration::from_millis(config.latency_ms.saturating_add(jitter))
    }

    /// Consume one forced failure if any are pending.
    fn take_fail_next(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Decide the outcome of a completion request (no I/O, no await).
    fn decide(&self, config: &FakeLlmConfig, req: &Incoming<'_>) -> Decision {
        if let Some(message) = &req.route_error {
            return Decision::NotFound(message.clone());
        }
        if let Some(expected) = config.api_key.as_deref()
            && req.presented_key != Some(expected)
        {
            return Decision::Unauthorized;
        }
        let parsed = match req.provider {
            Provider::OpenAi => wire::parse_openai(req.body),
            Provider::Gemini => wire::parse_gemini(req.body, req.path_model),
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(message) => return Decision::BadRequest(message),
        };
        let error_status =
            StatusCode::from_u16(config.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.take_fail_next() {
            return Decision::Error(error_status);
        }
        // One draw, cumulative thresholds: rates are clamped so NaN or
        // negative values mean "never", and a sum above 1 starves the later
        // faults rather than misbehaving.
        let draw = self.next_unit();
        let mut threshold = 0.0;
        let mut hit = |rate: f64| {
            threshold += if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            };
            draw < threshold
        };
        if hit(config.hang_rate) {
            Decision::Hang
        } else if hit(config.error_rate) {
            Decision::Error(error_status)
        } else if hit(config.rate_limit_rate) {
            Decision::RateLimited(config.retry_after_secs)
        } else if hit(config.malformed_rate) {
            Decision::Malformed(parsed)
        } else if hit(config.empty_rate) {
            Decision::Empty(parsed)
        } else {
            Decision::Ok(parsed)
        }
    }
}

/// What the server will do with one completion request.
#[derive(Debug)]
enum Decision {
    NotFound(String),
    Unauthorized,
    BadRequest(String),
    Error(StatusCode),
    RateLimited(u64),
    Hang,
    Malformed(Parsed),
    Empty(Parsed),
    Ok(Parsed),
}

/// A completion request as seen by the provider-neutral pipeline.
struct Incoming<'a> {
    provider: Provider,
    /// Set when the route itself is wrong (e.g. unknown Gemini action).
    route_error: Option<String>,
    /// The API key the client presented, if any.
    presented_key: Option<&'a str>,
    body: &'a [u8],
    /// Model from the URL (Gemini); empty for OpenAI.
    path_model: &'a str,
}

/// Counts a request as started and in flight; decrements `in_flight` on
/// drop, which also happens when hyper drops the handler future because the
/// client went away.
struct InFlightGuard<'a>(&'a FakeLlmState);

impl<'a> InFlightGuard<'a> {
    fn enter(state: &'a FakeLlmState, provider: Provider) -> Self {
        bump(&state.counters.requests_total, 1);
        match provider {
            Provider::OpenAi => bump(&state.counters.openai_requests, 1),
            Provider::Gemini => bump(&state.counters.gemini_requests, 1),
        }
        bump(&state.in_flight, 1);
        Self(state)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run one completion request through auth, validation, fault injection,
/// latency and answer generation.
async fn complete(state: &FakeLlmState, req: Incoming<'_>) -> Response {
    let _guard = InFlightGuard::enter(state, req.provider);
    // Read the config once and drop the guard before awaiting: arc-swap
    // guards are meant to be short-lived.
    let (decision, delay) = {
        let config = state.config.load();
        let decision = state.decide(&config, &req);
        (decision, state.delay(&config))
    };
    if matches!(decision, Decision::Hang) {
        bump(&state.counters.hangs, 1);
        let mut stop = state.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(HANG_DURATION) => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
        return error_response(
            req.provider,
            &ErrorKind::Upstream(StatusCode::SERVICE_UNAVAILABLE),
        );
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    respond(state, req.provider, decision)
}

/// Turn a decision into a response and count its outcome.
fn respond(state: &FakeLlmState, provider: Provider, decision: Decision) -> Response {
    let c = &state.counters;
    match decision {
        Decision::NotFound(message) => {
            bump(&c.bad_requests, 1);
            error_response(provider, &ErrorKind::NotFound(&message))
        }
        Decision::Unauthorized => {
            bump(&c.unauthorized, 1);
            error_response(provider, &ErrorKind::Unauthorized)
        }
        Decision::BadRequest(message) => {
            bump(&c.bad_requests, 1);
            error_response(provider, &ErrorKind::BadRequest(&message))
        }
        Decision::Error(status) => {
            bump(&c.errors, 1);
            error_response(provider, &ErrorKind::Upstream(status))
        }
        Decision::RateLimited(retry_after_secs) => {
            bump(&c.rate_limited, 1);
            let mut response =
                error_response(provider, &ErrorKind::RateLimited { retry_after_secs });
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        // Hang is handled in `complete`; answering it here keeps the match
        // total without a panic path.
        Decision::Hang => error_response(
            provider,
            &ErrorKind::Upstream(StatusCode::SERVICE_UNAVAILABLE),
        ),
        Decision::Malformed(parsed) => {
            bump(&c.malformed, 1);
            let text = answers::answer(&parsed.prompt, &parsed.last_message);
            let usage = usage_for(&parsed, &text);
            let body = success(state, provider, &parsed, &text, usage);
            json_response(StatusCode::OK, wire::truncate_body(body))
        }
        Decision::Empty(parsed) => {
            bump(&c.empty, 1);
            let usage = usage_for(&parsed, "");
            bump(&c.prompt_tokens, usage.prompt);
            json_response(StatusCode::OK, success(state, provider, &parsed, "", usage))
        }
        Decision::Ok(parsed) => {
            bump(&c.ok, 1);
            let text = answers::answer(&parsed.prompt, &parsed.last_message);
            let usage = usage_for(&parsed, &text);
            bump(&c.prompt_tokens, usage.prompt);
            bump(&c.completion_tokens, usage.completion);
            json_response(
                StatusCode::OK,
                success(state, provider, &parsed, &text, usage),
            )
        }
    }
}

fn usage_for(parsed: &Parsed, text: &str) -> Usage {
    Usage {
        prompt: answers::estimate_tokens(&parsed.prompt),
        completion: answers::estimate_tokens(text),
    }
}

fn success(
    state: &FakeLlmState,
    provider: Provider,
    parsed: &Parsed,
    text: &str,
    usage: Usage,
) -> Vec<u8> {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    wire::success_body(provider, id, created, &parsed.model, text, usage)
}

fn error_response(provider: Provider, kind: &ErrorKind<'_>) -> Response {
    let (status, body) = wire::error_body(provider, kind);
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- handlers

/// `POST /v1/chat/completions` and `POST /chat/completions`.
async fn openai_chat(
    State(state): State<Arc<FakeLlmState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record_traceparent(&headers);
    let presented_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let req = Incoming {
        provider: Provider::OpenAi,
        route_error: None,
        presented_key,
        body: &body,
        path_model: "",
    };
    complete(&state, req).await
}

/// `POST /v1beta/models/{model}:{action}`; only `generateContent` exists.
async fn gemini_generate(
    State(state): State<Arc<FakeLlmState>>,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record_traceparent(&headers);
    // axum 0.8 captures the whole `model:action` segment; split it ourselves.
    let (model, route_error) = match model_action.rsplit_once(':') {
        Some((model, "generateContent")) if !model.is_empty() => (model, None),
        Some((model, action)) => (
            model,
            Some(format!("Method not found: models/{model}:{action}")),
        ),
        None => (
            model_action.as_str(),
            Some(format!("Method not found: models/{model_action}")),
        ),
    };
    // The key may be a header or a `key=` query parameter; keys are plain
    // ASCII so no percent-decoding is attempted.
    let presented_key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            query.as_deref().and_then(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .find_map(|(k, v)| (k == "key").then_some(v))
            })
        });
    let req = Incoming {
        provider: Provider::Gemini,
        route_error,
        presented_key,
        body: &body,
        path_model: model,
    };
    complete(&state, req).await
}

/// `GET /v1/models` and `GET /models`: the OpenAI model list (keel's
/// health probe). Answers `probe_status`; checks the key like a completion.
async fn openai_models(State(state): State<Arc<FakeLlmState>>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    probe(
        &state,
        Provider::OpenAi,
        presented,
        || json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "keel-testkit"}]}),
    )
}

/// `GET /v1beta/models/{model}`: one Gemini model's metadata (keel's health
/// probe). Answers `probe_status`; checks the key like a completion.
async fn gemini_model(
    State(state): State<Arc<FakeLlmState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Response {
    let presented = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    probe(
        &state,
        Provider::Gemini,
        presented,
        || json!({"name": format!("models/{model}"), "displayName": model, "supportedGenerationMethods": ["generateContent"]}),
    )
}

/// A health probe: counted apart, key checked, then `probe_status`.
fn probe(
    state: &FakeLlmState,
    provider: Provider,
    presented_key: Option<&str>,
    body: impl FnOnce() -> serde_json::Value,
) -> Response {
    bump(&state.counters.probes, 1);
    let config = state.config();
    if config
        .api_key
        .as_deref()
        .is_some_and(|want| presented_key != Some(want))
    {
        return error_response(provider, &ErrorKind::Unauthorized);
    }
    match StatusCode::from_u16(config.probe_status) {
        Ok(StatusCode::OK) | Err(_) => {
            json_response(StatusCode::OK, body().to_string().into_bytes())
        }
        Ok(status) => error_response(provider, &ErrorKind::Upstream(status)),
    }
}

/// `GET /health`.
async fn health() -> &'static str {
    "ok"
}

/// `GET /_fake/traceparents`: the last `traceparent` headers received.
async fn get_traceparents(State(state): State<Arc<FakeLlmState>>) -> Json<Vec<String>> {
    Json(state.traceparents())
}

/// `GET /_fake/stats`.
async fn get_stats(State(state): State<Arc<FakeLlmState>>) -> Json<FakeLlmStats> {
    Json(state.stats())
}

/// `GET /_fake/config`.
async fn get_config(State(state): State<Arc<FakeLlmState>>) -> Json<FakeLlmConfig> {
    Json(state.config())
}

/// `PUT /_fake/config` with a full (missing fields default) config.
async fn put_config(
    State(state): State<Arc<FakeLlmState>>,
    Json(config): Json<FakeLlmConfig>,
) -> Json<FakeLlmConfig> {
    state.set_config(config);
    Json(state.config())
}

/// `POST /_fake/reset`: zero the counters, answer with the fresh snapshot.
async fn reset(State(state): State<Arc<FakeLlmState>>) -> Json<FakeLlmStats> {
    state.reset_stats();
    Json(state.stats())
}

/// Unknown routes: a JSON 404 (not counted in stats).
async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        br#"{"error":{"code":404,"message":"Not found","status":"NOT_FOUND"}}"#.to_vec(),
    )
}

// ----------------------------------------------------------------- server

/// Entry points: spawn a server or build its router.
#[derive(Debug, Clone, Copy)]
pub struct FakeLlm;

impl FakeLlm {
    /// Bind `addr` (use `127.0.0.1:0` for a free port) and serve in a spawned
    /// tokio task. Keep the returned handle: dropping it stops the server.
    pub async fn spawn(addr: SocketAddr, config: FakeLlmConfig) -> std::io::Result<FakeLlmHandle> {
        let state = FakeLlmState::new(config);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Small JSON answers: without TCP_NODELAY, Nagle can add latency
        // that would pollute benchmarks.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::trace!("fake_llm: failed to set TCP_NODELAY: {err}");
            }
        });
        let app = Self::router(Arc::clone(&state));
        let mut stop = state.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let signal = async move {
                // Err means the sender is gone, which also means "stop".
                let _ = stop.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!("fake_llm server error: {err}");
            }
        });
        tracing::debug!("fake_llm listening on http://{addr}");
        Ok(FakeLlmHandle {
            addr,
            state,
            task: Some(task),
        })
    }

    /// The axum router alone (for `oneshot` tests or embedding in another
    /// server). Hung requests are released when `state` is shut down via a
    /// handle; an embedded router's hangs just run their ~1h course.
    pub fn router(state: Arc<FakeLlmState>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/chat/completions", post(openai_chat))
            .route("/v1/models", get(openai_models))
            .route("/models", get(openai_models))
            .route(
                "/v1beta/models/{model_action}",
                post(gemini_generate).get(gemini_model),
            )
            .route("/health", get(health))
            .route("/_fake/stats", get(get_stats))
            .route("/_fake/traceparents", get(get_traceparents))
            .route("/_fake/config", get(get_config).put(put_config))
            .route("/_fake/reset", post(reset))
            .fallback(not_found)
            .with_state(state)
    }
}

/// A running fake server. Dropping it starts a graceful shutdown in the
/// background; [`FakeLlmHandle::shutdown`] waits for it.
#[derive(Debug)]
pub struct FakeLlmHandle {
    addr: SocketAddr,
    state: Arc<FakeLlmState>,
    task: Option<JoinHandle<()>>,
}

impl FakeLlmHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`; Gemini clients append `/v1beta/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://HOST:PORT/v1`, the OpenAI-style base URL.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The shared state (the same one the router serves).
    pub fn state(&self) -> &Arc<FakeLlmState> {
        &self.state
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> FakeLlmStats {
        self.state.stats()
    }

    /// Replace the config at runtime (see [`FakeLlmState::set_config`]).
    pub fn set_config(&self, config: FakeLlmConfig) {
        self.state.set_config(config);
    }

    /// The current config (`fail_next` = forced failures still pending).
    pub fn config(&self) -> FakeLlmConfig {
        self.state.config()
    }

    /// Zero the counters (except the live `in_flight` gauge).
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// The last `traceparent` headers received, oldest first.
    pub fn traceparents(&self) -> Vec<String> {
        self.state.traceparents()
    }

    /// Stop accepting connections, release hung requests and wait for
    /// in-flight ones; after a grace period the server task is aborted.
    pub async fn shutdown(mut self) {
        self.state.shutdown.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for FakeLlmHandle {
    fn drop(&mut self) {
        // Idempotent; the server finishes its graceful shutdown on its own.
        self.state.shutdown.send_replace(true);
    }
}
