//! Backoff between retries: the one place keel uses the `backoff` crate.
//!
//! The delay before retry `n` (1-based) is
//! `clamp(multiplier · 2^(n-1), min, max) + uniform(0, jitter_max)` seconds,
//! as in the reference project. `backoff`'s `ExponentialBackoff` produces the
//! exponential part; its wall-clock `max_elapsed_time` is switched off (keel's
//! deadlines use tokio time, which tests can pause), and jitter is added
//! here. The `backoff` crate is unmaintained (RUSTSEC-2025-0012): swapping it
//! for `backon` touches only this file.

use backoff::backoff::Backoff;
use std::time::Duration;

/// The backoff tunables of one operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Seconds of the first step before clamping (`exponential_multiplier`).
    pub multiplier: f64,
    /// Lower clamp (`exponential_min`).
    pub min: Duration,
    /// Upper clamp (`exponential_max`).
    pub max: Duration,
    /// Whether to add random jitter.
    pub jitter_enabled: bool,
    /// Upper bound of the added jitter (`jitter_max`).
    pub jitter_max: Duration,
}

/// The delays of one request's retries, in order.
pub struct RetryDelays {
    policy: BackoffPolicy,
    inner: backoff::ExponentialBackoff,
}

impl BackoffPolicy {
    /// A fresh sequence of delays for one request.
    pub fn delays(&self) -> RetryDelays {
        let initial = Duration::from_secs_f64(self.multiplier.max(0.001));
        let inner = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(initial)
            .with_multiplier(2.0)
            .with_randomization_factor(0.0)
            .with_max_interval(self.max.max(initial))
            .with_max_elapsed_time(None)
            .build();
        RetryDelays {
            policy: *self,
            inner,
        }
    }
}

impl RetryDelays {
    /// The delay before the next retry, jitter included.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.inner.next_backoff().unwrap_or(self.policy.max);
        let clamped = base.clamp(self.policy.min, self.policy.max.max(self.policy.min));
        if self.policy.jitter_enabled && !self.policy.jitter_max.is_zero() {
            clamped + self.policy.jitter_max.mul_f64(fastrand::f64())
        } else {
            clamped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(multiplier: f64, min: u64, max: u64, jitter: bool) -> BackoffPolicy {
        BackoffPolicy {
            multiplier,
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
            jitter_enabled: jitter,
            jitter_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn delays_double_and_are_clamped() {
        // balanced: multiplier 1, min 2, max 10 -> 2 (1 clamped up), 2, 4, 8, 10, 10
        let mut d = policy(1.0, 2, 10, false).delays();
        let got: Vec<u64> = (0..6).map(|_| d.next_delay().as_secs()).collect();
        assert_eq!(got, vec![2, 2, 4, 8, 10, 10]);
        // conservative: multiplier 2, min 4, max 30 -> 4, 4, 8, 16, 30
        let mut d = policy(2.0, 4, 30, false).delays();
        let got: Vec<u64> = (0..5).map(|_| d.next_delay().as_secs()).collect();
        assert_eq!(got, vec![4, 4, 8, 16, 30]);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut d = policy(1.0, 2, 10, true).delays();
        for _ in 0..50 {
            let delay = d.next_delay();
            assert!(
                delay >= Duration::from_secs(2) && delay <= Duration::from_secs(12),
                "{delay:?}"
            );
        }
    }
}
