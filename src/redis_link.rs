//! `RedisLink`: keel's one way to talk to Redis, built so that a slow or dead
//! Redis never turns into client errors or stalls.
//!
//! - The connection is lazy and self-healing (`redis`'s `ConnectionManager`):
//!   keel starts even when `REDIS_URL` points at a dead server and picks Redis
//!   up when it appears.
//! - Every command has a short timeout (`REDIS_TIMEOUT_MS`, default 50 ms).
//! - After a failure the link enters a **cool-off** (`REDIS_COOLOFF_MS`,
//!   default 2 s): calls fail at once without touching the network, so a
//!   request pays the Redis timeout at most once per cool-off, not once per
//!   call site. The first call after the cool-off is the probe that brings
//!   the link back.
//!
//! Each subsystem (cache, rate limiter) owns its own link, so their
//! cool-offs and statistics are independent. Time is tokio time (testable
//! with a paused clock).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;

/// Why a Redis call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The link is cooling off after a recent failure; nothing was sent.
    #[error("redis unavailable (cooling off after: {0})")]
    CoolingOff(String),
    /// The command did not answer within the timeout.
    #[error("redis command timed out after {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("redis error: {0}")]
    Failed(String),
}

/// Tunables of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisLinkOptions {
    /// Per-command (and connect) timeout.
    pub timeout: Duration,
    /// How long to stop trying after a failure.
    pub cooloff: Duration,
}

impl Default for RedisLinkOptions {
    fn default() -> Self {
        RedisLinkOptions {
            timeout: Duration::from_millis(50),
            cooloff: Duration::from_secs(2),
        }
    }
}

/// Operator view of a link (also its schema in both OpenAPI documents).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RedisStatus {
    /// `connected`, `unavailable` (cooling off or last call failed) or `unknown` (never used).
    pub status: &'static str,
    /// The URL with any password removed.
    pub url: String,
    /// Commands sent.
    pub commands: u64,
    /// Commands that failed or timed out.
    pub failures: u64,
    /// Calls refused during cool-off (no network used).
    pub skipped: u64,
    /// Latency of the last successful command, in milliseconds.
    #[schema(required = true)]
    pub last_latency_ms: Option<f64>,
    /// The last error, if the link is not connected.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// The OpenAPI schema of an `Option<RedisStatus>` serialised with
/// [`or_not_configured`]: the link, or the `not_configured` marker. Never
/// built; it exists so a field using that serialiser can say
/// `#[schema(value_type = RedisLinkView)]`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum RedisLinkView {
    /// `REDIS_URL` is set.
    Configured(RedisStatus),
    /// No `REDIS_URL`.
    NotConfigured(RedisNotConfigured),
}

/// The schema of the `{"status": "not_configured"}` object that
/// [`or_not_configured`] writes for "no Redis".
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RedisNotConfigured {
    /// Always `not_configured`.
    pub status: String,
}

/// Serialises an optional Redis view so that "no Redis" is the object
/// `{"status": "not_configured"}` rather than `null`: operator clients (the
/// reference's among them) index `["redis"]["status"]` without a null check.
pub fn or_not_configured<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: serde::Serialize,
    S: serde::Serializer,
{
    use serde::Serialize;
    match value {
        Some(v) => v.serialize(serializer),
        None => serde_json::json!({"status": "not_configured"}).serialize(serializer),
    }
}

/// A Redis connection with timeouts and a cool-off.
pub struct RedisLink {
    conn: redis::aio::ConnectionManager,
    url: String,
    options: RedisLinkOptions,
    /// Milliseconds since `epoch` until which calls are refused (0 = none).
    down_until_ms: AtomicU64,
    epoch: Instant,
    used: AtomicBool,
    healthy: AtomicBool,
    commands: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    last_latency_us: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Removes a password from a Redis URL for logs and status pages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<invalid url>".into(),
    }
}

