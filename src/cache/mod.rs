//! The answer cache: a memory tier in every instance and, when `REDIS_URL` is
//! set, a Redis tier shared by all instances.
//!
//! [`Cache`] is the facade the engine owns. A get reads memory, then Redis; a
//! Redis hit warms memory for the time the entry has left in Redis. A put
//! writes both tiers with the operation's TTL ([`Cache::ttl_for`]). Keys
//! ([`CacheKey`]) hash the normalised text, the option relevant to the
//! operation, the question, the provider and the model — no raw text in a
//! key. Values ([`CachedAnswer`]) are JSON, gzip'd above a threshold.
//!
//! Invariants, each fixing a weakness of the reference project:
//! - caching works without Redis (the memory tier is always there);
//! - a Redis failure is a miss or a skipped write, never an error to the
//!   caller, and costs at most one [`RedisLink`] timeout per cool-off;
//! - an undecodable value is a miss (and the next put overwrites it);
//! - only answers the caller judged good are stored ([`should_store`]); as a
//!   last line of defence [`Cache::put`] drops obviously empty outputs;
//! - invalidation uses `SCAN` + `UNLINK`, never `KEYS`;
//! - the hot path takes no global lock: counters are atomics and the memory
//!   tier locks one shard briefly.
//!
//! Concurrent misses on one key are coalesced by the caller with
//! [`SingleFlight`].

mod codec;
mod config;
mod key;
mod memory;
mod redis_tier;
mod single_flight;

pub use codec::{CachedAnswer, CodecError, MAX_DECODED_BYTES};
pub use config::{
    CacheConfig, DEFAULT_COMPRESSION_THRESHOLD, DEFAULT_MEMORY_MAX_BYTES,
    DEFAULT_MEMORY_MAX_ENTRIES, DEFAULT_TTL, ttl_for_name,
};
pub use key::{CacheKey, InvalidPattern, KEY_PREFIX, KeyPattern, MAX_PATTERN_LEN};
pub use memory::{ENTRY_OVERHEAD, MemoryStats, MemoryTier};
pub use redis_tier::SCAN_BATCH;
pub use single_flight::SingleFlight;

use crate::job::Operation;
use crate::redis_link::{RedisLink, RedisStatus};
use redis_tier::RedisTier;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The storage policy: store an answer only when it is neither degraded (a
/// fallback, partial or placeholder reply) nor invalid (it failed output
/// validation). The engine calls [`Cache::put`] only when this is true for an
/// answer that passed validation; the cache cannot tell a degraded answer
/// from a good one by looking at it.
pub fn should_store(degraded: bool) -> bool {
    !degraded
}

/// What an invalidation removed (also its schema in the operator document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvalidationReport {
    /// The pattern applied, over `{operation}:{hash}` (`*` for a clear).
    pub pattern: String,
    /// Entries removed from this instance's memory tier.
    pub memory_removed: u64,
    /// Keys removed from Redis; `None` without a Redis tier.
    #[schema(required = true)]
    pub redis_removed: Option<u64>,
    /// Set when Redis failed part-way: `redis_removed` then counts the keys
    /// removed before the failure, and other keys may remain until their TTL.
    #[schema(required = true)]
    pub redis_error: Option<String>,
}

/// The Redis part of [`CacheStats`].
#[derive(Debug, Clone, Serialize)]
pub struct RedisCacheStats {
    /// `connected` or `disconnected` (what the reference's clients read as
    /// `["redis"]["status"]`; the link's own finer state is in `link`).
    pub status: &'static str,
    /// The link's status (connected / unavailable / unknown, counters).
    pub link: RedisStatus,
    /// Cache keys in Redis (bounded `SCAN`), `None` when Redis did not answer.
    pub keys: Option<u64>,
    /// False when `keys` is a lower bound (the count stopped early).
    pub keys_exact: bool,
    /// PING round trip in milliseconds, `None` when Redis did not answer.
    pub ping_ms: Option<f64>,
    /// Reads that failed (counted as misses).
    pub read_errors: u64,
    /// Writes that failed (skipped; the memory tier still has the value).
    pub write_errors: u64,
}

