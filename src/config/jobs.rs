//! `JOB_*` settings, read once at start-up and validated like every other
//! variable (a bad value names the variable, the value and the range).
//! Defined in the configuration layer, not in `crate::jobs`, so that
//! configuration never depends on the job runtime.

use crate::env::{
    ConfigError, EnvSource, Environment, boolean, choice, millis, number, seconds, text,
};
use crate::job::Operation;
use crate::resilience::config::ResilienceConfig;
use std::time::Duration;

/// Where jobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In this process only: one instance, jobs die with it.
    Memory,
    /// Redis Streams: durable and shared by every instance.
    Redis,
}

impl StoreKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// The validated job settings.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `JOB_STORE`: `memory` or `redis` (default: redis when `REDIS_URL` is set).
    pub store: StoreKind,
    /// `JOB_WORKERS`: jobs run at once by this instance (default 4, 1–1024).
    pub workers: usize,
    /// `JOB_QUEUE_MAX`: jobs waiting at most before submissions get 503
    /// `QUEUE_FULL` (default 10000, 1–10 000 000).
    pub queue_max: u64,
    /// `JOB_DEFAULT_TTL_SECONDS`: how long keel keeps trying a job that did
    /// not say (default 3600, 1–86400).
    pub default_ttl: Duration,
    /// `JOB_RESULT_TTL_SECONDS`: how long a final job stays readable
    /// (default 86400, 1–2 592 000).
    pub result_ttl: Duration,
    /// `JOB_VISIBILITY_TIMEOUT_SECONDS`: a delivery not finished within this is
    /// reclaimed by another consumer (default: the longest policy deadline + 30 s).
    pub visibility_timeout: Duration,
    /// `JOB_MAX_DELIVERIES`: deliveries before a job is dead-lettered (default 5, 1–100).
    pub max_deliveries: u32,
    /// `JOB_WEBHOOK_SECRET`: HMAC key of `Keel-Signature` (unset: callbacks are
    /// unsigned, and refused in staging/production).
    pub webhook_secret: Option<String>,
    /// `JOB_WEBHOOK_MAX_ATTEMPTS`: webhook deliveries tried (default 5, 1–20).
    pub webhook_max_attempts: u32,
    /// `JOB_WEBHOOK_BACKOFF_MS`: first wait between webhook attempts, doubled
    /// each time (default 1000, 10–60000).
    pub webhook_backoff: Duration,
    /// `JOB_WEBHOOK_TIMEOUT_SECONDS`: one webhook POST's timeout (default 10, 1–120).
    pub webhook_timeout: Duration,
    /// `JOB_WEBHOOK_ALLOW_PRIVATE`: allow loopback/private/link-local callback
    /// targets in staging/production (default false; always allowed elsewhere).
    pub webhook_allow_private: bool,
    /// True in staging/production: callbacks need a secret and a public target.
    pub strict_callbacks: bool,
    /// `JOB_INSTANCE_ID`: this instance's consumer name (default host-pid-random).
    pub instance_id: String,
}

