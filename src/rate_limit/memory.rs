//! The per-instance (memory) backend: one [`WindowState`] per identity in a
//! sharded `DashMap`, each behind its own small `Mutex`.
//!
//! Invariants: a check locks one DashMap shard for reading plus one
//! identity's mutex — never a global lock — and allocates only when an
//! identity is seen for the first time (its key). Time is tokio time
//! (`tokio::time::Instant`) measured from the backend's creation, so tests
//! drive it with a paused clock. Memory stays bounded by [`MemoryBackend::sweep`],
//! which drops identities whose counters are all empty (idle for longer than
//! their longest window), so forgetting them changes no future decision.

use super::window::{Outcome, WindowLimit, WindowState};
use dashmap::DashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// Sliding-window counters for every identity of one limit scope.
pub(crate) struct MemoryBackend {
    states: DashMap<Box<str>, Mutex<WindowState>>,
    epoch: Instant,
}

impl MemoryBackend {
    /// An empty backend whose clock starts now.
    pub(crate) fn new() -> MemoryBackend {
        MemoryBackend {
            states: DashMap::new(),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since this backend was created (tokio time).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Checks and (when allowed) counts a request of `cost` for `identity`.
    pub(crate) fn check(&self, identity: &str, limits: &[WindowLimit], cost: u32) -> Outcome {
        let now = self.now_ms();
        // Fast path: a known identity needs no allocation and only a shard
        // read lock. The guard is dropped before `entry` below, which takes
        // the same shard's write lock (holding both would deadlock).
        if let Some(state) = self.states.get(identity) {
            return check_locked(&state, limits, now, cost);
        }
        let state = self
            .states
            .entry(Box::from(identity))
            .or_insert_with(|| Mutex::new(WindowState::new()))
            .downgrade();
        check_locked(&state, limits, now, cost)
    }

    /// Drops identities with nothing counted any more. Cheap enough to run
    /// every few seconds; locks one shard at a time.
    pub(crate) fn sweep(&self) {
        let now = self.now_ms();
        self.states.retain(|_, state| {
            // `get_mut` needs no locking: `retain` holds the shard exclusively.
            match state.get_mut() {
                Ok(s) => !s.is_idle(now),
                // A poisoned state is dropped; the identity starts afresh.
                Err(_) => false,
            }
        });
    }

    /// Number of identities currently tracked.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }
}

fn check_locked(
    state: &Mutex<WindowState>,
    limits: &[WindowLimit],
    now: u64,
    cost: u32,
) -> Outcome {
    // A panic while holding the lock cannot leave a `WindowState` logically
    // broken (each update is a few integer operations), so keep using it.
    let mut guard = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.check(limits, now, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::window::Window;
    use std::time::Duration;

    const MINUTE_10: [WindowLimit; 1] = [WindowLimit {
        window: Window::Minute,
        limit: 10,
    }];

    #[tokio::test(start_paused = true)]
    async fn n_allowed_then_denied_then_allowed_after_the_window_slides() {
        let backend = MemoryBackend::new();
        for i in 0..10 {
            let o = backend.check("alice", &MINUTE_10, 1);
            assert!(o.allowed, "request {i}");
            assert_eq!(o.remaining, 9 - i);
        }
        let denied = backend.check("alice", &MINUTE_10, 1);
        assert!(!denied.allowed);
        // Another identity is unaffected.
        assert!(backend.check("bob", &MINUTE_10, 1).allowed);

        let wait = denied.retry_after_ms.unwrap_or(0);
        assert!(wait > 59_000 && wait <= 61_000, "{wait}");
        tokio::time::advance(Duration::from_millis(wait - 1)).await;
        assert!(!backend.check("alice", &MINUTE_10, 1).allowed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(backend.check("alice", &MINUTE_10, 1).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_drops_idle_identities_only() {
        let backend = MemoryBackend::new();
        backend.check("idle", &MINUTE_10, 1);
        tokio::time::advance(Duration::from_secs(50)).await;
        backend.check("busy", &MINUTE_10, 1);
        backend.sweep();
        assert_eq!(backend.len(), 2, "both still counted");

        tokio::time::advance(Duration::from_secs(15)).await;
        backend.sweep();
        assert_eq!(backend.len(), 1, "idle for > 61 s is dropped");
        // The survivor's count was kept.
        assert_eq!(backend.check("busy", &MINUTE_10, 1).remaining, 8);

        tokio::time::advance(Duration::from_secs(120)).await;
        backend.sweep();
        assert_eq!(backend.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_checks_never_over_admit() {
        let backend = std::sync::Arc::new(MemoryBackend::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let b = backend.clone();
            tasks.push(tokio::spawn(async move {
                (0..50)
                    .filter(|_| b.check("shared", &MINUTE_10, 1).allowed)
                    .count()
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        assert_eq!(total, 10);
    }
}
