//! The metrics time series: a ring buffer of samples that the
//! [`super::metrics::MetricsAggregator`] owns and fills on its timer (every
//! [`SAMPLE_EVERY`], [`RETENTION`] kept), served by
//! `GET /internal/metrics/history` and drawn by the dashboard.
//!
//! Each sample is the *difference* between two readings of the lock-free
//! counters in [`crate::metrics::Metrics`] (and a look at the breakers), so
//! it describes one interval: jobs per second, error and degraded rates,
//! p50/p99 job latency per operation (from the histogram buckets that
//! changed in that interval), and how many breakers of each provider were
//! open or half-open at its end. Request tasks never touch it. A metrics
//! reset rebases the next delta instead of recording a negative one; the
//! series lives in the actor, so a restarted aggregator starts a new one.
//!
//! Time comes from `tokio::time` (so tests drive it with a paused clock);
//! wall-clock timestamps are the start time plus elapsed tokio time.
//!
//! One of four metrics modules; `crate::metrics` says which is which.

use crate::job::Operation;
use crate::metrics::{Metrics, quantile_ms};
use crate::providers::ProviderKind;
use crate::resilience::Resilience;
use crate::resilience::breaker::BreakerState;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// How often the aggregator takes a sample.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How much history is kept (the ring holds `RETENTION / SAMPLE_EVERY`
/// samples, 720, about 1 KB each).
pub const RETENTION: Duration = Duration::from_secs(60 * 60);

/// The counters of one operation at one instant.
#[derive(Debug, Clone, Default)]
struct OpReading {
    requests: u64,
    succeeded: u64,
    failed: u64,
    degraded: u64,
    buckets: Vec<u64>,
}

/// Everything a sample is computed from, read at one instant.
#[derive(Debug, Clone)]
pub struct Reading {
    at: Instant,
    operations: Vec<(Operation, OpReading)>,
    breakers: BTreeMap<&'static str, BreakerCounts>,
}

impl Reading {
    /// Reads the counters and breaker states now.
    pub fn take(metrics: &Metrics, resilience: &Resilience) -> Reading {
        let operations = Operation::ALL
            .into_iter()
            .map(|op| {
                let o = metrics.operation(op);
                (
                    op,
                    OpReading {
                        requests: o.requests.load(Relaxed),
                        succeeded: o.succeeded.load(Relaxed),
                        failed: o.failed.load(Relaxed),
                        degraded: o.degraded.load(Relaxed),
                        buckets: o.latency.bucket_counts(),
                    },
                )
            })
            .collect();
        let mut breakers: BTreeMap<&'static str, BreakerCounts> = BTreeMap::new();
        for b in resilience.breakers() {
            let Some(kind) = b
                .name()
                .split_once(':')
                .and_then(|(k, _)| k.parse::<ProviderKind>().ok())
            else {
                continue;
            };
            breakers.entry(kind.as_str()).or_default().count(b.state());
        }
        Reading {
            at: Instant::now(),
            operations,
            breakers,
        }
    }
}

/// How many breakers of one provider are in which state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = BreakerStateCounts)]
pub struct BreakerCounts {
    /// Closed.
    pub closed: u32,
    /// Open or forced open (calls skip the provider).
    pub open: u32,
    /// Half-open (probing).
    pub half_open: u32,
    /// Disabled or metrics-only (operator choices).
    pub other: u32,
}

impl BreakerCounts {
    fn count(&mut self, state: BreakerState) {
        match state {
            BreakerState::Closed => self.closed += 1,
            BreakerState::Open | BreakerState::ForcedOpen => self.open += 1,
            BreakerState::HalfOpen => self.half_open += 1,
            BreakerState::Disabled | BreakerState::MetricsOnly => self.other += 1,
        }
    }
}

/// One operation over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HistoryOperationSample)]
pub struct OpSample {
    /// Jobs started per second.
    pub requests_per_second: f64,
    /// Failed / finished jobs; `null` when none finished.
    pub error_rate: Option<f64>,
    /// Jobs answered by a fallback / finished jobs; `null` when none finished.
    pub degraded_rate: Option<f64>,
    /// Median job latency in the interval, ms; `null` without jobs.
    pub p50_ms: Option<f64>,
    /// 99th percentile job latency in the interval, ms; `null` without jobs.
    pub p99_ms: Option<f64>,
}

