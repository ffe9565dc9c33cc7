//! LLM providers behind one trait.
//!
//! A [`Provider`] turns a validated [`Job`] into a [`JobOutput`]. Three kinds
//! exist: `local` (offline algorithms in [`crate::nlp`], always available and the
//! last fallback), `openai` (any OpenAI-compatible chat-completions server) and
//! `gemini`. Every failure is a [`ProviderError`] whose [`ErrorClass`] tells the
//! resilience layer whether trying again can help. Tests plug in their own
//! implementations of the trait.

mod gemini;
mod http;
mod local;
mod openai;
pub mod parse;
pub mod prompt;
pub mod reachability;
pub mod span;
pub mod table;
mod wire;

pub use gemini::GeminiProvider;
pub use local::{LocalProvider, run_local};
pub use openai::OpenAiProvider;
pub use reachability::{Reachability, UpstreamHealth, UpstreamHealthView};
pub use table::{ProviderSlot, ProviderTable};

use crate::job::{Job, JobOutput};
use futures::future::BoxFuture;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The kinds of provider keel can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Built-in offline algorithms.
    Local,
    /// OpenAI-compatible `POST {base}/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl ProviderKind {
    /// The configuration name: `local`, `openai`, `gemini`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Gemini => "gemini",
        }
    }

    /// The model used when `AI_MODEL` does not name one.
    pub fn default_model(self) -> &'static str {
        match self {
            ProviderKind::Local => "keel-local-1",
            ProviderKind::OpenAi => "gpt-4o-mini",
            ProviderKind::Gemini => "gemini-2.0-flash",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string names no provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider '{0}' (allowed: local, openai, gemini)")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    /// Case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(ProviderKind::Local),
            "openai" => Ok(ProviderKind::OpenAi),
            "gemini" => Ok(ProviderKind::Gemini),
            _ => Err(UnknownProvider(s.to_string())),
        }
    }
}

/// Tokens an upstream reported for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    pub completion_tokens: u64,
}

/// A successful provider call.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReply {
    /// The parsed, checked answer.
    pub output: JobOutput,
    /// The model that answered (as the upstream reports it, else as configured).
    pub model: String,
    /// Token usage when the upstream reports it.
    pub usage: Option<TokenUsage>,
}

/// Whether repeating a failed call may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Worth retrying or failing over: network trouble, timeouts, 408/429/5xx, bad output.
    Transient,
    /// Retrying cannot help: the upstream rejected this request or our credentials.
    Permanent,
}

/// What went wrong in one provider call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderErrorKind {
    /// No connection could be made.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The call did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// 429: the upstream throttles us.
    #[error("rate limited by the upstream (HTTP 429)")]
    RateLimited,
    /// Any other non-success HTTP status. The upstream's own error text is
    /// logged where the answer arrives, never carried here: this error's
    /// text reaches clients, and an upstream's message can quote secrets
    /// (a key prefix) or internal details.
    #[error("upstream answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The body was not the wire format we expect.
    #[error("malformed upstream response: {0}")]
    Malformed(String),
    /// The answer was well-formed but unusable (empty, leaked prompt, no questions...).
    #[error("invalid model output: {0}")]
    InvalidOutput(String),
    /// Transport failure after connecting (reset, broken body...).
    #[error("transport error: {0}")]
    Transport(String),
}

/// A failed provider call, classified for the resilience layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {kind}")]
pub struct ProviderError {
    /// Which provider failed.
    pub provider: ProviderKind,
    /// What happened.
    pub kind: ProviderErrorKind,
    /// The upstream's `Retry-After`, when it sent one (429/503).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// Builds an error without a `Retry-After` hint.
    pub fn new(provider: ProviderKind, kind: ProviderErrorKind) -> ProviderError {
        ProviderError {
            provider,
            kind,
            retry_after: None,
        }
    }

    /// Transient for network trouble, timeouts, 408, 429, 5xx and bad output;
    /// permanent for the other 4xx answers and for 3xx (redirects are not
    /// followed, so a redirecting endpoint is misconfigured and a retry
    /// would get the same answer).
    pub fn class(&self) -> ErrorClass {
        match &self.kind {
            ProviderErrorKind::Status { status, .. }
                if (300..500).contains(status) && *status != 408 && *status != 429 =>
            {
                ErrorClass::Permanent
            }
            _ => ErrorClass::Transient,
        }
    }
}

/// Per-call settings chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// Give up on this call after this long.
    pub timeout: Duration,
}

/// Something that can run a [`Job`]. Implementations must be cheap to share
/// (`Arc`) and safe to call from many tasks at once.
pub trait Provider: Send + Sync + 'static {
    /// Which kind this is (for metrics, errors and the response's `metadata.provider`).
    fn kind(&self) -> ProviderKind;
    /// The configured model name.
    fn model(&self) -> &str;
    /// Runs one job. Cancelling the future abandons the call.
    fn run<'a>(
        &'a self,
        job: &'a Job,
        opts: CallOptions,
    ) -> BoxFuture<'a, Result<ProviderReply, ProviderError>>;
    /// Checks that the upstream answers with this provider's credentials,
    /// without running a job: a model-metadata `GET` (free on every
    /// provider), bounded by `timeout`. The provider actor calls it on a
    /// timer and publishes the verdict ([`UpstreamHealth`]); `local` has no
    /// upstream and is always reachable.
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ProviderError>> {
        let _ = timeout;
        Box::pin(async { Ok(()) })
    }
}

/// A shareable provider.
pub type SharedProvider = Arc<dyn Provider>;

/// Everything needed to reach one LLM provider, read from the environment
/// by [`crate::config::Settings`] and used to build its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Which provider.
    pub kind: ProviderKind,
    /// Model name sent upstream (`AI_MODEL` for the primary, a per-kind default otherwise).
    pub model: String,
    /// Base URL: `OPENAI_BASE_URL` (including `/v1`) or `GEMINI_BASE_URL`; empty for `local`.
    pub base_url: String,
    /// Secret sent upstream, if any.
    pub api_key: Option<String>,
    /// Per-call timeout (`PROVIDER_TIMEOUT_SECONDS`, default 30 s).
    pub timeout: Duration,
    /// How often the provider actor probes the upstream's health
    /// (`PROVIDER_PROBE_INTERVAL_MS`, default 30 s); `None` turns probing off.
    pub probe_interval: Option<Duration>,
}

/// Builds the provider described by `settings`; fails only when an HTTP client
/// cannot be constructed (e.g. no TLS backend).
pub fn build_provider(settings: &ProviderSettings) -> Result<SharedProvider, ProviderError> {
    Ok(match settings.kind {
        ProviderKind::Local => Arc::new(LocalProvider::new()),
        ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(settings)?),
        ProviderKind::Gemini => Arc::new(GeminiProvider::new(settings)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> ProviderError {
        ProviderError::new(
            ProviderKind::OpenAi,
            ProviderErrorKind::Status { status: code },
        )
    }

    #[test]
    fn classification_follows_the_contract() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(status(code).class(), ErrorClass::Transient, "{code}");
        }
        for code in [301, 307, 400, 401, 403, 404, 422] {
            assert_eq!(status(code).class(), ErrorClass::Permanent, "{code}");
        }
        let timeout = ProviderError::new(
            ProviderKind::Gemini,
            ProviderErrorKind::Timeout(Duration::from_secs(1)),
        );
        assert_eq!(timeout.class(), ErrorClass::Transient);
        let bad = ProviderError::new(
            ProviderKind::Gemini,
            ProviderErrorKind::InvalidOutput("empty".into()),
        );
        assert_eq!(bad.class(), ErrorClass::Transient);
    }
}
