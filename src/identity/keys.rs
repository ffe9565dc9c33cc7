//! Client keys issued by operators (`/internal/keys`).
//!
//! A key's secret is `keel_` + 32 base62 characters (≈ 190 bits from the OS
//! CSPRNG), shown once at creation; keel keeps only its SHA-256 digest. The
//! request path looks the digest up in a local `DashMap` (no Redis round
//! trip). With Redis, the records live in the hash `keel:{identity}:keys`
//! (field = key id, value = JSON record) and every instance re-reads it every
//! `IDENTITY_REFRESH_MS` (250 ms by default), so a revocation made on one
//! instance takes effect on all of them within that interval; without Redis
//! the store is this process's memory (one instance, lost on restart).

use super::{Identity, IdentityLimits, Kind, Role, Roles, now_unix};
use crate::redis_link::{RedisError, RedisLink};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// The Redis hash holding every record (one hash tag: Cluster-safe).
pub const REDIS_KEYS_HASH: &str = "keel:{identity}:keys";

/// The prefix every client-key secret starts with.
pub const SECRET_PREFIX: &str = "keel_";

/// A client key as stored (everything but the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKeyRecord {
    /// Public id (`ck_` + 16 hex digits).
    pub id: String,
    /// Operator-given name.
    pub name: String,
    /// Roles the key grants.
    pub roles: Vec<Role>,
    /// Tenant it acts for.
    pub tenant: Option<String>,
    /// Requests per sliding minute for this key, replacing `RATE_LIMIT_PER_MINUTE`.
    pub rate_limit_per_minute: Option<u32>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// After this (Unix seconds) the key is refused.
    pub expires_at: Option<i64>,
    /// When it was revoked, Unix seconds.
    pub revoked_at: Option<i64>,
    /// The identity id of the operator who created it.
    pub created_by: String,
    /// First 9 characters of the secret (`keel_` + 4), to recognise it.
    pub prefix: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
}

/// One key in the local view, with its last-use time.
struct LiveKey {
    record: ClientKeyRecord,
    /// Unix seconds of the last accepted request here; 0 = never.
    last_used: AtomicI64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// No key has that id.
    #[error("no client key with id {0:?}")]
    NotFound(String),
    /// Redis could not store the change (the key was not created / the
    /// revocation applies on this instance only until Redis is back).
    #[error("the client key store (Redis) is unavailable: {0}")]
    Unavailable(#[from] RedisError),
}

/// What an operator asks for when creating a key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Name shown in listings.
    pub name: String,
    /// Roles; empty = `client`.
    pub roles: Vec<Role>,
    /// Tenant.
    pub tenant: Option<String>,
    /// Own per-minute limit.
    pub rate_limit_per_minute: Option<u32>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

/// The client-key store: local view plus optional Redis.
pub struct ClientKeys {
    /// By hex digest of the secret: the hot-path lookup.
    by_digest: DashMap<String, Arc<LiveKey>>,
    redis: Option<Arc<RedisLink>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a secret.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// `len` characters of base62 from the OS CSPRNG (rejection sampling, no bias).
fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for b in buf {
            // 248 = 4 * 62: values at or above it would bias the alphabet.
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

impl ClientKeys {
    /// A store; with `redis`, shared by every instance using it.
    pub fn new(redis: Option<Arc<RedisLink>>) -> ClientKeys {
        ClientKeys {
            by_digest: DashMap::new(),
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

    /// Creates a key: returns its record and the secret (the only time the
    /// secret exists outside the caller).
    pub async fn create(
        &self,
        new: NewKey,
        created_by: &str,
    ) -> Result<(ClientKeyRecord, String), KeyStoreError> {
        let secret = format!(
            "{SECRET_PREFIX}{}",
            random_base62(32).map_err(|e| RedisError::Failed(format!("no randomness: {e}")))?
        );
        let id = format!("ck_{}", &digest(&secret)[48..]);
        let roles = if new.roles.is_empty() {
            vec![Role::Client]
        } else {
            Roles::of(&new.roles).to_vec()
        };
        let record = ClientKeyRecord {
            id,
            name: new.name,
            roles,
            tenant: new.tenant,
            rate_limit_per_minute: new.rate_limit_per_minute,
            created_at: now_unix(),
            expires_at: new.expires_at,
            revoked_at: None,
            created_by: created_by.to_string(),
            prefix: secret.chars().take(9).collect(),
            secret_sha256: digest(&secret),
        };
        self.save(&record).await?;
        self.install(record.clone());
        Ok((record, secret))
    }

    async fn save(&self, record: &ClientKeyRecord) -> Result<(), KeyStoreError> {
        if let Some(redis) = &self.redis {
            let json =
                serde_json::to_string(record).map_err(|e| RedisError::Failed(e.to_string()))?;
            redis
                .query::<()>(
                    redis::cmd("HSET")
                        .arg(REDIS_KEYS_HASH)
                        .arg(&record.id)
                        .arg(json),
                )
                .await?;
        }
        Ok(())
    }

    fn install(&self, mut record: ClientKeyRecord) {
        let digest = record.secret_sha256.clone();
        match self.by_digest.get_mut(&digest) {
            // Revocation is one-way: a stale copy from Redis (written before a
            // revocation Redis did not take) never brings a key back.
            Some(mut live) if live.record.revoked_at.is_some() && record.revoked_at.is_none() => {
                record.revoked_at = live.record.revoked_at;
                if live.record != record {
                    let last_used = live.last_used.load(Relaxed);
                    *live = Arc::new(LiveKey {
                        record,
                        last_used: AtomicI64::new(last_used),
                    });
                }
            }
            Some(mut live) if live.record != record => {
                let last_used = live.last_used.load(Relaxed);
                *live = Arc::new(LiveKey {
                    record,
                    last_used: AtomicI64::new(last_used),
                });
            }
            Some(_) => {}
            None => {
                self.by_digest.insert(
                    digest,
                    Arc::new(LiveKey {
                        record,
                        last_used: AtomicI64::new(0),
                    }),
                );
            }
        }
    }

    /// Revokes key `id` (idempotent). Applied locally at once; with Redis,
    /// on every instance at its next refresh.
    pub async fn revoke(&self, id: &str) -> Result<ClientKeyRecord, KeyStoreError> {
        if self.redis.is_some() {
            // Another instance may have created it: make sure it is known.
            // A failed refresh must not stop a revocation of a known key.
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "client keys not refreshed before a revocation");
            }
        }
        let mut record = self
            .by_digest
            .iter()
            .find(|e| e.record.id == id)
            .map(|e| e.record.clone())
            .ok_or_else(|| KeyStoreError::NotFound(id.to_string()))?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now_unix());
        }
        self.install(record.clone());
        self.save(&record).await?;
        Ok(record)
    }

