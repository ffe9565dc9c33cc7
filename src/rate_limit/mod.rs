//! Per-identity rate limiting, in memory or shared through Redis (README
//! "Rate limits").
//!
//! `RATE_LIMIT_PER_MINUTE/_HOUR/_DAY` = N means at most N cost units (a
//! batch counts its items) per identity in **any** sliding window of that
//! length; `RATE_LIMIT_BURST` adds an optional per-second cap. With Redis the
//! windows are shared by every instance (one atomic Lua script per check,
//! `redis_backend.rs`); without it each instance counts in memory
//! (`memory.rs`). Both use the same conservative bucket algorithm
//! (`window.rs`), which can deny slightly early but never admits more than N
//! in a window. Routes listed in `RATE_LIMIT_ENDPOINT_OVERRIDES` get their
//! own limits and their own counters; exempt routes (health, metrics, docs,
//! `/`) are never counted.
//!
//! [`RateLimiter::check`] never fails: when Redis does, the configured
//! [`RedisFailureMode`] answers within the `RedisLink` timeout (and at once
//! during its cool-off), and Redis is used again as soon as it is back.
//! The memory hot path takes no global lock: a shard read lock and one
//! identity's mutex.

mod config;
mod decision;
mod memory;
mod redis_backend;
mod window;

pub use config::{Limits, RateLimitConfig, RedisFailureMode};
pub use decision::{CLOSED_RETRY_AFTER_SECS, Decision, RateLimitStats};
pub use window::{Outcome, Window, WindowLimit, WindowState};

use crate::redis_link::RedisLink;
use http::HeaderMap;
use memory::MemoryBackend;
use redis_backend::RedisBackend;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One set of limits with its own counters: the defaults, or one route's
/// override.
struct Scope {
    /// `None` for the defaults; the route for an override (part of its Redis keys).
    route: Option<String>,
    limits: Limits,
    windows: Vec<WindowLimit>,
    /// The smallest limit, reported when Redis fails in `open`/`closed` mode
    /// (nothing better is known then).
    min_limit: u32,
    /// Counters when Redis is absent, or its `local` fallback.
    memory: MemoryBackend,
}

impl Scope {
    fn new(route: Option<String>, limits: Limits) -> Scope {
        let windows = limits.window_limits();
        let min_limit = windows.iter().map(|w| w.limit).min().unwrap_or(u32::MAX);
        Scope {
            route,
            limits,
            windows,
            min_limit,
            memory: MemoryBackend::new(),
        }
    }
}

/// Checks requests against the configured limits; shared by all request
/// handlers (`Arc<RateLimiter>`), `Send + Sync`, never blocks on a global lock.
pub struct RateLimiter {
    enabled: bool,
    failure_mode: RedisFailureMode,
    defaults: Scope,
    /// Keyed by normalized route (no trailing `/`).
    overrides: HashMap<String, Scope>,
    redis: Option<RedisBackend>,
    allowed: AtomicU64,
    denied: AtomicU64,
    redis_fallbacks: AtomicU64,
}

impl RateLimiter {
    /// A limiter for `config`; with `redis`, windows are shared through it
    /// (the link should be this limiter's own, so its cool-off is too).
    pub fn new(config: RateLimitConfig, redis: Option<Arc<RedisLink>>) -> RateLimiter {
        let defaults = Scope::new(None, config.base_limits());
        let overrides = config
            .overrides
            .keys()
            .map(|route| {
                (
                    route.clone(),
                    Scope::new(Some(route.clone()), config.limits_for(route)),
                )
            })
            .collect();
        RateLimiter {
            enabled: config.enabled,
            failure_mode: config.redis_failure,
            defaults,
            overrides,
            redis: redis.map(RedisBackend::new),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            redis_fallbacks: AtomicU64::new(0),
        }
    }

    /// False when `RATE_LIMIT_ENABLED=false`: every check passes, so callers
    /// may skip building the identity.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Checks (and when allowed, counts) a request of `cost` units (1 for a
    /// single request, the item count for a batch) by `identity` (see
    /// [`client_identity`]) on `route` (the request path). Never errors:
    /// a Redis failure is answered by the configured failure mode.
    pub async fn check(&self, identity: &str, route: &str, cost: u32) -> Decision {
        self.check_with(identity, route, cost, None).await
    }

