//! The metrics registry: lock-free counters and latency histograms written on
//! the request path, read by the [`crate::actors::metrics::MetricsAggregator`].
//!
//! Invariant: request tasks only ever *add* to these atomics (like Prometheus
//! counters); everything else — windows, rates, resets, snapshots — is done by
//! the aggregator actor. Recording a request costs a few atomic adds, never a
//! lock or a mailbox round trip.
//!
//! keel's metrics live in four places, one job each (start here):
//! - `crate::metrics` (this module): the registry, the atomics request tasks
//!   write;
//! - `crate::actors::metrics`: the aggregator actor that reads the registry
//!   into windowed snapshots for the operator endpoints and owns the reset;
//! - `crate::actors::metrics_history`: the time series that actor samples
//!   (`/internal/metrics/history`, the dashboard's charts);
//! - `crate::exposition`: the Prometheus/OpenMetrics text of the registry
//!   (`/internal/metrics`), read at scrape time.

use crate::job::Operation;
use crate::providers::{ErrorClass, ProviderKind};
use crate::telemetry::TraceRef;
use dashmap::DashMap;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Upper bounds of the latency buckets, in microseconds (roughly ×1.5 apart,
/// 50 µs to 5 min); one overflow bucket follows.
const BUCKET_BOUNDS_US: [u64; 40] = [
    50,
    75,
    110,
    170,
    250,
    380,
    570,
    850,
    1_300,
    1_900,
    2_900,
    4_300,
    6_500,
    9_800,
    15_000,
    22_000,
    33_000,
    50_000,
    75_000,
    110_000,
    170_000,
    250_000,
    380_000,
    570_000,
    850_000,
    1_300_000,
    1_900_000,
    2_900_000,
    4_300_000,
    6_500_000,
    9_800_000,
    15_000_000,
    22_000_000,
    33_000_000,
    50_000_000,
    75_000_000,
    110_000_000,
    170_000_000,
    250_000_000,
    300_000_000,
];

/// One observation kept as an exemplar of its bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The trace of the observation.
    pub trace: TraceRef,
    /// The observed latency.
    pub value: Duration,
    /// When it was recorded (wall clock: exemplars carry a Unix timestamp).
    pub at: SystemTime,
}

/// Per-bucket exemplar slots of one histogram.
type ExemplarSlots = [Mutex<Option<Exemplar>>; BUCKET_BOUNDS_US.len() + 1];

/// A fixed-bucket latency histogram safe to record from many threads.
///
/// With tracing on, each bucket also keeps the latest traced observation as
/// an exemplar. The slots are allocated on the first traced observation, so
/// a histogram of an untraced process carries one empty pointer; a traced
/// observation costs one uncontended `try_lock` (a busy slot skips the
/// exemplar rather than wait).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    exemplars: OnceLock<Box<ExemplarSlots>>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            exemplars: OnceLock::new(),
        }
    }
}

