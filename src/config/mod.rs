//! Process configuration: everything keel reads from the environment.
//!
//! One source of truth: [`Settings::from_env`] reads every variable once at
//! start-up, applies defaults, validates ranges and returns a typed struct or a
//! [`ConfigError`] that names the variable, the bad value and what is allowed.
//! keel never falls back silently on a bad value. `.env` is honoured by the
//! binary (loaded before this runs); real environment variables win over it.
//!
//! Layering: [`crate::env`] is the bottom (variable sources, the one
//! [`ConfigError`], the one set of parse helpers). The domain modules own
//! their config types (`cache::CacheConfig`, `rate_limit::RateLimitConfig`,
//! `resilience::config`, `identity::config`, `telemetry::config`,
//! `providers::ProviderSettings`) and parse them with those helpers; the job
//! settings live here ([`jobs`]) because the job runtime depends on this
//! module. This module depends on no runtime layer (jobs, engine, actors,
//! api, server): [`Settings`] only assembles the parts.

pub mod jobs;

use crate::cache::CacheConfig;
use crate::env::{
    Allowed, ConfigError, EnvSource, Environment, ProcessEnv, boolean, choice, http_url, millis,
    number, seconds,
};
use crate::providers::{ProviderKind, ProviderSettings};
use crate::rate_limit::RateLimitConfig;
use crate::redis_link::RedisLinkOptions;
use crate::resilience::config::ResilienceConfig;
use std::time::Duration;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable, for terminals.
    Pretty,
}

