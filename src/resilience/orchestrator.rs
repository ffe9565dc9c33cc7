//! Runs one job: for each provider of the chain (primary first, then
//! `AI_FALLBACK_PROVIDERS`), take a breaker permit and a bulkhead slot, call
//! with a per-attempt timeout inside the request deadline, classify the
//! outcome, and retry transient failures with backoff while the retry budget,
//! the attempt limit and the deadline allow; then fall back to the next
//! provider.
//!
//! This is the "retry orchestrator" of the architecture. It runs in the
//! request's own task (a job's orchestration never runs inside a
//! singleton actor, so a slow upstream never blocks other jobs), reading the shared [`Resilience`] state; the
//! [`crate::actors::breaker_registry::BreakerRegistry`] actor owns operator
//! commands and reconfiguration.
//!
//! Invariants: an answer from any provider but the primary is `degraded`,
//! with the reason; permanent request errors (400, 413, 422) are never retried
//! and never count against a breaker; no attempt starts after the deadline
//! and each attempt's timeout ends at the deadline at the latest (the
//! built-in `local` provider, which answers in microseconds, may still answer
//! after a remote provider used up the deadline); every attempt, retry,
//! backoff and fallback is counted.

use super::Resilience;
use super::breaker::{BreakerState, CallOutcome};
use crate::actors::ProviderTable;
use crate::config::Settings;
use crate::job::{Job, JobOutput};
use crate::metrics::Metrics;
use crate::providers::{
    CallOptions, ErrorClass, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply,
    SharedProvider, TokenUsage,
};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// Used when a provider has no configured timeout (in-process overrides).
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A job's answer with what it took to get it.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The answer.
    pub output: JobOutput,
    /// Who answered.
    pub provider: ProviderKind,
    /// The model that answered.
    pub model: String,
    /// Tokens, when the upstream reported them.
    pub usage: Option<TokenUsage>,
    /// Provider calls made, over all providers, including failed ones.
    pub attempts: u32,
    /// True when a fallback answered instead of the primary.
    pub degraded: bool,
    /// Why the providers before the one that answered did not, when degraded.
    pub degraded_reason: Option<String>,
    /// Time spent waiting on providers and backoff sleeps; the rest of the
    /// job's time is keel's own overhead.
    pub upstream_time: Duration,
    /// True when the answer came from the cache.
    pub cache_hit: bool,
}

impl JobResult {
    /// A result served from the cache (`fallback_kind` when the stored
    /// provider name is unknown to this version).
    pub fn from_cache(hit: crate::cache::CachedAnswer, fallback_kind: ProviderKind) -> JobResult {
        JobResult {
            output: hit.output,
            provider: hit.provider.parse().unwrap_or(fallback_kind),
            model: hit.model,
            usage: None,
            attempts: 0,
            degraded: false,
            degraded_reason: None,
            upstream_time: Duration::ZERO,
            cache_hit: true,
        }
    }
}

/// Why a job could not be answered: every provider failed or refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no provider could answer ({}); {attempts} call(s) made", reasons.join("; "))]
pub struct JobError {
    /// Provider calls made.
    pub attempts: u32,
    /// The last provider error, if any call was made.
    pub last: Option<ProviderError>,
    /// One reason per provider, in chain order.
    pub reasons: Vec<String>,
    /// When trying again may help: the earliest breaker recovery, else the
    /// upstream's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// True when the request deadline ran out.
    pub deadline_exceeded: bool,
}

impl JobError {
    /// Transient unless the last failure was a permanent one and nothing
    /// else (an open breaker, a full bulkhead, the deadline) was involved.
    pub fn class(&self) -> ErrorClass {
        match &self.last {
            Some(e) if e.class() == ErrorClass::Permanent && self.retry_after.is_none() => {
                ErrorClass::Permanent
            }
            _ => ErrorClass::Transient,
        }
    }

    /// True when time, rather than an error, ended the request.
    pub fn is_timeout(&self) -> bool {
        self.deadline_exceeded
            || self
                .last
                .as_ref()
                .is_some_and(|e| matches!(e.kind, ProviderErrorKind::Timeout(_)))
    }
}

/// How a provider error bears on the provider's health.
fn breaker_outcome(e: &ProviderError) -> CallOutcome {
    match &e.kind {
        // The request itself was unacceptable: says nothing about the provider.
        ProviderErrorKind::Status {
            status: 400 | 413 | 422,
            ..
        } => CallOutcome::Ignored,
        _ => CallOutcome::Failure,
    }
}