/// Percentiles and mean of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LatencySummary {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub avg_ms: f64,
    /// Median (bucket-interpolated).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        self.record_bucket(d);
    }

    /// Records one observation made inside the exported trace `trace`
    /// (`None`: tracing off or the span not sampled), keeping it as its
    /// bucket's exemplar.
    pub fn record_traced(&self, d: Duration, trace: Option<TraceRef>) {
        let idx = self.record_bucket(d);
        let Some(trace) = trace else { return };
        let slots = self
            .exemplars
            .get_or_init(|| Box::new(std::array::from_fn(|_| Mutex::new(None))));
        if let Ok(mut slot) = slots[idx].try_lock() {
            *slot = Some(Exemplar {
                trace,
                value: d,
                at: SystemTime::now(),
            });
        }
    }

    /// Counts `d` in its bucket and returns the bucket's index.
    fn record_bucket(&self, d: Duration) -> usize {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = BUCKET_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        idx
    }

    /// Clears every bucket and exemplar (used by metric resets).
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.sum_us.store(0, Relaxed);
        if let Some(slots) = self.exemplars.get() {
            for slot in slots.iter() {
                if let Ok(mut slot) = slot.lock() {
                    *slot = None;
                }
            }
        }
    }

    /// The upper bounds of the buckets in seconds, `+Inf` last.
    pub fn upper_bounds() -> impl Iterator<Item = f64> {
        BUCKET_BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
    }

    /// Cumulative `(upper bound in seconds, count)` pairs and the sum in
    /// seconds, as Prometheus histograms want them (`+Inf` last).
    pub fn cumulative(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BUCKET_BOUNDS_US.len() + 1);
        for (b, upper) in self.buckets.iter().zip(Self::upper_bounds()) {
            total += b.load(Relaxed);
            buckets.push((upper, total));
        }
        (buckets, self.sum_us.load(Relaxed) as f64 / 1e6, total)
    }

    /// The exemplar of each bucket (same order as [`Self::cumulative`]);
    /// all `None` until a traced observation was recorded.
    pub fn exemplars(&self) -> Vec<Option<Exemplar>> {
        match self.exemplars.get() {
            None => vec![None; BUCKET_BOUNDS_US.len() + 1],
            Some(slots) => slots
                .iter()
                .map(|slot| slot.lock().ok().and_then(|e| *e))
                .collect(),
        }
    }

    /// The raw per-bucket counts (not cumulative), for deltas between two
    /// readings (the aggregator's time series).
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    /// Summarises the current distribution.
    pub fn summary(&self) -> LatencySummary {
        let counts = self.bucket_counts();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return LatencySummary::default();
        }
        let quantile = |q: f64| quantile_ms(&counts, q).unwrap_or(0.0);
        LatencySummary {
            count,
            avg_ms: self.sum_us.load(Relaxed) as f64 / count as f64 / 1000.0,
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
        }
    }
}

/// The `q` quantile (0..=1) in milliseconds of per-bucket `counts` (as from
/// [`LatencyHistogram::bucket_counts`], or a difference of two), linearly
/// interpolated inside its bucket; `None` without observations.
pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let count: u64 = counts.iter().sum();
    if count == 0 {
        return None;
    }
    let rank = (q * count as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        if seen + c >= rank {
            let lower = if i == 0 { 0 } else { BUCKET_BOUNDS_US[i - 1] };
            let upper = BUCKET_BOUNDS_US.get(i).copied().unwrap_or(lower * 2);
            let within = (rank - seen) as f64 / c as f64;
            return Some((lower as f64 + (upper - lower) as f64 * within) / 1000.0);
        }
        seen += c;
    }
    None
}

/// Counters for one operation, over every provider.
#[derive(Debug, Default)]
pub struct OperationStats {
    /// Jobs started.
    pub requests: AtomicU64,
    /// Jobs answered.
    pub succeeded: AtomicU64,
    /// Jobs that ended in an error.
    pub failed: AtomicU64,
    /// Jobs answered by a fallback provider.
    pub degraded: AtomicU64,
    /// End-to-end job latency.
    pub latency: LatencyHistogram,
}

/// Counters for one provider.
#[derive(Debug, Default)]
pub struct ProviderStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that answered.
    pub successes: AtomicU64,
    /// Calls that failed transiently.
    pub transient_failures: AtomicU64,
    /// Calls that failed permanently.
    pub permanent_failures: AtomicU64,
    /// Prompt tokens reported by the upstream.
    pub prompt_tokens: AtomicU64,
    /// Completion tokens reported by the upstream.
    pub completion_tokens: AtomicU64,
    /// Per-call latency.
    pub latency: LatencyHistogram,
}

/// What the resilience layer did, over all providers and operations.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ResilienceCounters {
    /// Attempts after the first (retries).
    #[schema(value_type = u64)]
    pub retries: AtomicU64,
    /// Backoff sleeps taken.
    #[schema(value_type = u64)]
    pub backoffs: AtomicU64,
    /// Times a job moved on to a fallback provider.
    #[schema(value_type = u64)]
    pub fallbacks: AtomicU64,
    /// Calls refused by an open breaker.
    #[schema(value_type = u64)]
    pub breaker_rejections: AtomicU64,
    /// Calls refused by a full bulkhead.
    #[schema(value_type = u64)]
    pub bulkhead_rejections: AtomicU64,
    /// Retries refused by the retry budget.
    #[schema(value_type = u64)]
    pub budget_refusals: AtomicU64,
    /// Jobs that ran out of deadline.
    #[schema(value_type = u64)]
    pub deadline_exceeded: AtomicU64,
    /// Hedged calls started (a call still running after the hedge delay).
    #[schema(value_type = u64)]
    pub hedges_started: AtomicU64,
    /// Hedged calls whose answer won (came before the call they hedged).
    #[schema(value_type = u64)]
    pub hedges_won: AtomicU64,
}

