//! What runs a job's stored `/process` request: the [`Runner`] the consumer
//! is handed.
//!
//! Why a trait: this subsystem stores, schedules and settles jobs; running
//! one is the `/process` pipeline of the HTTP front
//! (`crate::api::text::run_request`: validation, the engine, the success
//! body), which sits above it — the front serves `/v1/jobs` from this
//! module and the engine owns it. So the dependency points down: the front
//! implements [`Runner`] (`crate::api::jobs::ProcessRunner`) and attaches it
//! when its state is built ([`super::Jobs::attach`]); until then the
//! consumer claims nothing.

use futures::future::BoxFuture;
use serde_json::Value;
use std::time::Duration;

/// Runs stored requests for the consumer's workers.
pub trait Runner: Send + Sync {
    /// A run of `request` (a stored `/process` body), or `None` when
    /// nothing can run any more (the engine is gone): the worker then
    /// leaves the delivery to be reclaimed. The future resolves to the
    /// success body (`None` only if it could not be turned into JSON).
    fn start(
        &self,
        request: Value,
    ) -> Option<BoxFuture<'static, Result<Option<Value>, RunFailure>>>;
}

/// Why a run gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    /// Every provider failed or refused for now: running the job again may
    /// succeed (after `retry_after`, when the providers said when).
    #[error("{reason}")]
    Unavailable {
        /// Why no provider answered (quoted when the job expires).
        reason: String,
        /// The earliest time a provider expects to answer again.
        retry_after: Option<Duration>,
    },
    /// Failed for good: the message and code `/process` would answer.
    #[error("{message}")]
    Failed {
        /// Human-readable message.
        message: String,
        /// Stable machine-readable code (the `/process` error code).
        code: String,
    },
}
