//! What running a job came to: a [`JobResult`] (the answer, who gave it and
//! what it took) or a [`JobError`] (why no provider could answer).
//!
//! Why a module of its own: the orchestrator (`resilience`) produces these,
//! the engine and the HTTP layer consume them (and [`finish_job_span`]
//! records them on a trace). `crate::job` would
//! be the obvious home, but their fields are provider types
//! ([`ProviderKind`], [`TokenUsage`], [`ProviderError`]) and `providers`
//! depends on `job`, so keeping them there would make a cycle. Here they sit
//! just above `providers` and `cache`, below everything that uses them.

use crate::job::JobOutput;
use crate::providers::{ErrorClass, ProviderError, ProviderErrorKind, ProviderKind, TokenUsage};
use std::time::Duration;

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

/// Records how a job ended on its span ([`crate::telemetry::job_span`]):
/// `cache` is `hit`, `miss` or `disabled`. Here, not in `telemetry`, because
/// it reads these types and `telemetry` sits below them.
pub fn finish_job_span(
    span: &tracing::Span,
    cache: &'static str,
    result: &Result<JobResult, JobError>,
) {
    if span.is_none() {
        return;
    }
    span.record("keel.cache", cache);
    match result {
        Ok(r) => {
            span.record("keel.degraded", r.degraded);
            span.record("keel.attempts", r.attempts);
            span.record("keel.provider", r.provider.as_str());
            span.record("gen_ai.response.model", r.model.as_str());
        }
        Err(e) => {
            span.record("keel.attempts", e.attempts);
            span.record("otel.status_code", "ERROR");
            span.record(
                "error.type",
                if e.deadline_exceeded {
                    "deadline_exceeded"
                } else {
                    "no_provider_answered"
                },
            );
        }
    }
}