    /// Like [`RateLimiter::check`], with the identity's own per-minute limit
    /// (a client key's or a JWT's) replacing the configured one when given.
    pub async fn check_with(
        &self,
        identity: &str,
        route: &str,
        cost: u32,
        per_minute: Option<u32>,
    ) -> Decision {
        if !self.enabled {
            return Decision::pass("disabled");
        }
        if Self::is_exempt(route) {
            return Decision::pass("exempt");
        }
        let scope = self.scope_for(route);
        let own_windows;
        let windows: &[WindowLimit] = match per_minute {
            Some(n) if n > 0 => {
                own_windows = Limits {
                    per_minute: Some(n),
                    ..scope.limits
                }
                .window_limits();
                &own_windows
            }
            _ => &scope.windows,
        };
        let decision = match &self.redis {
            None => Decision::from_outcome(scope.memory.check(identity, windows, cost), "memory"),
            Some(redis) => match redis
                .check(identity, scope.route.as_deref(), windows, cost)
                .await
            {
                Ok(outcome) => Decision::from_outcome(outcome, "redis"),
                Err(error) => {
                    self.redis_fallbacks.fetch_add(1, Relaxed);
                    // The link logs state changes at warn; per-call detail stays at debug.
                    tracing::debug!(%error, mode = self.failure_mode.as_str(), "rate limit: redis failed");
                    self.on_redis_failure(scope, windows, identity, cost)
                }
            },
        };
        if decision.allowed {
            self.allowed.fetch_add(1, Relaxed);
        } else {
            self.denied.fetch_add(1, Relaxed);
            tracing::debug!(route, cost, retry_after = ?decision.retry_after_secs, backend = decision.backend, "rate limited");
        }
        decision
    }

    fn on_redis_failure(
        &self,
        scope: &Scope,
        windows: &[WindowLimit],
        identity: &str,
        cost: u32,
    ) -> Decision {
        match self.failure_mode {
            RedisFailureMode::Local => Decision::from_outcome(
                scope.memory.check(identity, windows, cost),
                "local-fallback",
            ),
            RedisFailureMode::Open => Decision {
                allowed: true,
                limit: scope.min_limit,
                remaining: scope.min_limit,
                reset_secs: 0,
                retry_after_secs: None,
                backend: "open-fallback",
                unavailable: false,
            },
            RedisFailureMode::Closed => Decision {
                allowed: false,
                limit: scope.min_limit,
                remaining: 0,
                reset_secs: CLOSED_RETRY_AFTER_SECS,
                retry_after_secs: Some(CLOSED_RETRY_AFTER_SECS),
                backend: "closed-fallback",
                unavailable: true,
            },
        }
    }

    fn scope_for(&self, route: &str) -> &Scope {
        if self.overrides.is_empty() {
            return &self.defaults;
        }
        self.overrides
            .get(config::normalize_route(route))
            .unwrap_or(&self.defaults)
    }

    /// Drops memory state of identities idle longer than their longest
    /// window. Call periodically (every few seconds to minutes); bounded work
    /// per shard, no effect on any future decision.
    pub fn sweep(&self) {
        self.defaults.memory.sweep();
        for scope in self.overrides.values() {
            scope.memory.sweep();
        }
    }

    /// Counters and state for operators.
    pub fn stats(&self) -> RateLimitStats {
        let tracked_identities = self.defaults.memory.len()
            + self
                .overrides
                .values()
                .map(|s| s.memory.len())
                .sum::<usize>();
        RateLimitStats {
            enabled: self.enabled,
            backend: match (self.enabled, &self.redis) {
                (false, _) => "disabled",
                (true, Some(_)) => "redis",
                (true, None) => "memory",
            },
            redis_failure_mode: self.failure_mode.as_str(),
            allowed: self.allowed.load(Relaxed),
            denied: self.denied.load(Relaxed),
            redis_fallbacks: self.redis_fallbacks.load(Relaxed),
            tracked_identities,
            limits: self.defaults.limits,
            overrides: self
                .overrides
                .iter()
                .map(|(route, scope)| (route.clone(), scope.limits))
                .collect(),
            redis: self.redis.as_ref().map(|r| r.link().status()),
        }
    }

    /// Pings Redis (respecting the link's cool-off) so the link notices an
    /// outage or a recovery without waiting for traffic. Called periodically
    /// by the rate-limiter actor; a no-op without Redis.
    pub async fn probe_redis(&self) {
        if let Some(r) = &self.redis {
            let _ = r.link().ping().await;
        }
    }