/// The validated process configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to bind (`BACKEND_HOST`, default `127.0.0.1`).
    pub host: String,
    /// Port to bind (`BACKEND_PORT`, default 8000; 0 picks a free port).
    pub port: u16,
    /// `ENVIRONMENT`, default development.
    pub environment: Environment,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `keel=debug,tower_http=info` (default `info`).
    pub log_level: String,
    /// `LOG_FORMAT`: `json` or `pretty` (default pretty).
    pub log_format: LogFormat,
    /// Accepted client keys: `API_KEY` plus the comma list `ADDITIONAL_API_KEYS`. Empty = open access.
    pub api_keys: Vec<String>,
    /// Key of the operator API (`INTERNAL_API_KEY`). Unset: in development and
    /// testing the public keys (or open access) work; in staging and
    /// production the operator API is refused.
    pub internal_api_key: Option<String>,
    /// The primary provider (`AI_PROVIDER`), then the fallbacks (`AI_FALLBACK_PROVIDERS`) in order.
    pub providers: Vec<ProviderSettings>,
    /// Largest accepted request body in bytes (`MAX_REQUEST_SIZE`, default 10 MiB).
    pub max_request_size: usize,
    /// Most items in one batch call (`MAX_BATCH_REQUESTS_PER_CALL`, default 50).
    pub max_batch_requests: usize,
    /// Items of one batch processed at once (`BATCH_AI_CONCURRENCY_LIMIT`, default 5).
    pub batch_concurrency: usize,
    /// Requests served at once before the edge sheds load with 503 (`MAX_CONCURRENT_REQUESTS`, default 1024).
    pub max_concurrent_requests: usize,
    /// Longest wait for a complete HTTP/1 request head, counted from when the
    /// connection starts waiting for it (so it also closes idle HTTP/1.1
    /// connections) (`HTTP_HEADER_READ_TIMEOUT_SECONDS`, default 10, 1–3600).
    pub http_header_read_timeout: Duration,
    /// Longest time a request body may take to arrive; later is a 408
    /// (`HTTP_BODY_READ_TIMEOUT_SECONDS`, default 30, 1–3600).
    pub http_body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    /// (`HTTP_KEEPALIVE_IDLE_SECONDS`, default 5, 1–3600).
    pub http_keepalive_idle: Duration,
    /// Recent batches kept for `batch_status` (`BATCH_STATUS_RETENTION`, default 1000).
    pub batch_status_retention: usize,
    /// Concurrent calls per provider, the bulkhead (`PROVIDER_MAX_CONCURRENCY`, default 256).
    pub provider_max_concurrency: usize,
    /// Longest wait for a bulkhead slot before failing over (`BULKHEAD_MAX_WAIT_MS`, default 100 ms).
    pub bulkhead_max_wait: Duration,
    /// Redis shared by the cache and the rate limiter (`REDIS_URL`); `None` =
    /// memory tiers only.
    pub redis_url: Option<String>,
    /// Redis command timeout and cool-off (`REDIS_TIMEOUT_MS`, default 50;
    /// `REDIS_COOLOFF_MS`, default 2000).
    pub redis: RedisLinkOptions,
    /// Origins allowed to call keel from a browser (`CORS_ORIGINS`, comma
    /// list; `*` = any; empty = same-origin only).
    pub cors_origins: Vec<String>,
    /// A separate listener for the operator API (`INTERNAL_BIND`, e.g.
    /// `127.0.0.1:9000`); when set, `/internal` leaves the main port.
    pub internal_bind: Option<std::net::SocketAddr>,
    /// Serve the operator API's docs (`INTERNAL_DOCS`; default on, except in production).
    pub internal_docs: bool,
    /// How long in-flight requests may take to finish after SIGTERM
    /// (`SHUTDOWN_GRACE_SECONDS`, default 30, 0–3600).
    pub shutdown_grace: Duration,
    /// How long readiness reports 503 before the listener closes, so load
    /// balancers stop sending traffic first (`SHUTDOWN_DRAIN_DELAY_SECONDS`, default 0, 0–300).
    pub shutdown_drain_delay: Duration,
    /// Response cache (`CACHE_*`).
    pub cache: CacheConfig,
    /// Rate limits (`RATE_LIMIT_*`, `TRUST_PROXY_HEADERS`).
    pub rate_limit: RateLimitConfig,
    /// Retry, breaker and deadline policies per operation (`RESILIENCE_PRESET`,
    /// `RESILIENCE_CUSTOM_CONFIG`, legacy variables).
    pub resilience: ResilienceConfig,
    /// Async jobs (`JOB_*`).
    pub jobs: jobs::JobsConfig,
    /// `STRICT_OPTIONS` (default false): an option name the operation does not
    /// use is a 422 instead of being ignored and reported in `metadata.ignored_options`.
    pub strict_options: bool,
    /// `CHAOS_ENABLED` (default false): allows fault-injection experiments
    /// through `/internal/chaos` (403 `CHAOS_DISABLED` otherwise).
    pub chaos_enabled: bool,
    /// `BREAKER_SHARING` (default on; only with `REDIS_URL`): circuit-breaker
    /// transitions, failure counts and the half-open probe are shared by
    /// every instance on the same Redis ([`crate::cluster`]).
    pub breaker_sharing: bool,
    /// Identities: JWT verification, client-key refresh, audit (`JWT_*`,
    /// `IDENTITY_REFRESH_MS`, `AUDIT_LOG_CAPACITY`).
    pub identity: crate::identity::IdentityConfig,
    /// OpenTelemetry trace export (`OTEL_*`); `None` without an OTLP endpoint.
    /// `keel serve` installs it with its log subscriber
    /// ([`crate::logging::init`]); an embedding process calls
    /// [`crate::telemetry::install`] for its own subscriber.
    pub tracing: Option<crate::telemetry::TracingConfig>,
}

