//! Cache settings, read once from the environment and validated.
//!
//! Every variable is optional; a set-but-invalid value is an error naming the
//! variable, the value and the allowed range — never a silent fallback.
//! Per-operation TTLs are fixed (the reference project's table); only the
//! default for operations without an entry is configurable.

use crate::env::{ConfigError, EnvSource, boolean, number, seconds};
use std::time::Duration;

/// Default entry bound of the memory tier.
pub const DEFAULT_MEMORY_MAX_ENTRIES: u64 = 10_000;
/// Default byte bound of the memory tier (64 MiB).
pub const DEFAULT_MEMORY_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default compression threshold in bytes of JSON.
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1000;
/// Default TTL for operations without a fixed one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
const MAX_COMPRESSION_THRESHOLD: u64 = 16 * 1024 * 1024;
const MAX_MEMORY_ENTRIES: u64 = 100_000_000;
const MAX_MEMORY_BYTES: u64 = 1 << 40;

/// Validated cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `CACHE_ENABLED` (true/false, 1/0, yes/no, on/off; default true). When
    /// false every get misses and every put is dropped.
    pub enabled: bool,
    /// `CACHE_DEFAULT_TTL` in seconds (default 3600, range 1..=2592000): the
    /// TTL of operations without a fixed one (see [`ttl_for_name`]).
    pub default_ttl: Duration,
    /// `CACHE_COMPRESSION_THRESHOLD` in bytes of JSON (default 1000, range
    /// 0..=16777216): longer values are gzip'd when that makes them smaller.
    pub compression_threshold: usize,
    /// `CACHE_MEMORY_MAX_ENTRIES` (default 10000, range 0..=100000000; 0
    /// disables the memory tier).
    pub memory_max_entries: u64,
    /// `CACHE_MEMORY_MAX_BYTES` (default 67108864 = 64 MiB, range
    /// 0..=1099511627776; 0 disables the memory tier): bound on the estimated
    /// size of the memory tier's entries (text bytes + key + overhead).
    pub memory_max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            default_ttl: DEFAULT_TTL,
            compression_threshold: DEFAULT_COMPRESSION_THRESHOLD,
            memory_max_entries: DEFAULT_MEMORY_MAX_ENTRIES,
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
        }
    }
}

impl CacheConfig {
    /// Reads and validates the cache variables from `env`. `REDIS_URL` is
    /// not read here: [`crate::config::Settings`] validates it once and the
    /// engine hands the cache a [`crate::redis_link::RedisLink`] built from it.
    pub fn from_env(env: &dyn EnvSource) -> Result<CacheConfig, ConfigError> {
        let compression_threshold = number(
            env,
            "CACHE_COMPRESSION_THRESHOLD",
            DEFAULT_COMPRESSION_THRESHOLD as u64,
            0,
            MAX_COMPRESSION_THRESHOLD,
        )?;
        Ok(CacheConfig {
            enabled: boolean(env, "CACHE_ENABLED", true)?,
            default_ttl: seconds(
                env,
                "CACHE_DEFAULT_TTL",
                DEFAULT_TTL.as_secs(),
                1,
                MAX_TTL_SECS,
            )?,
            compression_threshold: usize::try_from(compression_threshold).unwrap_or(usize::MAX),
            memory_max_entries: number(
                env,
                "CACHE_MEMORY_MAX_ENTRIES",
                DEFAULT_MEMORY_MAX_ENTRIES,
                0,
                MAX_MEMORY_ENTRIES,
            )?,
            memory_max_bytes: number(
                env,
                "CACHE_MEMORY_MAX_BYTES",
                DEFAULT_MEMORY_MAX_BYTES,
                0,
                MAX_MEMORY_BYTES,
            )?,
        })
    }
}

/// The TTL of an operation, by wire name: summarize 2 h, sentiment 24 h,
/// key_points 2 h, questions 1 h, qa 30 min; `default` for any other name
/// (future operations get the configured default until they get an entry).
pub fn ttl_for_name(operation: &str, default: Duration) -> Duration {
    let secs = match operation {
        "summarize" => 7200,
        "sentiment" => 86_400,
        "key_points" => 7200,
        "questions" => 3600,
        "qa" => 1800,
        _ => return default,
    };
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn defaults() {
        let c = CacheConfig::from_env(&MapEnv::new(&[])).unwrap();
        assert_eq!(c, CacheConfig::default());
        assert!(c.enabled);
        assert_eq!(c.default_ttl, Duration::from_secs(3600));
        assert_eq!(c.compression_threshold, 1000);
        assert_eq!(c.memory_max_entries, 10_000);
        assert_eq!(c.memory_max_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn values_are_read() {
        let c = CacheConfig::from_env(&MapEnv::new(&[
            ("CACHE_ENABLED", "off"),
            ("CACHE_DEFAULT_TTL", "60"),
            ("CACHE_COMPRESSION_THRESHOLD", "0"),
            ("CACHE_MEMORY_MAX_ENTRIES", "5"),
            ("CACHE_MEMORY_MAX_BYTES", "4096"),
        ]))
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.default_ttl, Duration::from_secs(60));
        assert_eq!(c.compression_threshold, 0);
        assert_eq!(c.memory_max_entries, 5);
        assert_eq!(c.memory_max_bytes, 4096);
    }

    #[test]
    fn bad_values_name_variable_value_and_range() {
        // The wording is the shared one of `crate::env` (it used to read
        // `an integer in 1..=2592000`: the same facts).
        for (name, value, expect) in [
            (
                "CACHE_ENABLED",
                "maybe",
                "true | false (or 1 | 0, yes | no, on | off)",
            ),
            ("CACHE_DEFAULT_TTL", "0", "an integer from 1 to 2592000"),
            ("CACHE_DEFAULT_TTL", "abc", "an integer from 1 to 2592000"),
            (
                "CACHE_COMPRESSION_THRESHOLD",
                "-1",
                "an integer from 0 to 16777216",
            ),
            (
                "CACHE_MEMORY_MAX_ENTRIES",
                "1e9",
                "an integer from 0 to 100000000",
            ),
            (
                "CACHE_MEMORY_MAX_BYTES",
                "99999999999999",
                "an integer from 0 to 1099511627776",
            ),
        ] {
            let err = CacheConfig::from_env(&MapEnv::new(&[(name, value)])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(value), "{msg}");
            assert!(msg.contains(expect), "{msg}");
        }
    }

    #[test]
    fn ttl_table() {
        let d = Duration::from_secs(42);
        assert_eq!(ttl_for_name("summarize", d), Duration::from_secs(7200));
        assert_eq!(ttl_for_name("sentiment", d), Duration::from_secs(86_400));
        assert_eq!(ttl_for_name("key_points", d), Duration::from_secs(7200));
        assert_eq!(ttl_for_name("questions", d), Duration::from_secs(3600));
        assert_eq!(ttl_for_name("qa", d), Duration::from_secs(1800));
        assert_eq!(ttl_for_name("translate", d), d);
    }
}
