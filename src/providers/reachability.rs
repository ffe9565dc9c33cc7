//! Whether a provider's upstream answers: the reading each provider actor
//! (`crate::actors::provider`) publishes from its periodic health probe, and
//! what `/v1/health`'s `ai_model_available` and the health model
//! (`crate::health`) read.
//!
//! Only the provider actor writes it ([`UpstreamHealth::record`] is
//! crate-private and called from the actor's mailbox); readers load atomics,
//! so a health check never waits on the actor or on the upstream. The
//! reading survives an actor restart: the slot's [`UpstreamHealth`] is handed
//! to the new actor, which keeps the last verdict until its own first probe
//! replaces it, so a restart does not make an unreachable upstream look
//! healthy (or the other way round).

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// The verdict of the latest health probe of one provider's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// No probe has finished yet (just started, or probing is off): counted
    /// as available, so start-up never reports the model missing.
    Unknown,
    /// The latest probe got a 2xx answer with this provider's credentials.
    Reachable,
    /// The latest probe failed (connect error, timeout, non-2xx status).
    Unreachable,
}

impl Reachability {
    fn from_u8(v: u8) -> Reachability {
        match v {
            1 => Reachability::Reachable,
            2 => Reachability::Unreachable,
            _ => Reachability::Unknown,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Reachability::Unknown => 0,
            Reachability::Reachable => 1,
            Reachability::Unreachable => 2,
        }
    }
}

/// One provider's published upstream reading.
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    state: AtomicU8,
    /// Unix milliseconds of the latest finished probe (0: none yet).
    checked_at_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    /// The latest failure, in keel's words (never an upstream body or a key).
    last_error: Mutex<Option<String>>,
}

/// A copy of an [`UpstreamHealth`] for JSON health reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UpstreamHealthView {
    /// The latest verdict.
    pub state: Reachability,
    /// When the latest probe finished (RFC 3339, UTC); `None` before the first.
    pub checked_at: Option<String>,
    /// Probes failed in a row (0 once one succeeds).
    pub consecutive_failures: u32,
    /// Why the latest failed probe failed; cleared by a success.
    pub last_error: Option<String>,
}

impl UpstreamHealth {
    /// The latest verdict (one atomic load).
    pub fn reachability(&self) -> Reachability {
        Reachability::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Everything published, for health reports.
    pub fn view(&self) -> UpstreamHealthView {
        let ms = self.checked_at_ms.load(Ordering::Acquire);
        UpstreamHealthView {
            state: self.reachability(),
            checked_at: (ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(ms as i64))
                .flatten()
                .map(crate::time::rfc3339),
            consecutive_failures: self.consecutive_failures.load(Ordering::Acquire),
            last_error: self.last_error(),
        }
    }

    /// Why the latest failed probe failed, if the latest probe failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Records a finished probe and returns the previous verdict (so the
    /// caller can log changes). Only the provider actor calls this.
    pub(crate) fn record(&self, outcome: Result<(), String>) -> Reachability {
        let now_ms = crate::time::unix_ms().max(1);
        let next = match &outcome {
            Ok(()) => Reachability::Reachable,
            Err(_) => Reachability::Unreachable,
        };
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = outcome.err();
        }
        match next {
            Reachability::Reachable => self.consecutive_failures.store(0, Ordering::Release),
            _ => {
                self.consecutive_failures.fetch_add(1, Ordering::AcqRel);
            }
        }
        self.checked_at_ms.store(now_ms, Ordering::Release);
        Reachability::from_u8(self.state.swap(next.as_u8(), Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_starts_unknown_and_follows_the_latest_probe() {
        let health = UpstreamHealth::default();
        assert_eq!(health.reachability(), Reachability::Unknown);
        assert_eq!(health.view().checked_at, None);

        assert_eq!(
            health.record(Err("connection refused".into())),
            Reachability::Unknown
        );
        assert_eq!(
            health.record(Err("timed out".into())),
            Reachability::Unreachable
        );
        let view = health.view();
        assert_eq!(view.state, Reachability::Unreachable);
        assert_eq!(view.consecutive_failures, 2);
        assert_eq!(view.last_error.as_deref(), Some("timed out"));
        assert!(view.checked_at.is_some());

        assert_eq!(health.record(Ok(())), Reachability::Unreachable);
        let view = health.view();
        assert_eq!(view.state, Reachability::Reachable);
        assert_eq!(view.consecutive_failures, 0);
        assert_eq!(view.last_error, None);
    }
}