impl Settings {
    /// The pieces of these settings the authenticator reads.
    pub fn authenticator(&self) -> crate::identity::AuthenticatorSettings<'_> {
        crate::identity::AuthenticatorSettings {
            environment: self.environment,
            api_keys: &self.api_keys,
            internal_api_key: self.internal_api_key.as_deref(),
            redis_url: self.redis_url.as_deref(),
            redis: self.redis,
            identity: &self.identity,
        }
    }

    /// Reads and validates the configuration from the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_source(&ProcessEnv)
    }

    /// Reads and validates the configuration from any variable source (tests use [`crate::env::MapEnv`]).
    pub fn from_source(env: &dyn EnvSource) -> Result<Settings, ConfigError> {
        let environment = match env.get("ENVIRONMENT") {
            None => Environment::Development,
            Some(v) => v.parse().map_err(|_| {
                ConfigError::invalid(
                    "ENVIRONMENT",
                    v.clone(),
                    Allowed::OneOf(vec!["development", "testing", "staging", "production"]),
                )
            })?,
        };
        let log_format = choice(
            env,
            "LOG_FORMAT",
            &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty)],
        )?
        .unwrap_or(LogFormat::Pretty);

        let mut api_keys: Vec<String> = Vec::new();
        if let Some(k) = env.get("API_KEY") {
            push_key(&mut api_keys, &k);
        }
        if let Some(list) = env.get("ADDITIONAL_API_KEYS") {
            for k in list.split(',') {
                push_key(&mut api_keys, k);
            }
        }
        if api_keys.is_empty() && environment.requires_auth() {
            return Err(ConfigError::conflict(
                &["API_KEY", "ENVIRONMENT"],
                format!(
                    "ENVIRONMENT={environment} requires at least one API key: set API_KEY \
                     (and optionally ADDITIONAL_API_KEYS); open access is only allowed in \
                     development and testing"
                ),
            ));
        }

        let providers = provider_settings(env)?;
        let redis_url = redis_url(env)?;
        let resilience = crate::resilience::config::load(env)?;
        let jobs = jobs::JobsConfig::from_env(env, redis_url.as_deref(), environment, &resilience)?;

        Ok(Settings {
            host: env
                .get("BACKEND_HOST")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: number(env, "BACKEND_PORT", 8000u16, 0, u16::MAX)?,
            environment,
            log_level: env.get("LOG_LEVEL").unwrap_or_else(|| "info".into()),
            log_format,
            api_keys,
            internal_api_key: env
                .get("INTERNAL_API_KEY")
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty()),
            providers,
            max_request_size: number(env, "MAX_REQUEST_SIZE", 10 * 1024 * 1024, 1024, 1 << 30)?,
            max_batch_requests: number(env, "MAX_BATCH_REQUESTS_PER_CALL", 50, 1, 1000)?,
            batch_concurrency: number(env, "BATCH_AI_CONCURRENCY_LIMIT", 5, 1, 256)?,
            max_concurrent_requests: number(env, "MAX_CONCURRENT_REQUESTS", 1024, 1, 1_000_000)?,
            http_header_read_timeout: seconds(
                env,
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                10,
                1,
                3600,
            )?,
            http_body_read_timeout: seconds(env, "HTTP_BODY_READ_TIMEOUT_SECONDS", 30, 1, 3600)?,
            http_keepalive_idle: seconds(env, "HTTP_KEEPALIVE_IDLE_SECONDS", 5, 1, 3600)?,
            batch_status_retention: number(env, "BATCH_STATUS_RETENTION", 1000, 1, 1_000_000)?,
            provider_max_concurrency: number(env, "PROVIDER_MAX_CONCURRENCY", 256, 1, 100_000)?,
            bulkhead_max_wait: millis(env, "BULKHEAD_MAX_WAIT_MS", 100, 0, 60_000)?,
            redis_url,
            redis: RedisLinkOptions {
                timeout: millis(env, "REDIS_TIMEOUT_MS", 50, 1, 10_000)?,
                cooloff: millis(env, "REDIS_COOLOFF_MS", 2000, 0, 600_000)?,
            },
            cors_origins: cors_origins(env)?,
            internal_bind: match env.get("INTERNAL_BIND") {
                None => None,
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    ConfigError::invalid(
                        "INTERNAL_BIND",
                        v.clone(),
                        "a socket address such as 127.0.0.1:9000",
                    )
                })?),
            },
            internal_docs: boolean(env, "INTERNAL_DOCS", environment != Environment::Production)?,
            shutdown_grace: seconds(env, "SHUTDOWN_GRACE_SECONDS", 30, 0, 3600)?,
            shutdown_drain_delay: seconds(env, "SHUTDOWN_DRAIN_DELAY_SECONDS", 0, 0, 300)?,
            cache: CacheConfig::from_env(env)?,
            rate_limit: RateLimitConfig::from_env(env)?,
            resilience,
            jobs,
            strict_options: boolean(env, "STRICT_OPTIONS", false)?,
            chaos_enabled: boolean(env, "CHAOS_ENABLED", false)?,
            breaker_sharing: boolean(env, "BREAKER_SHARING", true)?,
            identity: crate::identity::IdentityConfig::from_env(env)?,
            tracing: crate::telemetry::TracingConfig::from_env(env)?,
        })
    }

    /// The provider that answers first.
    pub fn primary_provider(&self) -> &ProviderSettings {
        // Invariant: `provider_settings` always returns at least the primary.
        &self.providers[0]
    }
}

