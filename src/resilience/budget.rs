//! The retry budget: retries may be at most a fraction of recent first
//! attempts (plus a small floor), so a failing upstream is not hit with a
//! retry storm. A thin wrapper over tower's `TpsBudget`, which runs on tokio
//! time (testable with a paused clock).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tower::retry::budget::{Budget, TpsBudget};

/// Defaults: over a 10 s window, retries ≤ 20 % of requests, with at least
/// 5 retries per second always allowed.
const TTL: Duration = Duration::from_secs(10);
const MIN_PER_SEC: u32 = 5;
const RETRY_PERCENT: f32 = 0.2;

/// One provider's budget.
#[derive(Debug)]
pub struct RetryBudget {
    inner: TpsBudget,
    /// Retries refused by the budget.
    pub refused: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(TTL, MIN_PER_SEC, RETRY_PERCENT)
    }
}

impl RetryBudget {
    /// A budget allowing `retry_percent` of requests over `ttl`, plus
    /// `min_per_sec` retries per second.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32) -> RetryBudget {
        RetryBudget {
            inner: TpsBudget::new(ttl, min_per_sec, retry_percent),
            refused: AtomicU64::new(0),
        }
    }

    /// Records a first attempt (earns retry credit).
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// Asks to spend one retry.
    pub fn withdraw(&self) -> bool {
        let ok = self.inner.withdraw();
        if !ok {
            self.refused.fetch_add(1, Relaxed);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_share_of_requests() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        for _ in 0..100 {
            b.deposit();
        }
        let allowed = (0..100).filter(|_| b.withdraw()).count();
        assert!((18..=22).contains(&allowed), "{allowed}");
        assert_eq!(b.refused.load(Relaxed) as usize, 100 - allowed);
    }
}
