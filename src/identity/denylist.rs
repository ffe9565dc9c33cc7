//! Revoked JWT ids (`POST /internal/tokens/revoke {jti, exp}`).
//!
//! Every JWT request checks the local set (a `DashMap` read, no Redis round
//! trip). With Redis, revocations go to the sorted set
//! `keel:{identity}:jti` scored by `exp`, which every instance re-reads every
//! `IDENTITY_REFRESH_MS`; entries whose `exp` has passed are dropped from
//! both (an expired token is refused anyway). Without Redis the set is this
//! instance's memory only.

use super::now_unix;
use crate::redis_link::{RedisError, RedisLink};
use dashmap::DashMap;
use std::sync::Arc;

/// The Redis sorted set of revoked `jti`s (score = `exp`).
pub const REDIS_DENYLIST: &str = "keel:{identity}:jti";

/// The denylist: local view plus optional Redis.
pub struct Denylist {
    /// `jti` -> `exp` (Unix seconds).
    local: DashMap<String, i64>,
    redis: Option<Arc<RedisLink>>,
}

impl Denylist {
    /// A denylist; with `redis`, shared by every instance using it.
    pub fn new(redis: Option<Arc<RedisLink>>) -> Denylist {
        Denylist {
            local: DashMap::new(),
            redis,
        }
    }

    /// `redis` or `memory`.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Whether `jti` is revoked (local read only).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.local.get(jti).is_some_and(|exp| *exp > now_unix())
    }

    /// Revokes `jti` until `exp`. Applied here at once; an `Err` means Redis
    /// did not take it, so other instances will not see it.
    pub async fn revoke(&self, jti: &str, exp: i64) -> Result<(), RedisError> {
        self.local.insert(jti.to_string(), exp);
        if let Some(redis) = &self.redis {
            redis
                .query::<()>(redis::cmd("ZADD").arg(REDIS_DENYLIST).arg(exp).arg(jti))
                .await?;
        }
        Ok(())
    }

    /// Number of entries in the local view.
    pub fn len(&self) -> usize {
        self.local.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// Drops expired entries and, with Redis, merges the shared set in.
    pub async fn refresh(&self) -> Result<(), RedisError> {
        let now = now_unix();
        self.local.retain(|_, exp| *exp > now);
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        redis
            .query::<()>(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(REDIS_DENYLIST)
                    .arg("-inf")
                    .arg(now),
            )
            .await?;
        let live: Vec<(String, i64)> = redis
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(REDIS_DENYLIST)
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .arg("WITHSCORES"),
            )
            .await?;
        for (jti, exp) in live {
            self.local.insert(jti, exp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoked_until_exp() {
        let d = Denylist::new(None);
        d.revoke("a", now_unix() + 60).await.unwrap();
        d.revoke("old", now_unix() - 1).await.unwrap();
        assert!(d.is_revoked("a"));
        assert!(!d.is_revoked("old"));
        assert!(!d.is_revoked("b"));
        d.refresh().await.unwrap();
        assert_eq!(d.len(), 1);
    }
}