/// `CORS_ORIGINS`: `*` or origins like `https://app.example.com`.
fn cors_origins(env: &dyn EnvSource) -> Result<Vec<String>, ConfigError> {
    let Some(list) = env.get("CORS_ORIGINS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let ok = o == "*"
                || reqwest::Url::parse(o).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
                });
            if ok {
                Ok(o.trim_end_matches('/').to_string())
            } else {
                Err(ConfigError::invalid(
                    "CORS_ORIGINS",
                    o,
                    "* or comma-separated origins like https://app.example.com",
                ))
            }
        })
        .collect()
}

/// `REDIS_URL`, checked to be a Redis URL (the server may be down: keel
/// starts anyway and picks Redis up when it appears). The only place the
/// variable is read: the cache, the rate limiter, jobs, identities and the
/// cluster all take [`Settings::redis_url`].
fn redis_url(env: &dyn EnvSource) -> Result<Option<String>, ConfigError> {
    let Some(url) = env.get("REDIS_URL").map(|u| u.trim().to_string()) else {
        return Ok(None);
    };
    redis::Client::open(url.as_str()).map_err(|e| {
        ConfigError::invalid(
            "REDIS_URL",
            crate::redis_link::redact_url(&url),
            format!("a redis://, rediss:// or unix:// URL ({e}); unset for memory tiers only"),
        )
    })?;
    Ok(Some(url))
}

fn push_key(keys: &mut Vec<String>, raw: &str) {
    let k = raw.trim();
    if !k.is_empty() && !keys.iter().any(|existing| existing == k) {
        keys.push(k.to_string());
    }
}

fn provider_kind(name: &'static str, raw: &str) -> Result<ProviderKind, ConfigError> {
    raw.trim().parse().map_err(|_| {
        ConfigError::invalid(name, raw, Allowed::OneOf(vec!["local", "openai", "gemini"]))
    })
}