/// Operator view of the cache (the body of `GET /internal/cache/metrics`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// `CACHE_ENABLED`.
    pub enabled: bool,
    /// Gets answered by either tier.
    pub hits: u64,
    /// Gets answered by neither.
    pub misses: u64,
    /// Gets answered by the memory tier.
    pub memory_hits: u64,
    /// Gets answered by the Redis tier.
    pub redis_hits: u64,
    /// `hits / (hits + misses)`, 0 before the first get (puts do not count).
    pub hit_rate: f64,
    /// Values stored.
    pub puts: u64,
    /// Puts refused: empty output, or an output not matching the operation.
    pub puts_rejected: u64,
    /// Stored values that could not be decoded (served as misses).
    pub decode_errors: u64,
    /// The memory tier: `entries`, `bytes`, `max_entries`, `max_bytes`,
    /// `evictions`, `expirations`.
    #[schema(value_type = Object)]
    pub memory: MemoryStats,
    /// The Redis tier (`status` connected | disconnected, `link`, `keys`,
    /// `keys_exact`, `ping_ms`, error counters); without one it serialises as
    /// `{"status": "not_configured"}`, never `null`, so clients can index it.
    #[serde(serialize_with = "crate::redis_link::or_not_configured")]
    #[schema(value_type = Object)]
    pub redis: Option<RedisCacheStats>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    memory_hits: AtomicU64,
    redis_hits: AtomicU64,
    puts: AtomicU64,
    puts_rejected: AtomicU64,
    decode_errors: AtomicU64,
    redis_read_errors: AtomicU64,
    redis_write_errors: AtomicU64,
}

/// The two-tier answer cache. Share it behind an `Arc`; every method takes
/// `&self`.
pub struct Cache {
    config: CacheConfig,
    memory: MemoryTier,
    redis: Option<RedisTier>,
    counters: Counters,
}