impl RedisLink {
    /// Creates a lazy link; fails only when `url` is not a Redis URL.
    pub fn new(url: &str, options: RedisLinkOptions) -> Result<RedisLink, RedisError> {
        let client = redis::Client::open(url).map_err(|e| RedisError::Failed(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // Reconnect attempts happen on use; keep each one short.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisError::Failed(e.to_string()))?;
        Ok(RedisLink {
            conn,
            url: redact_url(url),
            options,
            down_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            used: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            commands: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_latency_us: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// True unless the link is cooling off.
    pub fn is_available(&self) -> bool {
        self.now_ms() >= self.down_until_ms.load(Relaxed)
    }

    /// True when the last command succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    fn fail(&self, error: RedisError) -> RedisError {
        self.failures.fetch_add(1, Relaxed);
        let was_healthy = self.healthy.swap(false, Relaxed);
        let cooloff_ms = u64::try_from(self.options.cooloff.as_millis()).unwrap_or(u64::MAX);
        self.down_until_ms
            .store(self.now_ms().saturating_add(cooloff_ms), Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
        if was_healthy || !self.used.load(Relaxed) {
            tracing::warn!(url = %self.url, %error, cooloff_ms, "redis unavailable; using the memory tier");
        }
        error
    }

    /// Runs one command with the timeout and cool-off rules.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await
    }

    /// Runs a Lua script (EVALSHA, loading it on first use).
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        self.run(|mut conn| async move {
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisError>
    where
        F: FnOnce(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_available() {
            self.skipped.fetch_add(1, Relaxed);
            let last = self
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            return Err(RedisError::CoolingOff(last));
        }
        let was_used = self.used.swap(true, Relaxed);
        self.commands.fetch_add(1, Relaxed);
        let started = Instant::now();
        match tokio::time::timeout(self.options.timeout, op(self.conn.clone())).await {
            Ok(Ok(value)) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.last_latency_us.store(us, Relaxed);
                if !self.healthy.swap(true, Relaxed) && was_used {
                    tracing::info!(url = %self.url, "redis available again");
                }
                // Redis answered: a cool-off started by a command that failed
                // meanwhile (e.g. one timeout under load) ends now.
                self.down_until_ms.store(0, Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                Ok(value)
            }
            Ok(Err(e)) if is_server_reply_error(&e) => {
                // The server answered (e.g. WRONGTYPE): the link itself is fine.
                Err(RedisError::Failed(e.to_string()))
            }
            Ok(Err(e)) => Err(self.fail(RedisError::Failed(e.to_string()))),
            Err(_) => Err(self.fail(RedisError::Timeout(self.options.timeout))),
        }
    }

    /// Round-trip time of a PING.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        self.query::<String>(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }

    /// Operator view.
    pub fn status(&self) -> RedisStatus {
        let used = self.used.load(Relaxed);
        let healthy = self.healthy.load(Relaxed);
        RedisStatus {
            status: match (used, healthy) {
                (false, _) => "unknown",
                (true, true) if self.is_available() => "connected",
                _ => "unavailable",
            },
            url: self.url.clone(),
            commands: self.commands.load(Relaxed),
            failures: self.failures.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            last_latency_ms: healthy.then(|| self.last_latency_us.load(Relaxed) as f64 / 1000.0),
            last_error: self.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }
}

/// True for errors that are the server's answer to a valid exchange.
fn is_server_reply_error(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout())
        && e.kind() != redis::ErrorKind::Io
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_testkit::redis_server::RedisServer;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }

    #[tokio::test]
    async fn a_dead_server_costs_one_timeout_then_nothing_until_the_cooloff_ends() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let options = RedisLinkOptions {
            timeout: Duration::from_millis(50),
            cooloff: Duration::from_millis(300),
        };
        let link = RedisLink::new(&server.url(), options).unwrap();
        assert_eq!(link.status().status, "unknown");
        link.ping().await.expect("server answers");
        assert_eq!(link.status().status, "connected");

        server.kill();
        let started = Instant::now();
        assert!(link.ping().await.is_err());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "bounded: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        for _ in 0..100 {
            assert!(matches!(link.ping().await, Err(RedisError::CoolingOff(_))));
        }
        assert!(
            started.elapsed() < Duration::from_millis(20),
            "cool-off answers at once"
        );
        assert_eq!(link.status().status, "unavailable");
        assert_eq!(link.status().skipped, 100);

        server.restart();
        tokio::time::sleep(Duration::from_millis(350)).await;
        // The connection manager may need a call or two to reconnect.
        let mut ok = false;
        for _ in 0..20 {
            if link.ping().await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
        assert!(ok, "link recovered by itself: {:?}", link.status());
        assert_eq!(link.status().status, "connected");
    }

    #[tokio::test]
    async fn keel_can_start_against_a_dead_server() {
        // Nothing listens on port 1: creating the link must not fail or block.
        let link = RedisLink::new("redis://127.0.0.1:1", RedisLinkOptions::default()).unwrap();
        assert!(link.ping().await.is_err());
        assert!(!link.is_available());
    }
}