    /// True for routes that are never limited: `/`, health (`/health*`,
    /// `/v1/health*`), metrics (`/internal/metrics*`) and docs (`/docs*`,
    /// `/openapi.json`, `/internal/docs*`, `/internal/openapi.json`).
    pub fn is_exempt(route: &str) -> bool {
        const EXACT: [&str; 3] = ["/", "/openapi.json", "/internal/openapi.json"];
        const PREFIXES: [&str; 5] = [
            "/v1/health",
            "/health",
            "/internal/metrics",
            "/docs",
            "/internal/docs",
        ];
        EXACT.contains(&route)
            || PREFIXES.iter().any(|p| {
                // Whole path segments only: `/healthy` is not `/health`.
                route
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
    }
}

/// The client identity a limit applies to: `key:<fingerprint>` when an API
/// key was sent, else `ip:<address>` — the first `X-Forwarded-For` hop only
/// when `trust_proxy_headers` (set it only behind a proxy that overwrites
/// that header, or clients can pick their identity), else the peer address;
/// `ip:unknown` when there is none.
pub fn client_identity(
    key_fingerprint: Option<&str>,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trust_proxy_headers: bool,
) -> String {
    if let Some(fingerprint) = key_fingerprint.filter(|f| !f.is_empty()) {
        return format!("key:{fingerprint}");
    }
    let forwarded = trust_proxy_headers
        .then(|| first_forwarded_hop(headers))
        .flatten();
    match forwarded.or(peer) {
        // Canonical form: an IPv4-mapped IPv6 peer is the same client as its IPv4.
        Some(ip) => format!("ip:{}", ip.to_canonical()),
        None => "ip:unknown".to_string(),
    }
}

/// The first address of the first `X-Forwarded-For` header, if it parses
/// (with or without a port); garbage is ignored rather than trusted.
fn first_forwarded_hop(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let hop = value.split(',').next()?.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use crate::redis_link::RedisLinkOptions;
    use keel_testkit::redis_server::RedisServer;
    use std::time::Duration;

    fn config(vars: &[(&str, &str)]) -> RateLimitConfig {
        RateLimitConfig::from_env(&MapEnv::new(vars)).unwrap()
    }

    fn link(url: &str, timeout_ms: u64, cooloff_ms: u64) -> Arc<RedisLink> {
        let options = RedisLinkOptions {
            timeout: Duration::from_millis(timeout_ms),
            cooloff: Duration::from_millis(cooloff_ms),
        };
        Arc::new(RedisLink::new(url, options).unwrap())
    }

    #[test]
    fn exempt_routes() {
        for route in [
            "/",
            "/health",
            "/v1/health",
            "/v1/health/live",
            "/v1/health/ready",
            "/internal/metrics",
            "/internal/metrics/summary",
            "/docs",
            "/docs/oauth2-redirect",
            "/openapi.json",
            "/internal/docs",
            "/internal/openapi.json",
        ] {
            assert!(RateLimiter::is_exempt(route), "{route}");
        }
        for route in [
            "/v1/text_processing/process",
            "/v1/healthy",
            "/v1/auth/status",
            "/internal/cache/clear",
            "/docsx",
            "",
        ] {
            assert!(!RateLimiter::is_exempt(route), "{route}");
        }
    }

    #[test]
    fn identity_prefers_the_key_then_trusted_proxy_then_peer() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(
            client_identity(Some("abc123"), Some(peer), &headers, true),
            "key:abc123"
        );
        assert_eq!(
            client_identity(None, Some(peer), &headers, true),
            "ip:203.0.113.7"
        );
        assert_eq!(
            client_identity(None, Some(peer), &headers, false),
            "ip:10.0.0.9"
        );
        assert_eq!(
            client_identity(None, None, &HeaderMap::new(), true),
            "ip:unknown"
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(
            client_identity(None, Some(peer), &headers, true),
            "ip:2001:db8::1"
        );
        headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(
            client_identity(None, Some(peer), &headers, true),
            "ip:10.0.0.9"
        );
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            client_identity(Some(""), Some(mapped), &HeaderMap::new(), false),
            "ip:192.0.2.1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_limits_slide_and_overrides_have_their_own_counters() {
        let limiter = RateLimiter::new(
            config(&[
                ("RATE_LIMIT_PER_MINUTE", "5"),
                (
                    "RATE_LIMIT_ENDPOINT_OVERRIDES",
                    r#"{"/v1/batch": {"per_minute": 3}}"#,
                ),
            ]),
            None,
        );
        for i in 0..5 {
            let d = limiter.check("ip:1", "/v1/process", 1).await;
            assert!(d.allowed);
            assert_eq!((d.backend, d.limit, d.remaining), ("memory", 5, 4 - i));
        }
        let d = limiter.check("ip:1", "/v1/process", 1).await;
        assert!(!d.allowed && !d.unavailable);
        let wait = d.retry_after_secs.unwrap();
        assert!((60..=61).contains(&wait), "{wait}");
        // The override route counts separately, and a batch counts its items.
        let d = limiter.check("ip:1", "/v1/batch/", 3).await;
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (3, 0));
        assert!(!limiter.check("ip:1", "/v1/batch", 1).await.allowed);
        // Exempt routes pass and count nothing.
        let d = limiter.check("ip:1", "/v1/health", 1).await;
        assert!(d.allowed && !d.is_limited());

        tokio::time::advance(Duration::from_secs(wait)).await;
        assert!(limiter.check("ip:1", "/v1/process", 1).await.allowed);
        let stats = limiter.stats();
        assert_eq!(
            (stats.allowed, stats.denied, stats.backend),
            (7, 2, "memory")
        );
        assert_eq!(stats.tracked_identities, 2);
        assert_eq!(stats.overrides["/v1/batch"].per_minute, Some(3));

        tokio::time::advance(Duration::from_secs(86_400 + 3_600)).await;
        limiter.sweep();
        assert_eq!(limiter.stats().tracked_identities, 0);
        assert!(
            serde_json::to_string(&limiter.stats())
                .unwrap()
                .contains("\"tracked_identities\":0")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_limits_nothing() {
        let limiter = RateLimiter::new(
            config(&[
                ("RATE_LIMIT_ENABLED", "false"),
                ("RATE_LIMIT_PER_MINUTE", "1"),
            ]),
            None,
        );
        for _ in 0..10 {
            let d = limiter.check("ip:1", "/v1/process", 1).await;
            assert!(d.allowed);
            assert_eq!(d.backend, "disabled");
        }
        assert_eq!(limiter.stats().backend, "disabled");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_sharing_redis_admit_exactly_the_limit() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let cfg = config(&[("RATE_LIMIT_PER_MINUTE", "60")]);
        // Generous timeouts: this test is about atomicity, not failure handling.
        let a = Arc::new(RateLimiter::new(
            cfg.clone(),
            Some(link(&server.url(), 2_000, 100)),
        ));
        let b = Arc::new(RateLimiter::new(cfg, Some(link(&server.url(), 2_000, 100))));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                limiter.check("key:shared", "/v1/process", 1).await
            }));
        }
        let mut allowed = 0;
        for task in tasks {
            let d = task.await.unwrap();
            assert_eq!(d.backend, "redis", "{d:?}");
            if d.allowed {
                allowed += 1;
            } else {
                assert!(
                    d.retry_after_secs.is_some_and(|s| (1..=61).contains(&s)),
                    "{d:?}"
                );
                assert_eq!((d.limit, d.remaining), (60, 0));
            }
        }
        assert_eq!(allowed, 60);
        assert_eq!(a.stats().allowed + b.stats().allowed, 60);