/// One interval of the series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HistorySample)]
pub struct Sample {
    /// End of the interval, Unix milliseconds.
    pub unix_ms: u64,
    /// Length of the interval, seconds (about 5: `SAMPLE_EVERY`).
    pub interval_seconds: f64,
    /// Jobs started per second, all operations.
    pub requests_per_second: f64,
    /// Failed / finished jobs, all operations; `null` when none finished.
    pub error_rate: Option<f64>,
    /// Fallback-answered / finished jobs, all operations; `null` when none finished.
    pub degraded_rate: Option<f64>,
    /// Per operation (all five, by name).
    pub operations: BTreeMap<&'static str, OpSample>,
    /// Per provider: its breakers by state at the end of the interval.
    pub breakers: BTreeMap<&'static str, BreakerCounts>,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn sample_between(prev: &Reading, now: &Reading, unix_ms: u64) -> Sample {
    let secs = now.at.duration_since(prev.at).as_secs_f64();
    let per_second = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let (mut requests, mut failed, mut degraded, mut finished) = (0, 0, 0, 0);
    let mut operations = BTreeMap::new();
    for ((op, before), (_, after)) in prev.operations.iter().zip(&now.operations) {
        let d_req = after.requests.saturating_sub(before.requests);
        let d_fail = after.failed.saturating_sub(before.failed);
        let d_ok = after.succeeded.saturating_sub(before.succeeded);
        let d_deg = after.degraded.saturating_sub(before.degraded);
        let buckets: Vec<u64> = after
            .buckets
            .iter()
            .zip(before.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        requests += d_req;
        failed += d_fail;
        degraded += d_deg;
        finished += d_ok + d_fail;
        operations.insert(
            op.as_str(),
            OpSample {
                requests_per_second: per_second(d_req),
                error_rate: ratio(d_fail, d_ok + d_fail),
                degraded_rate: ratio(d_deg, d_ok + d_fail),
                p50_ms: quantile_ms(&buckets, 0.50),
                p99_ms: quantile_ms(&buckets, 0.99),
            },
        );
    }
    Sample {
        unix_ms,
        interval_seconds: secs,
        requests_per_second: per_second(requests),
        error_rate: ratio(failed, finished),
        degraded_rate: ratio(degraded, finished),
        operations,
        breakers: now.breakers.clone(),
    }
}

/// The ring buffer with the reading the next sample is measured from.
#[derive(Debug)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
    last: Option<Reading>,
    /// Tokio time and wall-clock time at creation, to timestamp samples.
    origin: (Instant, u64),
}

/// What `GET /internal/metrics/history` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = MetricsHistory)]
pub struct HistoryView {
    /// Seconds between samples.
    pub interval_seconds: u64,
    /// The window asked for, minutes.
    pub window_minutes: u64,
    /// How much history is kept at most, minutes.
    pub retention_minutes: u64,
    /// The samples inside the window, oldest first.
    pub samples: Vec<Sample>,
}

impl History {
    /// An empty history keeping `capacity` samples.
    pub fn new(capacity: usize) -> History {
        History {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            last: None,
            origin: (Instant::now(), crate::time::unix_ms()),
        }
    }

    /// The history the aggregator keeps: [`RETENTION`] at [`SAMPLE_EVERY`].
    pub fn standard() -> History {
        History::new((RETENTION.as_secs() / SAMPLE_EVERY.as_secs()) as usize)
    }

    fn unix_ms_at(&self, at: Instant) -> u64 {
        let elapsed = at.duration_since(self.origin.0).as_millis();
        self.origin.1 + u64::try_from(elapsed).unwrap_or(u64::MAX / 2)
    }

    /// Adds the sample from the previous reading to `reading` (the first
    /// reading only sets the baseline), dropping the oldest when full.
    pub fn record(&mut self, reading: Reading) {
        if let Some(prev) = &self.last {
            let sample = sample_between(prev, &reading, self.unix_ms_at(reading.at));
            if self.samples.len() == self.capacity {
                self.samples.pop_front();
            }
            self.samples.push_back(sample);
        }
        self.last = Some(reading);
    }

    /// Makes `reading` the baseline without recording a sample (after the
    /// counters were reset, so no interval shows a negative delta).
    pub fn rebase(&mut self, reading: Reading) {
        self.last = Some(reading);
    }