/// Builds the ordered provider list: primary first, then distinct fallbacks.
fn provider_settings(env: &dyn EnvSource) -> Result<Vec<ProviderSettings>, ConfigError> {
    let primary = match env.get("AI_PROVIDER").filter(|v| !v.trim().is_empty()) {
        Some(v) => provider_kind("AI_PROVIDER", &v)?,
        None if env.get("GEMINI_API_KEY").is_some() => ProviderKind::Gemini,
        None if env.get("OPENAI_API_KEY").is_some() || env.get("OPENAI_BASE_URL").is_some() => {
            ProviderKind::OpenAi
        }
        None => ProviderKind::Local,
    };
    let mut order = vec![primary];
    match env.get("AI_FALLBACK_PROVIDERS") {
        // "none" turns fallbacks off: a failing primary then fails the request.
        Some(list) if list.trim().eq_ignore_ascii_case("none") => {}
        Some(list) => {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let kind = provider_kind("AI_FALLBACK_PROVIDERS", item)?;
                if !order.contains(&kind) {
                    order.push(kind);
                }
            }
        }
        None => {
            if primary != ProviderKind::Local {
                order.push(ProviderKind::Local);
            }
        }
    }
    let timeout = seconds(env, "PROVIDER_TIMEOUT_SECONDS", 30, 1, 600)?;
    // 0 turns the upstream health probes off.
    let probe_interval = Some(millis(
        env,
        "PROVIDER_PROBE_INTERVAL_MS",
        30_000,
        0,
        3_600_000,
    )?)
    .filter(|every| !every.is_zero());
    let model_override = env.get("AI_MODEL").filter(|m| !m.trim().is_empty());

    order
        .into_iter()
        .map(|kind| {
            // AI_MODEL names the primary's model; fallbacks use their kind's default.
            let model = match (&model_override, kind == primary) {
                (Some(m), true) => m.trim().to_string(),
                _ => kind.default_model().to_string(),
            };
            let (base_url, api_key) = match kind {
                ProviderKind::Local => (String::new(), None),
                ProviderKind::OpenAi => (
                    env.get("OPENAI_BASE_URL")
                        .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                    env.get("OPENAI_API_KEY"),
                ),
                ProviderKind::Gemini => (
                    env.get("GEMINI_BASE_URL")
                        .unwrap_or_else(|| "https://generativelanguage.googleapis.com".into()),
                    env.get("GEMINI_API_KEY"),
                ),
            };
            let base_url = base_url.trim().trim_end_matches('/').to_string();
            if kind != ProviderKind::Local {
                let name = match kind {
                    ProviderKind::OpenAi => "OPENAI_BASE_URL",
                    _ => "GEMINI_BASE_URL",
                };
                http_url(name, &base_url, "an http:// or https:// URL")?;
            }
            let api_key = api_key
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty());
            if api_key.is_none() && base_url.contains("api.openai.com") {
                return Err(ConfigError::conflict(
                    &["OPENAI_API_KEY", "OPENAI_BASE_URL"],
                    "OPENAI_API_KEY is required to use api.openai.com (or set OPENAI_BASE_URL \
                     to an OpenAI-compatible server such as Ollama or vLLM)",
                ));
            }
            if api_key.is_none() && base_url.contains("googleapis.com") {
                return Err(ConfigError::conflict(
                    &["GEMINI_API_KEY", "GEMINI_BASE_URL"],
                    "GEMINI_API_KEY is required to use the Gemini API",
                ));
            }
            Ok(ProviderSettings {
                kind,
                model,
                base_url,
                api_key,
                timeout,
                probe_interval,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_source(&MapEnv::new(vars))
    }

    #[test]
    fn defaults_need_nothing() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 8000);
        assert_eq!(s.environment, Environment::Development);
        assert!(s.api_keys.is_empty());
        assert_eq!(s.providers.len(), 1);
        assert_eq!(s.primary_provider().kind, ProviderKind::Local);
        assert_eq!(s.max_batch_requests, 50);
        assert_eq!(s.batch_concurrency, 5);
    }

    #[test]
    fn production_without_keys_refuses() {
        let err = settings(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert!(err.to_string().contains("API_KEY"), "{err}");
        assert!(settings(&[("ENVIRONMENT", "production"), ("API_KEY", "k")]).is_ok());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_range() {
        let err = settings(&[("BACKEND_PORT", "99999")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid BACKEND_PORT=\"99999\": allowed an integer from 0 to 65535"
        );
        let err = settings(&[("AI_PROVIDER", "claude")]).unwrap_err();
        assert!(err.to_string().contains("local | openai | gemini"));
        let err = settings(&[("ENVIRONMENT", "qa")]).unwrap_err();
        assert!(err.to_string().contains("ENVIRONMENT"));
        let err = settings(&[("OPENAI_BASE_URL", "not a url")]).unwrap_err();
        assert!(err.to_string().contains("OPENAI_BASE_URL"));
    }

    #[test]
    fn http_read_limits_have_defaults_and_ranges() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.http_header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.http_body_read_timeout, Duration::from_secs(30));
        assert_eq!(s.http_keepalive_idle, Duration::from_secs(5));
        let s = settings(&[("HTTP_BODY_READ_TIMEOUT_SECONDS", "2")]).unwrap();
        assert_eq!(s.http_body_read_timeout, Duration::from_secs(2));
        for name in [
            "HTTP_HEADER_READ_TIMEOUT_SECONDS",
            "HTTP_BODY_READ_TIMEOUT_SECONDS",
            "HTTP_KEEPALIVE_IDLE_SECONDS",
        ] {
            let err = settings(&[(name, "0")]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid {name}=\"0\": allowed an integer from 1 to 3600")
            );
        }
    }

    #[test]
    fn upstream_probes_default_to_30_s_and_zero_turns_them_off() {
        let openai = [("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")];
        let s = settings(&openai).unwrap();
        assert_eq!(
            s.primary_provider().probe_interval,
            Some(Duration::from_secs(30))
        );
        let s = settings(&[openai[0], ("PROVIDER_PROBE_INTERVAL_MS", "0")]).unwrap();
        assert_eq!(s.primary_provider().probe_interval, None);
        let err = settings(&[("PROVIDER_PROBE_INTERVAL_MS", "-5")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid PROVIDER_PROBE_INTERVAL_MS=\"-5\": allowed an integer from 0 to 3600000"
        );
    }

    #[test]
    fn keys_are_merged_and_deduplicated() {
        let s = settings(&[("API_KEY", "a"), ("ADDITIONAL_API_KEYS", " b, a ,,c")]).unwrap();
        assert_eq!(s.api_keys, vec!["a", "b", "c"]);
    }

    #[test]
    fn provider_is_inferred_and_local_is_the_last_fallback() {
        let s = settings(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/")]).unwrap();
        let kinds: Vec<_> = s.providers.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![ProviderKind::OpenAi, ProviderKind::Local]);
        assert_eq!(s.providers[0].base_url, "http://127.0.0.1:11434/v1");

        let s = settings(&[
            ("AI_PROVIDER", "gemini"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9"),
            ("AI_FALLBACK_PROVIDERS", "openai,local"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:8"),
            ("AI_MODEL", "gemini-test"),
        ])
        .unwrap();
        let kinds: Vec<_> = s.providers.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ProviderKind::Gemini,
                ProviderKind::OpenAi,
                ProviderKind::Local
            ]
        );
        assert_eq!(s.providers[0].model, "gemini-test");
        assert_eq!(s.providers[1].model, ProviderKind::OpenAi.default_model());

        let s = settings(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:8/v1"),
            ("AI_FALLBACK_PROVIDERS", "none"),
        ])
        .unwrap();
        assert_eq!(s.providers.len(), 1);
    }

    #[test]
    fn redis_url_is_checked_once_without_echoing_passwords() {
        let s = settings(&[("REDIS_URL", " redis://:pw@localhost:6379/1 ")]).unwrap();
        assert_eq!(s.redis_url.as_deref(), Some("redis://:pw@localhost:6379/1"));
        let err = settings(&[("REDIS_URL", "http://:s3cret@x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid REDIS_URL="), "{err}");
        assert!(err.contains("redis://, rediss:// or unix://"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn sub_config_errors_keep_their_structure() {
        // A resilience document error stays a document error naming its variable.
        let err =
            settings(&[("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 15}"#)]).unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::InvalidDocument { name: "RESILIENCE_CUSTOM_CONFIG", problems }
                    if problems.len() == 1
            ),
            "{err:?}"
        );
        // A cache variable stays a variable error with a typed range.
        let err = settings(&[("CACHE_DEFAULT_TTL", "0")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid {
                name: "CACHE_DEFAULT_TTL",
                value: "0".into(),
                allowed: Allowed::Integer {
                    min: 1,
                    max: 2_592_000
                },
            }
        );
        // A conflict names every variable involved.
        let err = settings(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Conflict { variables, .. } if variables.contains(&"API_KEY")),
            "{err:?}"
        );
    }

    #[test]
    fn real_openai_needs_a_key() {
        let err = settings(&[("AI_PROVIDER", "openai")]).unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"));
    }
}