impl JobsConfig {
    /// Reads the `JOB_*` variables.
    pub fn from_env(
        env: &dyn EnvSource,
        redis_url: Option<&str>,
        environment: Environment,
        resilience: &ResilienceConfig,
    ) -> Result<JobsConfig, ConfigError> {
        let store = choice(
            env,
            "JOB_STORE",
            &[("memory", StoreKind::Memory), ("redis", StoreKind::Redis)],
        )?
        .unwrap_or(if redis_url.is_some() {
            StoreKind::Redis
        } else {
            StoreKind::Memory
        });
        if store == StoreKind::Redis && redis_url.is_none() {
            return Err(ConfigError::conflict(
                &["JOB_STORE", "REDIS_URL"],
                "JOB_STORE=redis needs REDIS_URL",
            ));
        }
        let longest = Operation::ALL
            .iter()
            .map(|op| resilience.policy(*op).max_delay)
            .max()
            .unwrap_or(Duration::from_secs(300));
        let default_visibility = longest.as_secs() + 30;
        let strict = environment.requires_auth();
        let webhook_secret = text(env, "JOB_WEBHOOK_SECRET");
        let instance_id = match env.get("JOB_INSTANCE_ID") {
            Some(id) => {
                let id = id.trim().to_string();
                let ok = !id.is_empty()
                    && id.len() <= 100
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
                if !ok {
                    return Err(ConfigError::invalid(
                        "JOB_INSTANCE_ID",
                        id,
                        "1 to 100 letters, digits, '-', '_', '.', ':'",
                    ));
                }
                id
            }
            None => default_instance_id(),
        };
        Ok(JobsConfig {
            store,
            workers: number(env, "JOB_WORKERS", 4usize, 1, 1024)?,
            queue_max: number(env, "JOB_QUEUE_MAX", 10_000u64, 1, 10_000_000)?,
            default_ttl: seconds(env, "JOB_DEFAULT_TTL_SECONDS", 3600, 1, 86_400)?,
            result_ttl: seconds(env, "JOB_RESULT_TTL_SECONDS", 86_400, 1, 2_592_000)?,
            visibility_timeout: seconds(
                env,
                "JOB_VISIBILITY_TIMEOUT_SECONDS",
                default_visibility,
                1,
                86_400,
            )?,
            max_deliveries: number(env, "JOB_MAX_DELIVERIES", 5u32, 1, 100)?,
            webhook_secret,
            webhook_max_attempts: number(env, "JOB_WEBHOOK_MAX_ATTEMPTS", 5u32, 1, 20)?,
            webhook_backoff: millis(env, "JOB_WEBHOOK_BACKOFF_MS", 1000, 10, 60_000)?,
            webhook_timeout: seconds(env, "JOB_WEBHOOK_TIMEOUT_SECONDS", 10, 1, 120)?,
            webhook_allow_private: boolean(env, "JOB_WEBHOOK_ALLOW_PRIVATE", false)?,
            strict_callbacks: strict,
            instance_id,
        })
    }
}

/// `<host>-<pid>-<random>`: unique per process, readable in stats.
fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "keel".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(60)
        .collect();
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::env::MapEnv;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_source(&MapEnv::new(vars))
    }

    #[test]
    fn defaults_and_store_choice() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.jobs.store, StoreKind::Memory);
        assert_eq!(s.jobs.workers, 4);
        assert_eq!(s.jobs.max_deliveries, 5);
        assert_eq!(s.jobs.default_ttl, Duration::from_secs(3600));
        // simple preset: balanced, 30 s deadline, + 30 s margin.
        assert!(s.jobs.visibility_timeout >= Duration::from_secs(60));
        let s = settings(&[("REDIS_URL", "redis://127.0.0.1:1")]).unwrap();
        assert_eq!(s.jobs.store, StoreKind::Redis);
        let s = settings(&[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("JOB_STORE", "memory"),
        ])
        .unwrap();
        assert_eq!(s.jobs.store, StoreKind::Memory);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = settings(&[("JOB_WORKERS", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JOB_WORKERS=\"0\": allowed an integer from 1 to 1024"
        );
        let err = settings(&[("JOB_STORE", "kafka")]).unwrap_err();
        assert!(err.to_string().contains("memory | redis"), "{err}");
        let err = settings(&[("JOB_STORE", "redis")]).unwrap_err();
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
        let err = settings(&[("JOB_WEBHOOK_ALLOW_PRIVATE", "maybe")]).unwrap_err();
        assert!(
            err.to_string().contains("JOB_WEBHOOK_ALLOW_PRIVATE"),
            "{err}"
        );
        let err = settings(&[("JOB_INSTANCE_ID", "a b")]).unwrap_err();
        assert!(err.to_string().contains("JOB_INSTANCE_ID"), "{err}");
    }
}
