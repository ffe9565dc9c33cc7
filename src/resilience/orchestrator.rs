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
use super::breaker::{BreakerPermit, BreakerState, CallOutcome};
use super::config::{HedgeTarget, OperationPolicy};
use crate::job::Job;
use crate::metrics::Metrics;
use crate::outcome::{JobError, JobResult};
use crate::providers::{
    CallOptions, ErrorClass, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply,
    ProviderSettings, ProviderTable, SharedProvider,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::Instrument;

/// Used when a provider has no configured timeout (in-process overrides).
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// `by` answered: the provider tried, or its hedge peer.
    Answered {
        reply: ProviderReply,
        by: ProviderKind,
    },
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

/// What one attempt (a call and its hedges) came to.
enum AttemptEnd {
    /// A call answered; `by` is who was called.
    Answered {
        reply: ProviderReply,
        by: ProviderKind,
    },
    /// The first call could not start (breaker open, bulkhead full).
    Refused(Refusal),
    /// Every call made failed: the last failure, or the permanent one.
    Failed(ProviderError),
}

/// Why a call could not start.
struct Refusal {
    reason: String,
    retry_after: Option<Duration>,
}

/// What a call must hold before it starts: a breaker permit and, when the
/// provider has guards, a bulkhead slot.
struct Admission {
    permit: BreakerPermit,
    slot: Option<OwnedSemaphorePermit>,
    /// The breaker's state when the permit was taken, for the attempt span
    /// (read only when tracing is on: it takes the breaker's lock).
    breaker: Option<BreakerState>,
}

/// How one call ended.
struct CallEnd {
    /// The provider called.
    by: ProviderKind,
    /// True for a hedged call.
    hedge: bool,
    result: Result<ProviderReply, ProviderError>,
}

/// Everything one job run needs, borrowed from the engine.
pub struct JobRun<'a> {
    /// Per-provider settings (`Settings::providers`), for the call timeouts.
    /// Only these, not the whole `Settings`, so resilience does not depend
    /// on `crate::config`, which assembles the resilience config.
    pub provider_settings: &'a [ProviderSettings],
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
        let chain: Vec<SharedProvider> = self
            .providers
            .chain()
            .into_iter()
            .map(|slot| slot.provider.clone())
            .collect();
        for (index, provider) in chain.iter().enumerate() {
            if index > 0 {
                self.metrics.resilience.fallbacks.fetch_add(1, Relaxed);
                if crate::telemetry::enabled() {
                    tracing::info!(
                        target: crate::telemetry::TARGET,
                        from = chain[index - 1].kind().as_str(),
                        to = provider.kind().as_str(),
                        "fallback"
                    );
                }
            }
            let outcome = self
                .try_provider(
                    provider,
                    chain.get(index + 1),
                    job,
                    deadline,
                    &mut attempts,
                    &mut waited,
                )
                .await;
            match outcome {
                ProviderTry::Answered { reply, by } => {
                    if by != provider.kind() {
                        reasons.push(format!(
                            "{}: slower than the hedge delay; the hedge to {by} answered first",
                            provider.kind()
                        ));
                    }
                    let degraded = index > 0 || by != provider.kind();
                    op_stats.succeeded.fetch_add(1, Relaxed);
                    if degraded {
                        op_stats.degraded.fetch_add(1, Relaxed);
                    }
                    op_stats.latency.record(started.elapsed());
                    return Ok(JobResult {
                        output: reply.output,
                        provider: by,
                        model: reply.model,
                        usage: reply.usage,
                        attempts,
                        degraded,
                        degraded_reason: degraded.then(|| reasons.join("; ")),
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
        peer: Option<&SharedProvider>,
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
        let counters = &self.metrics.resilience;
        let mut delays = policy.backoff().delays();
        if let Some(g) = guards {
            g.budget.deposit();
        }
        let mut last: Option<ProviderError> = None;
        let mut stop_reason = String::new();

        for attempt in 1..=policy.max_attempts.max(1) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() && kind != ProviderKind::Local {
                stop_reason = "request deadline exhausted".into();
                break;
            }
            let attempt_started = Instant::now();
            let end = self
                .attempt(provider, peer, job, policy, deadline, attempts)
                .await;
            *waited += attempt_started.elapsed();
            let error = match end {
                AttemptEnd::Answered { reply, by } => {
                    if attempt > 1 {
                        counters.retries.fetch_add(1, Relaxed);
                    }
                    return ProviderTry::Answered { reply, by };
                }
                AttemptEnd::Refused(refusal) => {
                    return match last {
                        Some(error) => ProviderTry::Failed {
                            reason: refusal.reason,
                            error,
                        },
                        None => ProviderTry::Refused {
                            reason: refusal.reason,
                            retry_after: refusal.retry_after,
                        },
                    };
                }
                AttemptEnd::Failed(error) => error,
            };
            if attempt > 1 {
                counters.retries.fetch_add(1, Relaxed);
            }
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
            if crate::telemetry::enabled() {
                tracing::info!(
                    target: crate::telemetry::TARGET,
                    provider = kind.as_str(),
                    attempt = attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "backoff"
                );
            }
            tokio::time::sleep(delay).await;
            *waited += delay;
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

    /// One attempt: a call to `provider` and, when the policy hedges and the
    /// call has not answered after `hedge_delay`, up to
    /// `max_hedged_attempts - 1` more calls (to `provider`, or to `peer`
    /// under `hedge_to: next`) while it continues. The first answer wins and
    /// the other calls are dropped: their breaker permits are released
    /// unrecorded (not failures) and their bulkhead slots freed. A hedge is
    /// paid from its provider's retry budget, takes a breaker permit and a
    /// bulkhead slot without waiting, and never starts at or after the
    /// deadline; when any of these refuses, no further hedge starts in this
    /// attempt.
    async fn attempt(
        &self,
        provider: &SharedProvider,
        peer: Option<&SharedProvider>,
        job: &Job,
        policy: &OperationPolicy,
        deadline: Instant,
        attempts: &mut u32,
    ) -> AttemptEnd {
        let kind = provider.kind();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let admission = match self.admit(kind, job.operation, Some(remaining)).await {
            Ok(a) => a,
            Err(refusal) => return AttemptEnd::Refused(refusal),
        };
        *attempts += 1;
        let first = self.call(provider, job, admission, deadline, false, *attempts);
        if !policy.hedging() {
            let end = first.await;
            return match end.result {
                Ok(reply) => AttemptEnd::Answered { reply, by: end.by },
                Err(e) => AttemptEnd::Failed(e),
            };
        }
        let target = match (policy.hedge_to, peer) {
            (HedgeTarget::Next, Some(next)) => next,
            _ => provider,
        };
        let counters = &self.metrics.resilience;
        let mut in_flight = FuturesUnordered::new();
        in_flight.push(first);
        let mut calls = 1u32;
        let mut may_hedge = true;
        let mut next_hedge = Instant::now() + policy.hedge_delay;
        let mut failure: Option<ProviderError> = None;
        loop {
            let hedge_due = may_hedge && calls < policy.max_hedged_attempts;
            tokio::select! {
                biased;
                end = in_flight.next() => {
                    let Some(end) = end else { break };
                    match end.result {
                        Ok(reply) => {
                            if end.hedge {
                                counters.hedges_won.fetch_add(1, Relaxed);
                            }
                            return AttemptEnd::Answered { reply, by: end.by };
                        }
                        // A permanent answer ends the attempt: the request
                        // itself is at fault, other calls would say the same.
                        Err(e) if e.class() == ErrorClass::Permanent => {
                            return AttemptEnd::Failed(e);
                        }
                        Err(e) => {
                            failure = Some(e);
                            if in_flight.is_empty() {
                                break;
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(next_hedge), if hedge_due => {
                    let target_kind = target.kind();
                    if Instant::now() >= deadline && target_kind != ProviderKind::Local {
                        may_hedge = false;
                        continue;
                    }
                    if let Some(g) = self.resilience.guards(target_kind)
                        && !g.budget.withdraw()
                    {
                        counters.budget_refusals.fetch_add(1, Relaxed);
                        may_hedge = false;
                        continue;
                    }
                    match self.admit(target_kind, job.operation, None).await {
                        Ok(admission) => {
                            *attempts += 1;
                            calls += 1;
                            counters.hedges_started.fetch_add(1, Relaxed);
                            in_flight.push(self.call(target, job, admission, deadline, true, *attempts));
                            next_hedge = Instant::now() + policy.hedge_delay;
                        }
                        Err(_) => may_hedge = false,
                    }
                }
            }
        }
        match failure {
            Some(e) => AttemptEnd::Failed(e),
            // Unreachable in practice: the loop ends only after a failure.
            None => AttemptEnd::Refused(Refusal {
                reason: format!("{kind}: no call answered"),
                retry_after: None,
            }),
        }
    }

    /// A breaker permit and a bulkhead slot for one call to `kind`. `wait`
    /// bounds the wait for a slot; `None` (a hedge) takes one only if free at
    /// once and counts no rejection (a hedge not started is not a refusal).
    async fn admit(
        &self,
        kind: ProviderKind,
        operation: crate::job::Operation,
        wait: Option<Duration>,
    ) -> Result<Admission, Refusal> {
        let counters = &self.metrics.resilience;
        let breaker = self.resilience.breaker(kind, operation);
        let permit = match breaker.try_acquire() {
            Ok(p) => p,
            Err(rejected) => {
                if wait.is_some() {
                    counters.breaker_rejections.fetch_add(1, Relaxed);
                }
                if wait.is_some() && crate::telemetry::enabled() {
                    tracing::info!(
                        target: crate::telemetry::TARGET,
                        provider = kind.as_str(),
                        breaker_state = rejected.state.as_str(),
                        "breaker_rejected"
                    );
                }
                return Err(Refusal {
                    reason: format!("{kind}: circuit breaker {}", rejected.state.as_str()),
                    retry_after: rejected.retry_after,
                });
            }
        };
        let slot = match self.resilience.guards(kind) {
            None => None,
            Some(g) => {
                let slot = match wait {
                    Some(limit) => g.bulkhead.enter(limit).await,
                    None => g.bulkhead.try_enter(),
                };
                match slot {
                    Some(slot) => Some(slot),
                    None => {
                        if wait.is_some() {
                            counters.bulkhead_rejections.fetch_add(1, Relaxed);
                        }
                        return Err(Refusal {
                            reason: format!("{kind}: bulkhead full"),
                            retry_after: Some(Duration::from_secs(1)),
                        });
                    }
                }
            }
        };
        Ok(Admission {
            permit,
            slot,
            breaker: crate::telemetry::enabled().then(|| breaker.state()),
        })
    }

    /// One provider call under `admission`, with the provider's timeout cut
    /// at the deadline; records the outcome on the breaker and the metrics.
    /// Dropping the future abandons the call: the permit is released
    /// unrecorded and the slot freed.
    async fn call(
        &self,
        provider: &SharedProvider,
        job: &Job,
        admission: Admission,
        deadline: Instant,
        hedge: bool,
        attempt: u32,
    ) -> CallEnd {
        let kind = provider.kind();
        let call_timeout = self
            .provider_settings
            .iter()
            .find(|p| p.kind == kind)
            .map_or(DEFAULT_CALL_TIMEOUT, |p| p.timeout);
        let timeout = if kind == ProviderKind::Local {
            call_timeout
        } else {
            call_timeout.min(deadline.saturating_duration_since(Instant::now()))
        };
        let Admission {
            permit,
            slot,
            breaker,
        } = admission;
        let started = Instant::now();
        let opts = CallOptions { timeout };
        let breaker_state = breaker.map_or("unknown", BreakerState::as_str);
        let span = crate::providers::span::attempt_span(
            kind,
            provider.model(),
            attempt,
            breaker_state,
            hedge,
        );
        let run = async {
            match self.chaos.pick(kind, job.operation) {
                None => provider.run(job, opts).await,
                Some(fault) => crate::chaos::inject(fault, provider, job, opts).await,
            }
        };
        let result = if span.is_none() {
            run.await
        } else {
            run.instrument(span.clone()).await
        };
        let elapsed = started.elapsed();
        crate::providers::span::finish_attempt_span(&span, &result);
        drop(slot);
        match &result {
            Ok(reply) => {
                permit.record(CallOutcome::Success);
                self.metrics
                    .record_call(kind, elapsed, Ok(()), crate::telemetry::trace_ref(&span));
                if let Some(u) = reply.usage {
                    self.metrics
                        .record_tokens(kind, u.prompt_tokens, u.completion_tokens);
                }
            }
            Err(error) => {
                permit.record(breaker_outcome(error));
                self.metrics.record_call(
                    kind,
                    elapsed,
                    Err(error.class()),
                    crate::telemetry::trace_ref(&span),
                );
            }
        }
        CallEnd {
            by: kind,
            hedge,
            result,
        }
    }
}