        // Keys: hash-tagged per identity, one per window, no raw identity.
        let keys: Vec<String> = link(&server.url(), 2_000, 100)
            .query(redis::cmd("KEYS").arg("keel:rl:*"))
            .await
            .unwrap();
        let tag = redis_backend::identity_tag("key:shared");
        let mut expected: Vec<String> = ["minute", "hour", "day"]
            .iter()
            .map(|w| format!("keel:rl:{{{tag}}}:{w}"))
            .collect();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        expected.sort();
        assert_eq!(keys_sorted, expected);
        assert!(keys.iter().all(|k| !k.contains("shared")));
    }

    #[tokio::test]
    async fn redis_decisions_match_the_algorithm() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let limiter = RateLimiter::new(
            config(&[
                ("RATE_LIMIT_PER_MINUTE", "10"),
                ("RATE_LIMIT_BURST", "4"),
                (
                    "RATE_LIMIT_ENDPOINT_OVERRIDES",
                    r#"{"/v1/batch": {"per_minute": 6}}"#,
                ),
            ]),
            Some(link(&server.url(), 2_000, 100)),
        );
        // Burst of 4 per second: a batch of 5 never fits, a batch of 4 does.
        let d = limiter.check("ip:1", "/v1/process", 5).await;
        assert!(!d.allowed);
        assert_eq!(d.backend, "redis");
        let d = limiter.check("ip:1", "/v1/process", 4).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (4, 0), "burst is the tightest");
        let d = limiter.check("ip:1", "/v1/process", 1).await;
        assert!(!d.allowed);
        assert!(d.retry_after_secs.is_some_and(|s| s <= 2), "{d:?}");
        // The override route has its own counters, under its own keys.
        let d = limiter.check("ip:1", "/v1/batch", 4).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (4, 0));
        let keys: Vec<String> = link(&server.url(), 2_000, 100)
            .query(redis::cmd("KEYS").arg("keel:rl:*:/v1/batch:*"))
            .await
            .unwrap();
        assert_eq!(keys.len(), 4, "{keys:?}");
        // Every key expires by itself: one bucket past its window.
        for key in keys {
            let ttl: i64 = link(&server.url(), 2_000, 100)
                .query(redis::cmd("PTTL").arg(&key))
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 86_400_000 + 1_440_000, "{key}: {ttl}");
        }
        // After the burst second only the minute holds: 4 of 10 used.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        assert!(limiter.check("ip:1", "/v1/process", 4).await.allowed);
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let d = limiter.check("ip:1", "/v1/process", 3).await;
        assert!(!d.allowed, "8 + 3 > 10: {d:?}");
        assert_eq!(
            (d.limit, d.remaining),
            (10, 2),
            "the minute is now the tightest"
        );
        assert!(
            d.retry_after_secs.is_some_and(|s| (55..=61).contains(&s)),
            "{d:?}"
        );
        assert!(limiter.check("ip:1", "/v1/process", 2).await.allowed);
    }

    #[tokio::test]
    async fn redis_failure_modes_answer_fast_and_redis_comes_back() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let cfg = |mode: &str| {
            config(&[
                ("RATE_LIMIT_PER_MINUTE", "1000"),
                ("RATE_LIMIT_REDIS_FAILURE", mode),
            ])
        };
        let local = RateLimiter::new(cfg("local"), Some(link(&server.url(), 50, 300)));
        let open = RateLimiter::new(cfg("open"), Some(link(&server.url(), 50, 300)));
        let closed = RateLimiter::new(cfg("closed"), Some(link(&server.url(), 50, 300)));
        for limiter in [&local, &open, &closed] {
            assert_eq!(
                limiter.check("ip:1", "/v1/process", 1).await.backend,
                "redis"
            );
        }

        server.kill();
        let started = std::time::Instant::now();
        let d = local.check("ip:1", "/v1/process", 1).await;
        let first = started.elapsed();
        assert!(d.allowed && d.backend == "local-fallback", "{d:?}");
        assert!(
            first < Duration::from_millis(200),
            "first fallback took {first:?}"
        );
        let started = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(
                local.check("ip:1", "/v1/process", 1).await.backend,
                "local-fallback"
            );
        }
        let later = started.elapsed() / 100;
        assert!(
            later < Duration::from_millis(1),
            "cool-off fallback took {later:?}"
        );

        let d = open.check("ip:1", "/v1/process", 1).await;
        assert!(d.allowed && d.backend == "open-fallback", "{d:?}");
        let d = closed.check("ip:1", "/v1/process", 1).await;
        assert!(
            !d.allowed && d.unavailable && d.backend == "closed-fallback",
            "{d:?}"
        );
        assert_eq!(d.retry_after_secs, Some(CLOSED_RETRY_AFTER_SECS));
        assert_eq!(local.stats().redis_fallbacks, 101);
        assert_eq!(local.stats().redis.map(|r| r.status), Some("unavailable"));

        server.restart();
        // Redis is used again once the cool-off ends (the connection manager
        // may need a probe or two to reconnect).
        let mut back = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if local.check("ip:1", "/v1/process", 1).await.backend == "redis" {
                back = true;
                break;
            }
        }
        assert!(back, "redis not used again: {:?}", local.stats().redis);
    }
}
