//! Restart intensity for supervisors: a child that keeps dying is not
//! restarted forever (which would hide the bug and burn CPU).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_restarts` restarts of one child within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed inside the window.
    pub max_restarts: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// The child a supervision event reports as stopped (failed or
/// terminated), with the reason; `None` for other events.
pub(crate) fn stopped_child(
    event: ractor::SupervisionEvent,
) -> Option<(ractor::ActorCell, String)> {
    match event {
        ractor::SupervisionEvent::ActorFailed(cell, err) => Some((cell, err.to_string())),
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell, reason.unwrap_or_else(|| "terminated".into())))
        }
        _ => None,
    }
}

/// Remembers recent restarts of one child.
#[derive(Debug, Default)]
pub(crate) struct RestartHistory(VecDeque<Instant>);

impl RestartHistory {
    /// Records a restart at `now` if the policy still allows one.
    pub(crate) fn allow(&mut self, policy: RestartPolicy, now: Instant) -> bool {
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.0.pop_front();
        }
        if self.0.len() >= policy.max_restarts {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_is_limited_within_the_window() {
        let policy = RestartPolicy {
            max_restarts: 2,
            window: Duration::from_secs(10),
        };
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert!(h.allow(policy, t0));
        assert!(h.allow(policy, t0 + Duration::from_secs(1)));
        assert!(!h.allow(policy, t0 + Duration::from_secs(2)));
        assert!(h.allow(policy, t0 + Duration::from_secs(12)));
    }
}