    /// Samples currently held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the second reading.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples of the last `window`, oldest first.
    pub fn view(&self, window: Duration) -> HistoryView {
        let now_ms = self.unix_ms_at(Instant::now());
        let from = now_ms.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
        HistoryView {
            interval_seconds: SAMPLE_EVERY.as_secs(),
            window_minutes: window.as_secs() / 60,
            retention_minutes: RETENTION.as_secs() / 60,
            samples: self
                .samples
                .iter()
                .filter(|s| s.unix_ms > from)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn fixtures() -> (Arc<Metrics>, Arc<Resilience>) {
        let config =
            crate::resilience::config::resolve("simple", None, &crate::env::MapEnv::new(&[]))
                .expect("the simple preset resolves");
        let resilience = Arc::new(Resilience::new(
            config,
            [ProviderKind::OpenAi, ProviderKind::Local],
            8,
            Duration::from_secs(1),
        ));
        (Arc::new(Metrics::default()), resilience)
    }

    fn job(metrics: &Metrics, op: Operation, ok: bool, degraded: bool, ms: u64) {
        let o = metrics.operation(op);
        o.requests.fetch_add(1, Relaxed);
        if ok {
            o.succeeded.fetch_add(1, Relaxed);
        } else {
            o.failed.fetch_add(1, Relaxed);
        }
        if degraded {
            o.degraded.fetch_add(1, Relaxed);
        }
        o.latency.record(Duration::from_millis(ms));
    }

    #[tokio::test(start_paused = true)]
    async fn each_sample_describes_its_own_interval() {
        let (metrics, resilience) = fixtures();
        let mut h = History::new(10);
        h.record(Reading::take(&metrics, &resilience));
        assert!(h.is_empty(), "the first reading is only a baseline");

        // Interval 1: 10 summarize jobs in 5 s, 2 failed, 1 degraded.
        for i in 0..10 {
            job(&metrics, Operation::Summarize, i >= 2, i == 9, 20);
        }
        tokio::time::advance(SAMPLE_EVERY).await;
        h.record(Reading::take(&metrics, &resilience));
        // Interval 2: nothing but one slow sentiment job; a breaker opens.
        job(&metrics, Operation::Sentiment, true, false, 900);
        resilience
            .breaker(ProviderKind::OpenAi, Operation::Qa)
            .command(
                crate::resilience::breaker::BreakerCommand::ForceOpen,
                "test",
                true,
            );
        tokio::time::advance(SAMPLE_EVERY).await;
        h.record(Reading::take(&metrics, &resilience));

        let v = h.view(Duration::from_secs(15 * 60));
        assert_eq!(v.samples.len(), 2);
        let [a, b] = [&v.samples[0], &v.samples[1]];
        assert_eq!(b.unix_ms - a.unix_ms, 5_000);
        assert!((a.interval_seconds - 5.0).abs() < 1e-9);
        assert!((a.requests_per_second - 2.0).abs() < 1e-9);
        assert_eq!(a.error_rate, Some(0.2));
        assert_eq!(a.degraded_rate, Some(0.1));
        let s = &a.operations["summarize"];
        assert!(
            s.p50_ms.is_some_and(|p| (15.0..=22.0).contains(&p)),
            "{s:?}"
        );
        assert_eq!(a.operations["sentiment"].p99_ms, None);
        assert_eq!(a.breakers["openai"].closed, 5);
        // The second interval sees only its own job: the old ones are gone
        // from its percentiles and rates.
        assert!((b.requests_per_second - 0.2).abs() < 1e-9);
        assert_eq!(b.error_rate, Some(0.0));
        assert_eq!(b.operations["summarize"].p50_ms, None);
        assert!(b.operations["sentiment"].p99_ms.is_some_and(|p| p > 500.0));
        assert_eq!(
            b.breakers["openai"],
            BreakerCounts {
                closed: 4,
                open: 1,
                half_open: 0,
                other: 0
            }
        );
        assert_eq!(b.breakers["local"].closed, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ring_keeps_the_newest_and_the_view_cuts_the_window() {
        let (metrics, resilience) = fixtures();
        let mut h = History::new(4);
        h.record(Reading::take(&metrics, &resilience));
        for _ in 0..6 {
            tokio::time::advance(SAMPLE_EVERY).await;
            h.record(Reading::take(&metrics, &resilience));
        }
        assert_eq!(h.len(), 4, "capacity bounds the ring");
        let all = h.view(Duration::from_secs(60));
        assert_eq!(all.samples.len(), 4);
        let first = h.origin.1;
        assert_eq!(all.samples[0].unix_ms, first + 15_000, "oldest dropped");
        assert_eq!(all.samples[3].unix_ms, first + 30_000);
        // The last 10 s hold two samples (at -5 s and now).
        assert_eq!(h.view(Duration::from_secs(10)).samples.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_rebases_instead_of_going_negative() {
        let (metrics, resilience) = fixtures();
        let mut h = History::new(10);
        for _ in 0..50 {
            job(&metrics, Operation::Qa, true, false, 5);
        }
        h.record(Reading::take(&metrics, &resilience));
        metrics.reset();
        h.rebase(Reading::take(&metrics, &resilience));
        job(&metrics, Operation::Qa, false, false, 5);
        tokio::time::advance(SAMPLE_EVERY).await;
        h.record(Reading::take(&metrics, &resilience));
        let s = &h.view(Duration::from_secs(60)).samples[0];
        assert!((s.requests_per_second - 0.2).abs() < 1e-9);
        assert_eq!(s.error_rate, Some(1.0));
    }
}
