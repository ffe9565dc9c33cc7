//! What a rate-limit check answers ([`Decision`], in whole seconds, ready
//! for `X-RateLimit-*` / `Retry-After` headers) and the operator view
//! ([`RateLimitStats`]).
//!
//! Invariants: a denied decision always carries `retry_after_secs ≥ 1`
//! (a `Retry-After: 0` would invite a hot retry loop); seconds are rounded
//! up so a client that waits them is never early.

use super::config::Limits;
use super::window::Outcome;
use crate::redis_link::RedisStatus;
use std::collections::BTreeMap;

/// How long a client is told to wait when Redis is down in `closed` mode, in
/// seconds: the `RedisLink` default cool-off, after which Redis is probed again.
pub const CLOSED_RETRY_AFTER_SECS: u64 = 2;

/// The answer to one [`super::RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (and was counted).
    pub allowed: bool,
    /// `X-RateLimit-Limit`: the limit of the tightest window (the one with
    /// the least remaining). `u32::MAX` when nothing limits (`disabled`, `exempt`).
    pub limit: u32,
    /// `X-RateLimit-Remaining`: least remaining capacity over all windows
    /// after this request.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: seconds (rounded up) until the tightest window's
    /// oldest counted bucket leaves it, i.e. until `remaining` can rise.
    pub reset_secs: u64,
    /// `Retry-After` when denied: seconds (≥ 1, rounded up) until every
    /// violated window has room for this cost, absent other traffic.
    pub retry_after_secs: Option<u64>,
    /// Who decided: `memory` (no Redis configured), `redis`,
    /// `local-fallback` / `open-fallback` / `closed-fallback` (Redis failed;
    /// the configured failure mode answered), or `disabled` / `exempt`
    /// (not limited: send no rate-limit headers).
    pub backend: &'static str,
    /// True when denied only because Redis failed in `closed` mode: answer
    /// 503 (with `Retry-After`), not 429.
    pub unavailable: bool,
}

impl Decision {
    /// An allowed, uncounted decision (limiting off or route exempt).
    pub(crate) const fn pass(backend: &'static str) -> Decision {
        Decision {
            allowed: true,
            limit: u32::MAX,
            remaining: u32::MAX,
            reset_secs: 0,
            retry_after_secs: None,
            backend,
            unavailable: false,
        }
    }

    /// Converts a millisecond outcome into header-ready seconds.
    pub(crate) fn from_outcome(o: Outcome, backend: &'static str) -> Decision {
        Decision {
            allowed: o.allowed,
            limit: o.limit,
            remaining: o.remaining,
            reset_secs: o.reset_ms.div_ceil(1000),
            retry_after_secs: if o.allowed {
                None
            } else {
                Some(o.retry_after_ms.unwrap_or(0).div_ceil(1000).max(1))
            },
            backend,
            unavailable: false,
        }
    }

    /// True when the decision came from a limiter (send the headers).
    pub fn is_limited(&self) -> bool {
        !matches!(self.backend, "disabled" | "exempt")
    }
}

/// Operator view of the rate limiter (`/internal` status pages; the body
/// of `GET /internal/rate-limits`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RateLimitStats {
    /// `RATE_LIMIT_ENABLED`.
    pub enabled: bool,
    /// `redis` (shared windows), `memory` (per instance) or `disabled`.
    pub backend: &'static str,
    /// `RATE_LIMIT_REDIS_FAILURE`: `open`, `local` or `closed`.
    pub redis_failure_mode: &'static str,
    /// Requests allowed since start (exempt routes not included).
    pub allowed: u64,
    /// Requests denied since start (429s and `closed`-mode 503s).
    pub denied: u64,
    /// Checks that Redis could not answer (each answered by the failure mode).
    pub redis_fallbacks: u64,
    /// Identities with state in this instance's memory buckets (with Redis:
    /// only those touched during fallbacks).
    pub tracked_identities: usize,
    /// The default limits.
    pub limits: Limits,
    /// Per-route overrides, as effective limits (defaults applied).
    pub overrides: BTreeMap<String, Limits>,
    /// The Redis link's state; `{"status": "not_configured"}` without Redis.
    #[serde(serialize_with = "crate::redis_link::or_not_configured")]
    #[schema(value_type = crate::redis_link::RedisLinkView)]
    pub redis: Option<RedisStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_denials_wait_at_least_one_second() {
        let o = Outcome {
            allowed: false,
            limit: 5,
            remaining: 0,
            reset_ms: 1_001,
            retry_after_ms: Some(1),
        };
        let d = Decision::from_outcome(o, "memory");
        assert_eq!((d.reset_secs, d.retry_after_secs), (2, Some(1)));
        let d = Decision::from_outcome(
            Outcome {
                retry_after_ms: Some(0),
                ..o
            },
            "memory",
        );
        assert_eq!(d.retry_after_secs, Some(1));
        let d = Decision::from_outcome(Outcome { allowed: true, ..o }, "redis");
        assert_eq!(d.retry_after_secs, None);
        assert!(d.is_limited());
        assert!(!Decision::pass("exempt").is_limited());
    }
}