/// Counters for one HTTP route (its matched path, e.g. `/v1/text_processing/process`).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Answers with a 4xx status.
    pub client_errors: AtomicU64,
    /// Answers with a 5xx status.
    pub server_errors: AtomicU64,
    /// Answers per status code.
    pub statuses: DashMap<u16, AtomicU64>,
    /// Time to answer.
    pub latency: LatencyHistogram,
}

/// The shared registry; one per engine.
#[derive(Debug, Default)]
pub struct Metrics {
    operations: [OperationStats; 5],
    providers: [ProviderStats; 3],
    restarts: DashMap<String, AtomicU64>,
    /// Resilience actions (retries, fallbacks, rejections...).
    pub resilience: ResilienceCounters,
    /// keel's own time per job: handler time minus time spent in providers.
    pub overhead: LatencyHistogram,
    routes: DashMap<String, std::sync::Arc<RouteStats>>,
}

fn op_index(op: Operation) -> usize {
    match op {
        Operation::Summarize => 0,
        Operation::Sentiment => 1,
        Operation::KeyPoints => 2,
        Operation::Questions => 3,
        Operation::Qa => 4,
    }
}

fn provider_index(kind: ProviderKind) -> usize {
    match kind {
        ProviderKind::Local => 0,
        ProviderKind::OpenAi => 1,
        ProviderKind::Gemini => 2,
    }
}

impl Metrics {
    /// Counters of one operation.
    pub fn operation(&self, op: Operation) -> &OperationStats {
        &self.operations[op_index(op)]
    }

    /// Counters of one provider.
    pub fn provider(&self, kind: ProviderKind) -> &ProviderStats {
        &self.providers[provider_index(kind)]
    }

    /// Records the end of one provider call.
    pub fn record_call(
        &self,
        kind: ProviderKind,
        elapsed: Duration,
        outcome: Result<(), ErrorClass>,
        trace: Option<TraceRef>,
    ) {
        let p = self.provider(kind);
        p.calls.fetch_add(1, Relaxed);
        p.latency.record_traced(elapsed, trace);
        match outcome {
            Ok(()) => p.successes.fetch_add(1, Relaxed),
            Err(ErrorClass::Transient) => p.transient_failures.fetch_add(1, Relaxed),
            Err(ErrorClass::Permanent) => p.permanent_failures.fetch_add(1, Relaxed),
        };
    }

    /// Records one answered HTTP request on `route` (a matched path, so the
    /// number of distinct routes is bounded by the router); `trace` is the
    /// request's server span when it is exported.
    pub fn record_route(
        &self,
        route: &str,
        status: u16,
        elapsed: Duration,
        trace: Option<TraceRef>,
    ) {
        let stats = match self.routes.get(route) {
            Some(s) => s.clone(),
            None => self.routes.entry(route.to_string()).or_default().clone(),
        };
        stats.requests.fetch_add(1, Relaxed);
        match stats.statuses.get(&status) {
            Some(c) => {
                c.fetch_add(1, Relaxed);
            }
            None => {
                stats
                    .statuses
                    .entry(status)
                    .or_default()
                    .fetch_add(1, Relaxed);
            }
        }
        if (400..500).contains(&status) {
            stats.client_errors.fetch_add(1, Relaxed);
        } else if status >= 500 {
            stats.server_errors.fetch_add(1, Relaxed);
        }
        stats.latency.record_traced(elapsed, trace);
    }