impl Cache {
    /// A cache with `config`'s memory bounds and, when `redis` is given, a
    /// Redis tier over that link (the engine builds it from
    /// `REDIS_URL`; the cache never opens connections itself).
    pub fn new(config: CacheConfig, redis: Option<Arc<RedisLink>>) -> Cache {
        Cache {
            memory: MemoryTier::new(config.memory_max_entries, config.memory_max_bytes),
            redis: redis.map(RedisTier::new),
            config,
            counters: Counters::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The TTL of `op`'s entries (see [`ttl_for_name`]).
    pub fn ttl_for(&self, op: Operation) -> Duration {
        ttl_for_name(op.as_str(), self.config.default_ttl)
    }

    /// The cached answer for `key`, from memory or else Redis. Never fails:
    /// a Redis error or an undecodable value is a miss.
    pub async fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        if !self.config.enabled {
            return None;
        }
        if let Some(value) = self.memory.get(key.as_str()) {
            self.counters.memory_hits.fetch_add(1, Relaxed);
            self.counters.hits.fetch_add(1, Relaxed);
            return Some(CachedAnswer::clone(&value));
        }
        if let Some(value) = self.get_from_redis(key).await {
            self.counters.redis_hits.fetch_add(1, Relaxed);
            self.counters.hits.fetch_add(1, Relaxed);
            return Some(value);
        }
        self.counters.misses.fetch_add(1, Relaxed);
        None
    }

    async fn get_from_redis(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let redis = self.redis.as_ref()?;
        let (bytes, remaining) = match redis.get(key.as_str()).await {
            Ok(found) => found?,
            Err(error) => {
                self.counters.redis_read_errors.fetch_add(1, Relaxed);
                tracing::debug!(%error, "cache read from redis failed; treated as a miss");
                return None;
            }
        };
        let decoded = codec::decode(&bytes)
            .filter(|v| v.output.operation() == key.operation() && !v.is_empty());
        let Some(value) = decoded else {
            self.counters.decode_errors.fetch_add(1, Relaxed);
            tracing::warn!(key = %key, bytes = bytes.len(), "undecodable cache value in redis; treated as a miss");
            return None;
        };
        let op_ttl = self.ttl_for(key.operation());
        let ttl = remaining.map_or(op_ttl, |left| left.min(op_ttl));
        let size = memory::entry_size(key.as_str(), &value);
        let value = Arc::new(value);
        self.memory
            .insert(key.as_str(), Arc::clone(&value), size, ttl);
        Some(Arc::unwrap_or_clone(value))
    }

    /// Stores `value` under `key` in both tiers for `operation`'s TTL.
    ///
    /// Call it only for answers that passed validation and are not degraded
    /// ([`should_store`]). As a last line of defence, an empty output (empty
    /// summary or answer, no points, no questions) or one whose kind does not
    /// match `operation` and the key is dropped and counted in
    /// `puts_rejected`. A Redis failure skips the Redis write silently
    /// (counted in `write_errors`); the memory tier still holds the value.
    pub async fn put(&self, key: &CacheKey, operation: Operation, value: CachedAnswer) {
        if !self.config.enabled {
            return;
        }
        if value.is_empty() || value.output.operation() != operation || key.operation() != operation
        {
            self.counters.puts_rejected.fetch_add(1, Relaxed);
            tracing::debug!(key = %key, %operation, "refused to cache an empty or mismatched answer");
            return;
        }
        // Encoded only for Redis: the memory tier holds the value itself.
        let encoded = match &self.redis {
            None => None,
            Some(redis) => match codec::encode(&value, self.config.compression_threshold) {
                Ok(bytes) => Some((redis, bytes)),
                Err(error) => {
                    self.counters.puts_rejected.fetch_add(1, Relaxed);
                    tracing::warn!(key = %key, %error, "cannot encode an answer for the cache");
                    return;
                }
            },
        };
        let ttl = self.ttl_for(operation);
        let size = memory::entry_size(key.as_str(), &value);
        self.memory.insert(key.as_str(), Arc::new(value), size, ttl);
        if let Some((redis, bytes)) = encoded
            && let Err(error) = redis.set(key.as_str(), &bytes, ttl).await
        {
            self.counters.redis_write_errors.fetch_add(1, Relaxed);
            tracing::debug!(%error, "cache write to redis skipped");
        }
        self.counters.puts.fetch_add(1, Relaxed);
    }

    /// Removes every entry of `op` from both tiers.
    pub async fn invalidate_operation(&self, op: Operation) -> InvalidationReport {
        self.invalidate(&KeyPattern::operation(op)).await
    }

    /// Removes the entries whose `{operation}:{hash}` matches the glob
    /// `pattern` (`*` any run, `?` one character) from both tiers; e.g.
    /// `summarize:*`, `*`. Keys hash the text, so no pattern can select
    /// entries by their text. Refuses patterns with characters no key holds.
    pub async fn invalidate_pattern(
        &self,
        pattern: &str,
    ) -> Result<InvalidationReport, InvalidPattern> {
        let pattern = KeyPattern::parse(pattern)?;
        Ok(self.invalidate(&pattern).await)
    }

    /// Removes every cache entry from both tiers (other data in the Redis
    /// database is left alone).
    pub async fn clear(&self) -> InvalidationReport {
        let memory_removed = self.memory.clear();
        let mut report = self.invalidate_redis(&KeyPattern::all()).await;
        report.memory_removed = memory_removed;
        report
    }

    async fn invalidate(&self, pattern: &KeyPattern) -> InvalidationReport {
        let memory_removed = self.memory.remove_matching(|k| pattern.matches(k));
        let mut report = self.invalidate_redis(pattern).await;
        report.memory_removed = memory_removed;
        report
    }

    async fn invalidate_redis(&self, pattern: &KeyPattern) -> InvalidationReport {
        let (redis_removed, redis_error) = match &self.redis {
            None => (None, None),
            Some(redis) => {
                let (removed, error) = redis.unlink_matching(&pattern.redis_match()).await;
                (Some(removed), error.map(|e| e.to_string()))
            }
        };
        tracing::info!(
            pattern = pattern.as_str(),
            ?redis_removed,
            ?redis_error,
            "cache invalidated"
        );
        InvalidationReport {
            pattern: pattern.as_str().to_string(),
            memory_removed: 0,
            redis_removed,
            redis_error,
        }
    }

    /// Pings Redis (respecting the link's cool-off), so the link notices an
    /// outage or a recovery even while the memory tier answers every get.
    /// Called periodically by the cache actor; a no-op without Redis.
    pub async fn probe_redis(&self) {
        if let Some(r) = &self.redis {
            let _ = r.ping().await;
        }
    }

    /// The Redis link's state without touching Redis (cheap: health checks
    /// call it); `None` without a Redis tier.
    pub fn redis_status(&self) -> Option<RedisStatus> {
        self.redis.as_ref().map(|r| r.status())
    }

    /// The request counters alone, without touching Redis: `(memory hits,
    /// Redis hits, misses)` — what metrics scrapes read.
    pub fn hit_counters(&self) -> (u64, u64, u64) {
        (
            self.counters.memory_hits.load(Relaxed),
            self.counters.redis_hits.load(Relaxed),
            self.counters.misses.load(Relaxed),
        )
    }

    /// Counters, tier sizes and, with Redis, the link status, a bounded key
    /// count and a PING (each at most one link timeout).
    pub async fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let hits = c.hits.load(Relaxed);
        let misses = c.misses.load(Relaxed);
        let redis = match &self.redis {
            None => None,
            Some(redis) => {
                let ping_ms = redis.ping().await.ok().map(|d| d.as_secs_f64() * 1000.0);
                let count = redis
                    .count_matching(&KeyPattern::all().redis_match())
                    .await
                    .ok();
                let link = redis.status();
                Some(RedisCacheStats {
                    status: if link.status == "connected" {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    link,
                    keys: count.map(|c| c.keys),
                    keys_exact: count.is_some_and(|c| c.exact),
                    ping_ms,
                    read_errors: c.redis_read_errors.load(Relaxed),
                    write_errors: c.redis_write_errors.load(Relaxed),
                })
            }
        };
        CacheStats {
            enabled: self.config.enabled,
            hits,
            misses,
            memory_hits: c.memory_hits.load(Relaxed),
            redis_hits: c.redis_hits.load(Relaxed),
            hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            puts: c.puts.load(Relaxed),
            puts_rejected: c.puts_rejected.load(Relaxed),
            decode_errors: c.decode_errors.load(Relaxed),
            memory: self.memory.stats(),
            redis,
        }
    }
}

#[cfg(test)]
mod tests;
