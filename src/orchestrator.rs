//! Runs one job through the provider chain: the primary first, then each
//! fallback in `AI_FALLBACK_PROVIDERS` order (`local` last by default).
//!
//! Invariants: a job is answered by the first provider that succeeds; an
//! answer from any provider but the primary is marked `degraded` with the
//! reason; every call and its outcome is recorded in [`Metrics`]. When every
//! provider fails, the error of the last one decides the status (transient →
//! 503, permanent → 502).

use crate::actors::ProviderTable;
use crate::config::Settings;
use crate::job::{Job, JobOutput};
use crate::metrics::Metrics;
use crate::providers::{CallOptions, ErrorClass, ProviderError, ProviderKind, TokenUsage};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

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
    /// Provider calls made, including failed ones.
    pub attempts: u32,
    /// True when a fallback answered instead of the primary.
    pub degraded: bool,
    /// Why the primary did not answer, when degraded.
    pub degraded_reason: Option<String>,
}

/// Why a job could not be answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Every provider in the chain failed; `last` is the final error.
    #[error("all {attempts} provider call(s) failed; last: {last}")]
    Exhausted {
        /// Calls made.
        attempts: u32,
        /// The last provider error.
        last: ProviderError,
    },
}

impl JobError {
    /// Whether the client may try again later.
    pub fn class(&self) -> ErrorClass {
        match self {
            JobError::Exhausted { last, .. } => last.class(),
        }
    }

    /// The upstream's `Retry-After`, if the last failure carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JobError::Exhausted { last, .. } => last.retry_after,
        }
    }
}

/// Runs `job` through the chain in `table`.
pub async fn run(
    settings: &Settings,
    table: &ProviderTable,
    metrics: &Metrics,
    job: &Job,
) -> Result<JobResult, JobError> {
    let started = Instant::now();
    let op = metrics.operation(job.operation);
    op.requests.fetch_add(1, Relaxed);

    let mut attempts = 0u32;
    let mut first_error: Option<ProviderError> = None;
    let mut last_error: Option<ProviderError> = None;
    for (index, slot) in table.chain().into_iter().enumerate() {
        let provider = &slot.provider;
        let kind = provider.kind();
        let timeout = settings
            .providers
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.timeout)
            .unwrap_or(DEFAULT_CALL_TIMEOUT);
        attempts += 1;
        let call_started = Instant::now();
        let outcome = provider.run(job, CallOptions { timeout }).await;
        let elapsed = call_started.elapsed();
        match outcome {
            Ok(reply) => {
                metrics.record_call(kind, elapsed, Ok(()));
                if let Some(u) = reply.usage {
                    metrics.record_tokens(kind, u.prompt_tokens, u.completion_tokens);
                }
                let degraded = index > 0;
                op.succeeded.fetch_add(1, Relaxed);
                if degraded {
                    op.degraded.fetch_add(1, Relaxed);
                }
                op.latency.record(started.elapsed());
                return Ok(JobResult {
                    output: reply.output,
                    provider: kind,
                    model: reply.model,
                    usage: reply.usage,
                    attempts,
                    degraded,
                    degraded_reason: first_error.map(|e| e.to_string()),
                });
            }
            Err(e) => {
                metrics.record_call(kind, elapsed, Err(e.class()));
                tracing::warn!(provider = %kind, operation = %job.operation, error = %e, "provider call failed");
                if first_error.is_none() {
                    first_error = Some(e.clone());
                }
                last_error = Some(e);
            }
        }
    }
    op.failed.fetch_add(1, Relaxed);
    op.latency.record(started.elapsed());
    // Invariant: the table holds at least the primary, so at least one call
    // was made and failed here.
    let last = last_error.unwrap_or_else(|| {
        ProviderError::new(
            ProviderKind::Local,
            crate::providers::ProviderErrorKind::Transport("no provider configured".into()),
        )
    });
    Err(JobError::Exhausted { attempts, last })
}