    /// Re-reads every record from Redis into the local view (a no-op without Redis).
    pub async fn refresh(&self) -> Result<(), KeyStoreError> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let all: std::collections::HashMap<String, String> = redis
            .query(redis::cmd("HGETALL").arg(REDIS_KEYS_HASH))
            .await?;
        let mut seen = std::collections::HashSet::with_capacity(all.len());
        for json in all.values() {
            match serde_json::from_str::<ClientKeyRecord>(json) {
                Ok(record) => {
                    seen.insert(record.secret_sha256.clone());
                    let unrevoked_here = record.revoked_at.is_none()
                        && self
                            .by_digest
                            .get(&record.secret_sha256)
                            .is_some_and(|l| l.record.revoked_at.is_some());
                    self.install(record.clone());
                    if unrevoked_here {
                        // A revocation made while Redis was down: share it now.
                        if let Some(live) = self
                            .by_digest
                            .get(&record.secret_sha256)
                            .map(|l| l.record.clone())
                        {
                            self.save(&live).await?;
                            tracing::info!(key = %live.id, "pending client key revocation shared through Redis");
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable client key record in Redis; skipped")
                }
            }
        }
        self.by_digest.retain(|digest, _| seen.contains(digest));
        Ok(())
    }

    /// Resolves a presented `keel_…` secret. `None` = not a key of this
    /// store; `Some(Err)` = a known key that may no longer be used.
    pub fn authenticate(&self, secret: &str) -> Option<Result<Identity, super::AuthError>> {
        let live = self.by_digest.get(&digest(secret))?.clone();
        let record = &live.record;
        let now = now_unix();
        if record.revoked_at.is_some() {
            return Some(Err(super::AuthError::Revoked));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Some(Err(super::AuthError::KeyExpired));
        }
        live.last_used.store(now, Relaxed);
        Some(Ok(Identity {
            id: format!("client_key:{}", record.id),
            kind: Kind::ClientKey,
            roles: Roles::of(&record.roles),
            tenant: record.tenant.clone(),
            limits: record.rate_limit_per_minute.map(|n| IdentityLimits {
                rate_limit_per_minute: Some(n),
            }),
            key_prefix: Some(format!("{}...", record.prefix)),
        }))
    }

    /// Every key (revoked ones included), newest first, with `last_used`
    /// (Unix seconds on this instance, `None` = not used here).
    pub fn list(&self) -> Vec<(ClientKeyRecord, Option<i64>)> {
        let mut out: Vec<_> = self
            .by_digest
            .iter()
            .map(|e| {
                let used = e.last_used.load(Relaxed);
                (e.record.clone(), (used > 0).then_some(used))
            })
            .collect();
        out.sort_by(|a, b| {
            b.0.created_at
                .cmp(&a.0.created_at)
                .then(a.0.id.cmp(&b.0.id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_authenticate_revoke_in_memory() {
        let store = ClientKeys::new(None);
        let (record, secret) = store
            .create(
                NewKey {
                    name: "ci".into(),
                    rate_limit_per_minute: Some(3),
                    ..NewKey::default()
                },
                "key:ops",
            )
            .await
            .unwrap();
        assert!(
            secret.starts_with("keel_") && secret.len() == 37,
            "{secret}"
        );
        assert!(secret[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(record.secret_sha256, digest(&secret));
        assert!(!serde_json::to_string(&record).unwrap().contains(&secret));
        let id = store.authenticate(&secret).unwrap().unwrap();
        assert_eq!(id.kind, Kind::ClientKey);
        assert_eq!(id.roles, Roles::CLIENT);
        assert_eq!(id.rate_limit_per_minute(), Some(3));
        assert!(store.authenticate("keel_nope").is_none());
        store.revoke(&record.id).await.unwrap();
        assert_eq!(
            store.authenticate(&secret).unwrap().unwrap_err(),
            super::super::AuthError::Revoked
        );
        assert!(matches!(
            store.revoke("ck_missing").await,
            Err(KeyStoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let store = ClientKeys::new(None);
        let (_, secret) = store
            .create(
                NewKey {
                    name: "old".into(),
                    expires_at: Some(now_unix() - 1),
                    ..NewKey::default()
                },
                "op",
            )
            .await
            .unwrap();
        assert_eq!(
            store.authenticate(&secret).unwrap().unwrap_err(),
            super::super::AuthError::KeyExpired
        );
    }

    #[test]
    fn secrets_differ() {
        let a = random_base62(32).unwrap();
        let b = random_base62(32).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
