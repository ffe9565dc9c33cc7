//! `MetricsAggregator`: turns the lock-free counters of
//! [`crate::metrics::Metrics`] into operator-facing snapshots.
//!
//! It owns everything time-windowed (requests per minute from periodic
//! samples, the [`History`] time series behind the dashboard's charts) and
//! the reset action; request tasks only add to atomics.
//!
//! One of four metrics modules; `crate::metrics` says which is which.

use super::metrics_history::{History, HistoryView, Reading, SAMPLE_EVERY};
use crate::job::Operation;
use crate::metrics::{LatencySummary, Metrics};
use crate::providers::ProviderKind;
use crate::resilience::Resilience;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How much history the rate is computed over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Messages the aggregator handles.
pub enum MetricsMsg {
    /// Periodic sampling tick (sent by the actor's own timer).
    Tick,
    /// Reply with a snapshot of every counter.
    Snapshot(RpcReplyPort<MetricsSnapshot>),
    /// Zero the traffic counters; replies when done.
    Reset(RpcReplyPort<()>),
    /// Reply with the time series of the last `Duration` (at most the
    /// retention).
    History(Duration, RpcReplyPort<HistoryView>),
}

/// What the aggregator starts with.
#[derive(Clone)]
pub struct MetricsAggregatorArgs {
    /// The counters request tasks write.
    pub metrics: Arc<Metrics>,
    /// The breakers, whose states the time series samples.
    pub resilience: Arc<Resilience>,
}

/// One operation's traffic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OperationSnapshot {
    /// The operation.
    pub operation: Operation,
    /// Jobs started.
    pub requests: u64,
    /// Jobs answered.
    pub succeeded: u64,
    /// Jobs failed.
    pub failed: u64,
    /// Jobs answered by a fallback.
    pub degraded: u64,
    /// succeeded / (succeeded + failed), 1.0 with no traffic.
    pub success_rate: f64,
    /// Job latency.
    pub latency: LatencySummary,
}

/// One provider's traffic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderSnapshot {
    /// The provider.
    pub provider: ProviderKind,
    /// Calls made.
    pub calls: u64,
    /// Calls answered.
    pub successes: u64,
    /// Transient failures.
    pub transient_failures: u64,
    /// Permanent failures.
    pub permanent_failures: u64,
    /// Tokens sent.
    pub prompt_tokens: u64,
    /// Tokens received.
    pub completion_tokens: u64,
    /// Call latency.
    pub latency: LatencySummary,
}

/// Everything the aggregator knows, at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// Jobs started in the last minute (from samples; exact after one minute of uptime).
    pub requests_per_minute: f64,
    /// Per operation.
    pub operations: Vec<OperationSnapshot>,
    /// Per configured provider kind.
    pub providers: Vec<ProviderSnapshot>,
    /// Supervised restarts per actor name.
    pub actor_restarts: Vec<(String, u64)>,
}

/// The aggregator actor.
pub struct MetricsAggregator;

/// Its state: the shared registry, recent samples of the request total and
/// the time series.
pub struct MetricsAggregatorState {
    metrics: Arc<Metrics>,
    resilience: Arc<Resilience>,
    samples: VecDeque<(Instant, u64)>,
    history: History,
}

impl MetricsAggregatorState {
    fn snapshot(&self) -> MetricsSnapshot {
        let m = &self.metrics;
        let now = Instant::now();
        let total = m.total_requests();
        // Extrapolated from the oldest sample still inside the window.
        let requests_per_minute = match self.samples.front() {
            Some((t, count)) => {
                let secs = now.duration_since(*t).as_secs_f64().max(1.0);
                total.saturating_sub(*count) as f64 * 60.0 / secs
            }
            None => 0.0,
        };
        MetricsSnapshot {
            requests_per_minute,
            operations: Operation::ALL
                .into_iter()
                .map(|op| {
                    let o = m.operation(op);
                    let succeeded = o.succeeded.load(Relaxed);
                    let failed = o.failed.load(Relaxed);
                    OperationSnapshot {
                        operation: op,
                        requests: o.requests.load(Relaxed),
                        succeeded,
                        failed,
                        degraded: o.degraded.load(Relaxed),
                        success_rate: if succeeded + failed == 0 {
                            1.0
                        } else {
                            succeeded as f64 / (succeeded + failed) as f64
                        },
                        latency: o.latency.summary(),
                    }
                })
                .collect(),
            providers: [
                ProviderKind::Local,
                ProviderKind::OpenAi,
                ProviderKind::Gemini,
            ]
            .into_iter()
            .map(|kind| {
                let p = m.provider(kind);
                ProviderSnapshot {
                    provider: kind,
                    calls: p.calls.load(Relaxed),
                    successes: p.successes.load(Relaxed),
                    transient_failures: p.transient_failures.load(Relaxed),
                    permanent_failures: p.permanent_failures.load(Relaxed),
                    prompt_tokens: p.prompt_tokens.load(Relaxed),
                    completion_tokens: p.completion_tokens.load(Relaxed),
                    latency: p.latency.summary(),
                }
            })
            .collect(),
            actor_restarts: m.all_restarts(),
        }
    }
}