/// What trying one provider came to.
enum ProviderTry {
    Answered(ProviderReply),
    /// Refused before any call (breaker open, bulkhead full, no time left).
    Refused {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Calls were made and failed.
    Failed {
        reason: String,
        error: ProviderError,
    },
}

/// Everything one job run needs, borrowed from the engine.
pub struct JobRun<'a> {
    /// Provider timeouts.
    pub settings: &'a Settings,
    /// The provider chain.
    pub providers: &'a ProviderTable,
    /// Breakers, budgets, bulkheads and policies.
    pub resilience: &'a Resilience,
    /// Counters.
    pub metrics: &'a Metrics,
    /// Fault-injection experiments, consulted before every provider call.
    pub chaos: &'a crate::chaos::Chaos,
}

impl JobRun<'_> {
    /// Runs `job`. `client_deadline` (from `Request-Timeout`) can only
    /// shorten the policy's deadline.
    pub async fn run(
        &self,
        job: &Job,
        client_deadline: Option<Duration>,
    ) -> Result<JobResult, JobError> {
        let started = Instant::now();
        let config = self.resilience.config();
        let policy = config.policy(job.operation);
        let budget = client_deadline.map_or(policy.max_delay, |d| d.min(policy.max_delay));
        let deadline = started + budget;
        let op_stats = self.metrics.operation(job.operation);
        op_stats.requests.fetch_add(1, Relaxed);

        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        let mut reasons = Vec::new();
        let mut last_error = None;
        let mut upstream_retry_after = None;
        let mut refused_retry_after: Option<Duration> = None;
        for (index, slot) in self.providers.chain().into_iter().enumerate() {
            if index > 0 {
                self.metrics.resilience.fallbacks.fetch_add(1, Relaxed);
            }
            let provider = slot.provider.clone();
            let outcome = self
                .try_provider(&provider, job, deadline, &mut attempts, &mut waited)
                .await;
            match outcome {
                ProviderTry::Answered(reply) => {
                    op_stats.succeeded.fetch_add(1, Relaxed);
                    if index > 0 {
                        op_stats.degraded.fetch_add(1, Relaxed);
                    }
                    op_stats.latency.record(started.elapsed());
                    return Ok(JobResult {
                        output: reply.output,
                        provider: provider.kind(),
                        model: reply.model,
                        usage: reply.usage,
                        attempts,
                        degraded: index > 0,
                        degraded_reason: (index > 0).then(|| reasons.join("; ")),
                        upstream_time: waited,
                        cache_hit: false,
                    });
                }
                ProviderTry::Refused {
                    reason,
                    retry_after,
                } => {
                    reasons.push(reason);
                    refused_retry_after = match (refused_retry_after, retry_after) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                ProviderTry::Failed { reason, error } => {
                    reasons.push(reason);
                    if error.retry_after.is_some() {
                        upstream_retry_after = error.retry_after;
                    }
                    last_error = Some(error);
                }
            }
        }
        op_stats.failed.fetch_add(1, Relaxed);
        op_stats.latency.record(started.elapsed());
        // The earliest moment an open breaker of this chain (or a full
        // bulkhead) admits a call again.
        let breaker_recovery = self
            .providers
            .kinds()
            .filter_map(|k| self.resilience.breaker(k, job.operation).retry_after())
            .chain(refused_retry_after)
            .min();
        let deadline_exceeded = Instant::now() >= deadline;
        if deadline_exceeded {
            self.metrics
                .resilience
                .deadline_exceeded
                .fetch_add(1, Relaxed);
        }
        Err(JobError {
            attempts,
            last: last_error,
            reasons,
            retry_after: breaker_recovery.or(upstream_retry_after),
            deadline_exceeded,
        })
    }

    async fn try_provider(
        &self,
        provider: &SharedProvider,
        job: &Job,
        deadline: Instant,
        attempts: &mut u32,
        waited: &mut Duration,
    ) -> ProviderTry {
        let kind = provider.kind();
        let config = self.resilience.config();
        let policy = config.policy(job.operation);
        let breaker = self.resilience.breaker(kind, job.operation);
        let guards = self.resilience.guards(kind);
        let call_timeout = self
            .settings
            .providers
            .iter()
            .find(|p| p.kind == kind)
            .map_or(DEFAULT_CALL_TIMEOUT, |p| p.timeout);
        let counters = &self.metrics.resilience;
        let mut delays = policy.backoff().delays();
        if let Some(g) = guards {
            g.budget.deposit();
        }
        let mut last: Option<ProviderError> = None;
        let mut stop_reason = String::new();

        for attempt in 1..=policy.max_attempts.max(1) {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() && kind != ProviderKind::Local {
                stop_reason = "request deadline exhausted".into();
                break;
            }
            let permit = match breaker.try_acquire() {
                Ok(p) => p,
                Err(rejected) => {
                    counters.breaker_rejections.fetch_add(1, Relaxed);
                    let reason = format!("{kind}: circuit breaker {}", rejected.state.as_str());
                    match last {
                        Some(error) => return ProviderTry::Failed { reason, error },
                        None => {
                            return ProviderTry::Refused {
                                reason,
                                retry_after: rejected.retry_after,
                            };
                        }
                    }
                }
            };
            let slot = match guards {
                Some(g) => match g.bulkhead.enter(remaining).await {
                    Some(slot) => Some(slot),
                    None => {
                        counters.bulkhead_rejections.fetch_add(1, Relaxed);
                        let reason = format!("{kind}: bulkhead full");
                        return match last {
                            Some(error) => ProviderTry::Failed { reason, error },
                            None => ProviderTry::Refused {
                                reason,
                                retry_after: Some(Duration::from_secs(1)),
                            },
                        };
                    }
                },
                None => None,
            };
            let timeout = if kind == ProviderKind::Local {
                call_timeout
            } else {
                call_timeout.min(deadline.saturating_duration_since(Instant::now()))
            };
            *attempts += 1;
            if attempt > 1 {
                counters.retries.fetch_add(1, Relaxed);
            }
            let call_started = Instant::now();
            let opts = CallOptions { timeout };
            let result = match self.chaos.pick(kind, job.operation) {
                None => provider.run(job, opts).await,
                Some(fault) => crate::chaos::inject(fault, provider, job, opts).await,
            };
            let elapsed = call_started.elapsed();
            *waited += elapsed;
            drop(slot);
            match result {
                Ok(reply) => {
                    permit.record(CallOutcome::Success);
                    self.metrics.record_call(kind, elapsed, Ok(()));
                    if let Some(u) = reply.usage {
                        self.metrics
                            .record_tokens(kind, u.prompt_tokens, u.completion_tokens);
                    }
                    return ProviderTry::Answered(reply);
                }
                Err(error) => {
                    permit.record(breaker_outcome(&error));
                    self.metrics.record_call(kind, elapsed, Err(error.class()));
                    tracing::warn!(provider = %kind, operation = %job.operation, attempt, error = %error, "provider call failed");
                    let permanent = error.class() == ErrorClass::Permanent;
                    let retry_after = error.retry_after;
                    last = Some(error);
                    if permanent {
                        stop_reason = "permanent error".into();
                        break;
                    }
                    if attempt >= policy.max_attempts {
                        stop_reason = format!("{attempt} attempt(s) failed");
                        break;
                    }
                    // A breaker that just opened would refuse the retry anyway:
                    // do not sleep first.
                    if !matches!(
                        breaker.state(),
                        BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled
                    ) {
                        stop_reason = format!(
                            "circuit breaker {} after attempt {attempt}",
                            breaker.state().as_str()
                        );
                        break;
                    }
                    // An upstream's Retry-After wins over our backoff.
                    let delay = retry_after.unwrap_or_else(|| delays.next_delay());
                    if Instant::now() + delay >= deadline {
                        stop_reason = format!(
                            "next retry in {:.1}s would pass the deadline",
                            delay.as_secs_f64()
                        );
                        break;
                    }
                    if let Some(g) = guards
                        && !g.budget.withdraw()
                    {
                        counters.budget_refusals.fetch_add(1, Relaxed);
                        stop_reason = "retry budget exhausted".into();
                        break;
                    }
                    counters.backoffs.fetch_add(1, Relaxed);
                    tokio::time::sleep(delay).await;
                    *waited += delay;
                }
            }
        }
        match last {
            Some(error) => ProviderTry::Failed {
                reason: format!("{kind}: {stop_reason}: {}", error.kind),
                error,
            },
            None => ProviderTry::Refused {
                reason: format!("{kind}: {stop_reason}"),
                retry_after: None,
            },
        }
    }
}
