//! The bulkhead: a per-provider cap on concurrent calls with a bounded wait,
//! so one slow upstream cannot absorb every task and nothing queues forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Concurrency cap of one provider.
#[derive(Debug)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    capacity: usize,
    max_wait: Duration,
    /// Calls turned away because no slot freed up in time.
    pub rejected: AtomicU64,
}

impl Bulkhead {
    /// `capacity` concurrent calls; a caller waits at most `max_wait`.
    pub fn new(capacity: usize, max_wait: Duration) -> Bulkhead {
        Bulkhead {
            slots: Arc::new(Semaphore::new(capacity.max(1))),
            capacity: capacity.max(1),
            max_wait,
            rejected: AtomicU64::new(0),
        }
    }

    /// A slot, waiting at most `max_wait` (or `limit` if shorter); `None` when full.
    pub async fn enter(&self, limit: Duration) -> Option<OwnedSemaphorePermit> {
        let wait = self.max_wait.min(limit);
        let acquired = match self.slots.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if wait.is_zero() => None,
            Err(_) => tokio::time::timeout(wait, self.slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        if acquired.is_none() {
            self.rejected.fetch_add(1, Relaxed);
        }
        acquired
    }

    /// A slot if one is free now, without waiting or counting a rejection
    /// (for optional calls such as hedges).
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Calls running now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// The cap.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn overflow_waits_at_most_the_bound_then_is_rejected() {
        let b = Bulkhead::new(2, Duration::from_millis(100));
        let p1 = b.enter(Duration::MAX).await.unwrap();
        let _p2 = b.enter(Duration::MAX).await.unwrap();
        assert_eq!(b.in_use(), 2);
        let started = tokio::time::Instant::now();
        assert!(b.enter(Duration::MAX).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(b.rejected.load(Relaxed), 1);
        drop(p1);
        assert!(b.enter(Duration::MAX).await.is_some());
    }
}