impl Actor for MetricsAggregator {
    type Msg = MetricsMsg;
    type State = MetricsAggregatorState;
    type Arguments = MetricsAggregatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MetricsMsg>,
        args: MetricsAggregatorArgs,
    ) -> Result<MetricsAggregatorState, ActorProcessingErr> {
        // The timer dies with the actor and is re-created on restart.
        myself.send_interval(SAMPLE_EVERY, || MetricsMsg::Tick);
        let MetricsAggregatorArgs {
            metrics,
            resilience,
        } = args;
        let mut samples = VecDeque::new();
        samples.push_back((Instant::now(), metrics.total_requests()));
        let mut history = History::standard();
        history.record(Reading::take(&metrics, &resilience));
        Ok(MetricsAggregatorState {
            metrics,
            resilience,
            samples,
            history,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<MetricsMsg>,
        message: MetricsMsg,
        state: &mut MetricsAggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MetricsMsg::Tick => {
                let now = Instant::now();
                state
                    .samples
                    .push_back((now, state.metrics.total_requests()));
                while state
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    state.samples.pop_front();
                }
                state
                    .history
                    .record(Reading::take(&state.metrics, &state.resilience));
            }
            MetricsMsg::History(window, reply) => {
                let _ = reply.send(state.history.view(window));
            }
            MetricsMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            MetricsMsg::Reset(reply) => {
                state.metrics.reset();
                state.samples.clear();
                state.samples.push_back((Instant::now(), 0));
                state
                    .history
                    .rebase(Reading::take(&state.metrics, &state.resilience));
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderKind;

    #[tokio::test(start_paused = true)]
    async fn the_aggregator_samples_the_time_series_on_its_timer() {
        let config =
            crate::resilience::config::resolve("simple", None, &crate::env::MapEnv::new(&[]))
                .expect("the simple preset resolves");
        let resilience = Arc::new(Resilience::new(
            config,
            [ProviderKind::Local],
            4,
            Duration::from_secs(1),
        ));
        let metrics = Arc::new(Metrics::default());
        let (actor, handle) = Actor::spawn(
            None,
            MetricsAggregator,
            MetricsAggregatorArgs {
                metrics: metrics.clone(),
                resilience,
            },
        )
        .await
        .expect("aggregator starts");
        let history = |window| {
            let actor = actor.clone();
            async move {
                actor
                    .call(|r| MetricsMsg::History(window, r), None)
                    .await
                    .expect("aggregator answers")
                    .unwrap()
            }
        };
        assert!(history(Duration::from_secs(60)).await.samples.is_empty());

        metrics
            .operation(Operation::Sentiment)
            .requests
            .fetch_add(30, Relaxed);
        // Just past three sampling periods: exactly three samples.
        tokio::time::sleep(SAMPLE_EVERY * 3 + Duration::from_millis(1)).await;
        let view = history(Duration::from_secs(15 * 60)).await;
        assert_eq!(view.interval_seconds, 5);
        assert_eq!(view.samples.len(), 3);
        let rates: Vec<f64> = view
            .samples
            .iter()
            .map(|s| s.operations["sentiment"].requests_per_second)
            .collect();
        assert_eq!(rates, [6.0, 0.0, 0.0], "30 jobs in the first 5 s");
        for pair in view.samples.windows(2) {
            assert_eq!(pair[1].unix_ms - pair[0].unix_ms, 5_000);
        }
        // The window cuts: the last 6 s hold two samples, the last 4 s one.
        assert_eq!(history(Duration::from_secs(6)).await.samples.len(), 2);
        assert_eq!(history(Duration::from_secs(4)).await.samples.len(), 1);

        actor.stop(None);
        handle.await.expect("aggregator stops");
    }
}