    /// Every route's counters, sorted by route.
    pub fn routes(&self) -> Vec<(String, std::sync::Arc<RouteStats>)> {
        let mut v: Vec<_> = self
            .routes
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Adds reported token usage.
    pub fn record_tokens(&self, kind: ProviderKind, prompt: u64, completion: u64) {
        let p = self.provider(kind);
        p.prompt_tokens.fetch_add(prompt, Relaxed);
        p.completion_tokens.fetch_add(completion, Relaxed);
    }

    /// Counts a supervised actor restart under `actor`'s name.
    pub fn record_restart(&self, actor: &str) {
        self.restarts
            .entry(actor.to_string())
            .or_default()
            .fetch_add(1, Relaxed);
    }

    /// Restarts counted for `actor` so far.
    pub fn restarts(&self, actor: &str) -> u64 {
        self.restarts
            .get(actor)
            .map(|c| c.load(Relaxed))
            .unwrap_or(0)
    }

    /// Every actor's restart count, sorted by name.
    pub fn all_restarts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .restarts
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Relaxed)))
            .collect();
        v.sort();
        v
    }

    /// Total jobs started over all operations.
    pub fn total_requests(&self) -> u64 {
        self.operations
            .iter()
            .map(|o| o.requests.load(Relaxed))
            .sum()
    }

    /// Zeroes operation and provider counters (restart counts are kept: they
    /// describe the process, not the traffic).
    pub fn reset(&self) {
        for o in &self.operations {
            o.requests.store(0, Relaxed);
            o.succeeded.store(0, Relaxed);
            o.failed.store(0, Relaxed);
            o.degraded.store(0, Relaxed);
            o.latency.reset();
        }
        for p in &self.providers {
            p.calls.store(0, Relaxed);
            p.successes.store(0, Relaxed);
            p.transient_failures.store(0, Relaxed);
            p.permanent_failures.store(0, Relaxed);
            p.prompt_tokens.store(0, Relaxed);
            p.completion_tokens.store(0, Relaxed);
            p.latency.reset();
        }
        self.routes.clear();
        self.overhead.reset();
        let r = &self.resilience;
        for c in [
            &r.retries,
            &r.backoffs,
            &r.fallbacks,
            &r.breaker_rejections,
            &r.bulkhead_rejections,
            &r.budget_refusals,
            &r.deadline_exceeded,
            &r.hedges_started,
            &r.hedges_won,
        ] {
            c.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_land_in_the_right_bucket() {
        let h = LatencyHistogram::default();
        for _ in 0..90 {
            h.record(Duration::from_millis(1));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(100));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50_ms > 0.8 && s.p50_ms <= 1.3, "{s:?}");
        assert!(s.p99_ms > 75.0 && s.p99_ms <= 110.0, "{s:?}");
        assert!((s.avg_ms - 10.9).abs() < 0.01, "{s:?}");
        h.reset();
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn a_traced_observation_becomes_its_buckets_exemplar() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_millis(3));
        assert!(h.exemplars().iter().all(Option::is_none), "untraced: none");
        let trace = TraceRef {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
        };
        h.record_traced(Duration::from_millis(3), Some(trace));
        h.record_traced(Duration::from_millis(3), None);
        let exemplars = h.exemplars();
        let (buckets, _, count) = h.cumulative();
        assert_eq!(count, 3);
        assert_eq!(exemplars.len(), buckets.len());
        let kept: Vec<_> = exemplars
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let (i, e) = kept[0];
        assert_eq!(e.trace, trace);
        assert_eq!(e.value, Duration::from_millis(3));
        assert!(buckets[i].0 >= 0.003 && (i == 0 || buckets[i - 1].0 < 0.003));
        h.reset();
        assert!(
            h.exemplars().iter().all(Option::is_none),
            "reset clears them"
        );
    }

    #[test]
    fn calls_and_restarts_are_counted() {
        let m = Metrics::default();
        m.record_call(ProviderKind::OpenAi, Duration::from_millis(5), Ok(()), None);
        m.record_call(
            ProviderKind::OpenAi,
            Duration::from_millis(5),
            Err(ErrorClass::Transient),
            None,
        );
        let p = m.provider(ProviderKind::OpenAi);
        assert_eq!(p.calls.load(Relaxed), 2);
        assert_eq!(p.successes.load(Relaxed), 1);
        assert_eq!(p.transient_failures.load(Relaxed), 1);
        m.record_restart("provider:openai");
        m.record_restart("provider:openai");
        assert_eq!(m.restarts("provider:openai"), 2);
        m.reset();
        assert_eq!(m.provider(ProviderKind::OpenAi).calls.load(Relaxed), 0);
        assert_eq!(m.restarts("provider:openai"), 2);
    }
}
