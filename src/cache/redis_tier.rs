//! The shared tier: cache entries in Redis, reached only through
//! [`RedisLink`] (timeouts, cool-off, lazy reconnection).
//!
//! Commands: a read is one round trip (a tiny Lua script returning the value
//! and its `PTTL`, so a hit can warm the memory tier with the time the entry
//! really has left); a write is `SET key value EX ttl`; invalidation is
//! `SCAN cursor MATCH keel:v1:cache:<pattern> COUNT 500` with one `UNLINK`
//! per page (never `KEYS`, never a blocking `DEL`); stats count keys with a
//! bounded `SCAN`. Every command touches at most one key except `UNLINK`,
//! whose keys come from the same node's `SCAN`.
//!
//! This layer returns [`RedisError`]s; the [`super::Cache`] facade turns them
//! into misses and skipped writes. It never sees decoded values.

use crate::redis_link::{RedisError, RedisLink, RedisStatus};
use std::sync::Arc;
use std::time::Duration;

/// Keys asked for per `SCAN` page during invalidation.
pub const SCAN_BATCH: usize = 500;
/// Keys asked for per `SCAN` page when counting, and the most pages a count
/// reads; past `COUNT_PAGES` pages the count is a lower bound.
const COUNT_BATCH: usize = 1000;
const COUNT_PAGES: usize = 20;

/// Returns the value and, when it has one, its remaining lifetime in ms;
/// `false` (nil) when the key is absent.
const GET_WITH_PTTL: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
";

/// The result of a bounded key count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCount {
    /// Keys seen.
    pub keys: u64,
    /// False when the count stopped early and `keys` is a lower bound.
    pub exact: bool,
}

/// Cache commands over one [`RedisLink`].
pub struct RedisTier {
    link: Arc<RedisLink>,
    get_script: redis::Script,
}

impl RedisTier {
    /// A tier over `link`.
    pub fn new(link: Arc<RedisLink>) -> RedisTier {
        RedisTier {
            link,
            get_script: redis::Script::new(GET_WITH_PTTL),
        }
    }

    /// The stored bytes under `key` and their remaining TTL (`None` when the
    /// key has no expiry), or `Ok(None)` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, RedisError> {
        let reply: Option<(Vec<u8>, i64)> = self
            .link
            .script(&self.get_script, &[key.to_string()], &[])
            .await?;
        Ok(reply.map(|(bytes, pttl_ms)| {
            let ttl = u64::try_from(pttl_ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis);
            (bytes, ttl)
        }))
    }

    /// `SET key bytes EX ttl` (TTL rounded up to whole seconds, at least 1).
    pub async fn set(&self, key: &str, bytes: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes).arg("EX").arg(secs.max(1));
        self.link.query::<()>(&cmd).await
    }

    /// Unlinks every key matching the Redis glob `pattern`, page by page.
    /// Returns how many keys were removed and, if a command failed part-way,
    /// the error (the count then covers the pages done before it).
    pub async fn unlink_matching(&self, pattern: &str) -> (u64, Option<RedisError>) {
        let mut removed = 0u64;
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<String>) = match self.link.query(&scan).await {
                Ok(page) => page,
                Err(e) => return (removed, Some(e)),
            };
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                match self.link.query::<u64>(&unlink).await {
                    Ok(n) => removed += n,
                    Err(e) => return (removed, Some(e)),
                }
            }
            if next == 0 {
                return (removed, None);
            }
            cursor = next;
        }
    }

    /// Counts keys matching `pattern` with at most a bounded number of
    /// `SCAN` pages (about 20 000 keys of the database examined).
    pub async fn count_matching(&self, pattern: &str) -> Result<KeyCount, RedisError> {
        let mut keys = 0u64;
        let mut cursor = 0u64;
        for _ in 0..COUNT_PAGES {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(COUNT_BATCH);
            let (next, page): (u64, Vec<String>) = self.link.query(&scan).await?;
            keys += page.len() as u64;
            if next == 0 {
                return Ok(KeyCount { keys, exact: true });
            }
            cursor = next;
        }
        Ok(KeyCount { keys, exact: false })
    }

    /// PING round-trip time.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        self.link.ping().await
    }

    /// The link's operator view.
    pub fn status(&self) -> RedisStatus {
        self.link.status()
    }
}
