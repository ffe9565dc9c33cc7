//! Rate-limit configuration, read from the environment and validated once at
//! startup (the variables are listed in `.env.example`).
//!
//! Invariants: a `RateLimitConfig` built by [`RateLimitConfig::from_env`] is
//! valid — every window limit is in its range, every override names an
//! absolute path and at least one known field — and every mistake is a
//! [`ConfigError`] naming the variable, the bad value and what is allowed; nothing falls back silently. Unset (or empty) variables take
//! the defaults, which are generous enough that normal use never hits them.

use super::window::{Window, WindowLimit};
use crate::env::{Allowed, ConfigError, EnvSource, boolean, choice, number};
use std::collections::HashMap;

/// `RATE_LIMIT_ENABLED` default.
pub const DEFAULT_ENABLED: bool = true;
/// `RATE_LIMIT_PER_MINUTE` default (requests per identity per sliding minute).
pub const DEFAULT_PER_MINUTE: u32 = 1_000;
/// `RATE_LIMIT_PER_HOUR` default.
pub const DEFAULT_PER_HOUR: u32 = 30_000;
/// `RATE_LIMIT_PER_DAY` default.
pub const DEFAULT_PER_DAY: u32 = 300_000;

/// Allowed range of `RATE_LIMIT_PER_MINUTE` (and `per_minute` in overrides).
pub const PER_MINUTE_RANGE: (u32, u32) = (1, 1_000_000);
/// Allowed range of `RATE_LIMIT_PER_HOUR` (and `per_hour` in overrides).
pub const PER_HOUR_RANGE: (u32, u32) = (1, 100_000_000);
/// Allowed range of `RATE_LIMIT_PER_DAY` (and `per_day` in overrides).
pub const PER_DAY_RANGE: (u32, u32) = (1, 1_000_000_000);
/// Allowed range of `RATE_LIMIT_BURST` (and `burst` in overrides); 0 = none.
pub const BURST_RANGE: (u32, u32) = (0, 100_000);

const ENABLED_VAR: &str = "RATE_LIMIT_ENABLED";
const PER_MINUTE_VAR: &str = "RATE_LIMIT_PER_MINUTE";
const PER_HOUR_VAR: &str = "RATE_LIMIT_PER_HOUR";
const PER_DAY_VAR: &str = "RATE_LIMIT_PER_DAY";
const BURST_VAR: &str = "RATE_LIMIT_BURST";
const OVERRIDES_VAR: &str = "RATE_LIMIT_ENDPOINT_OVERRIDES";
const FAILURE_VAR: &str = "RATE_LIMIT_REDIS_FAILURE";
const TRUST_PROXY_VAR: &str = "TRUST_PROXY_HEADERS";

/// What to do when Redis fails (timeout, connection error, cool-off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureMode {
    /// Allow every request (limiting is off until Redis is back).
    Open,
    /// Fall back to this instance's memory buckets: the limit then holds
    /// per instance, not globally. The default.
    #[default]
    Local,
    /// Deny every request with 503 (`Decision::unavailable`).
    Closed,
}

impl RedisFailureMode {
    /// `open`, `local` or `closed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RedisFailureMode::Open => "open",
            RedisFailureMode::Local => "local",
            RedisFailureMode::Closed => "closed",
        }
    }
}

/// Window limits of one scope (the defaults, or one route's override).
/// `None` = that window is not limited.
/// Also the `Limits` schema of the operator document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Max cost per identity in any sliding minute; 1..=1,000,000.
    #[schema(required = true)]
    pub per_minute: Option<u32>,
    /// Max cost per identity in any sliding hour; 1..=100,000,000.
    #[schema(required = true)]
    pub per_hour: Option<u32>,
    /// Max cost per identity in any sliding day; 1..=1,000,000,000.
    #[schema(required = true)]
    pub per_day: Option<u32>,
    /// Max cost per identity in any sliding second; 0..=100,000 (`None` or
    /// 0 = no burst cap; 0 lets an override remove the default cap).
    #[schema(required = true)]
    pub burst: Option<u32>,
}

impl Limits {
    /// The limited windows, shortest first (what the counting code takes).
    pub fn window_limits(&self) -> Vec<WindowLimit> {
        [
            (Window::Burst, self.burst),
            (Window::Minute, self.per_minute),
            (Window::Hour, self.per_hour),
            (Window::Day, self.per_day),
        ]
        .into_iter()
        // `Some(0)` only occurs for `burst` (an override removing the cap).
        .filter_map(|(window, limit)| {
            limit
                .filter(|&l| l > 0)
                .map(|limit| WindowLimit { window, limit })
        })
        .collect()
    }

    /// `self` with every window that `over` sets replaced by `over`'s value.
    pub fn overridden_by(self, over: &Limits) -> Limits {
        Limits {
            per_minute: over.per_minute.or(self.per_minute),
            per_hour: over.per_hour.or(self.per_hour),
            per_day: over.per_day.or(self.per_day),
            burst: over.burst.or(self.burst),
        }
    }
}

/// Rate limiting settings, one field per `RATE_LIMIT_*` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_ENABLED`: `false` turns limiting off. Default `true`.
    pub enabled: bool,
    /// `RATE_LIMIT_PER_MINUTE`: max requests (batch items count) per
    /// identity in any sliding minute. Default 1000; 1..=1,000,000.
    pub per_minute: Option<u32>,
    /// `RATE_LIMIT_PER_HOUR`: same per sliding hour. Default 30,000; 1..=100,000,000.
    pub per_hour: Option<u32>,
    /// `RATE_LIMIT_PER_DAY`: same per sliding day. Default 300,000; 1..=1,000,000,000.
    pub per_day: Option<u32>,
    /// `RATE_LIMIT_BURST`: optional per-second cap on top. Default none;
    /// 0..=100,000 where 0 (or unset) = none.
    pub burst: Option<u32>,
    /// `RATE_LIMIT_ENDPOINT_OVERRIDES`: per-route limits (JSON object of
    /// `path -> {per_minute?, per_hour?, per_day?, burst?}`). Each override
    /// replaces the windows it names and keeps the other defaults; its route
    /// has its own counters. `burst: 0` removes the burst cap for the route.
    /// Default none.
    pub overrides: HashMap<String, Limits>,
    /// `RATE_LIMIT_REDIS_FAILURE`: `open` | `local` | `closed`. Default `local`.
    pub redis_failure: RedisFailureMode,
    /// `TRUST_PROXY_HEADERS`: identify clients by the first hop of
    /// `X-Forwarded-For` (only behind a proxy that sets it). Default `false`.
    pub trust_proxy_headers: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: DEFAULT_ENABLED,
            per_minute: Some(DEFAULT_PER_MINUTE),
            per_hour: Some(DEFAULT_PER_HOUR),
            per_day: Some(DEFAULT_PER_DAY),
            burst: None,
            overrides: HashMap::new(),
            redis_failure: RedisFailureMode::Local,
            trust_proxy_headers: false,
        }
    }
}

impl RateLimitConfig {
    /// Reads and validates the `RATE_LIMIT_*` and `TRUST_PROXY_HEADERS`
    /// variables; unset ones take their defaults.
    pub fn from_env(env: &dyn EnvSource) -> Result<RateLimitConfig, ConfigError> {
        let defaults = RateLimitConfig::default();
        let enabled = boolean(env, ENABLED_VAR, defaults.enabled)?;
        let window =
            |var: &'static str, (min, max): (u32, u32), default: Option<u32>| match env.get(var) {
                Some(_) => number(env, var, min, min, max).map(Some),
                None => Ok(default),
            };
        let per_minute = window(PER_MINUTE_VAR, PER_MINUTE_RANGE, defaults.per_minute)?;
        let per_hour = window(PER_HOUR_VAR, PER_HOUR_RANGE, defaults.per_hour)?;
        let per_day = window(PER_DAY_VAR, PER_DAY_RANGE, defaults.per_day)?;
        let burst = window(BURST_VAR, BURST_RANGE, defaults.burst)?.filter(|&b| b > 0);
        let overrides = match env.get(OVERRIDES_VAR) {
            Some(v) => parse_overrides(&v)?,
            None => HashMap::new(),
        };
        let redis_failure = choice(
            env,
            FAILURE_VAR,
            &[
                ("open", RedisFailureMode::Open),
                ("local", RedisFailureMode::Local),
                ("closed", RedisFailureMode::Closed),
            ],
        )?
        .unwrap_or(defaults.redis_failure);
        let trust_proxy_headers = boolean(env, TRUST_PROXY_VAR, defaults.trust_proxy_headers)?;
        Ok(RateLimitConfig {
            enabled,
            per_minute,
            per_hour,
            per_day,
            burst,
            overrides,
            redis_failure,
            trust_proxy_headers,
        })
    }

    /// The default (non-overridden) limits.
    pub fn base_limits(&self) -> Limits {
        Limits {
            per_minute: self.per_minute,
            per_hour: self.per_hour,
            per_day: self.per_day,
            burst: self.burst,
        }
    }

    /// The effective limits of `route` (its override applied, if any).
    pub fn limits_for(&self, route: &str) -> Limits {
        match self.overrides.get(normalize_route(route)) {
            Some(over) => self.base_limits().overridden_by(over),
            None => self.base_limits(),
        }
    }
}

fn parse_overrides(raw: &str) -> Result<HashMap<String, Limits>, ConfigError> {
    let bad = |reason: String| {
        ConfigError::invalid(
            OVERRIDES_VAR,
            raw,
            format!(
                "a JSON object like {{\"/v1/text_processing/process\": {{\"per_minute\": 600, \
                 \"burst\": 20}}}} ({reason})"
            ),
        )
    };
    let json: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let serde_json::Value::Object(routes) = json else {
        return Err(bad("the top level is not an object".into()));
    };
    let mut overrides = HashMap::with_capacity(routes.len());
    for (route, fields) in routes {
        let field_error =
            |field: &str, value: String, allowed: Allowed| ConfigError::InvalidField {
                name: OVERRIDES_VAR,
                location: format!("route {route:?}"),
                field: field.to_string(),
                value,
                allowed,
            };
        if !route.starts_with('/') {
            return Err(field_error(
                "(route)",
                format!("{route:?}"),
                "a path starting with '/'".into(),
            ));
        }
        let serde_json::Value::Object(fields) = fields else {
            return Err(field_error(
                "(override)",
                fields.to_string(),
                "an object with per_minute, per_hour, per_day and/or burst".into(),
            ));
        };
        if fields.is_empty() {
            return Err(field_error(
                "(override)",
                "{}".into(),
                "at least one of per_minute, per_hour, per_day, burst".into(),
            ));
        }
        let mut limits = Limits::default();
        for (field, value) in &fields {
            let range = match field.as_str() {
                "per_minute" => PER_MINUTE_RANGE,
                "per_hour" => PER_HOUR_RANGE,
                "per_day" => PER_DAY_RANGE,
                "burst" => BURST_RANGE,
                _ => {
                    return Err(field_error(
                        field,
                        value.to_string(),
                        "only the fields per_minute, per_hour, per_day, burst".into(),
                    ));
                }
            };
            let n = value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (range.0..=range.1).contains(n))
                .ok_or_else(|| {
                    field_error(
                        field,
                        value.to_string(),
                        Allowed::Integer {
                            min: u64::from(range.0),
                            max: u64::from(range.1),
                        },
                    )
                })?;
            match field.as_str() {
                "per_minute" => limits.per_minute = Some(n),
                "per_hour" => limits.per_hour = Some(n),
                "per_day" => limits.per_day = Some(n),
                _ => limits.burst = Some(n),
            }
        }
        // Trailing slashes are not significant: "/a/" and "/a" are one route.
        let key = normalize_route(&route).to_string();
        overrides.insert(key, limits);
    }
    Ok(overrides)
}

/// `route` without one trailing `/` (except for `/` itself).
pub(crate) fn normalize_route(route: &str) -> &str {
    match route.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => route,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn parse(vars: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        RateLimitConfig::from_env(&MapEnv::new(vars))
    }

    #[test]
    fn defaults_are_generous() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, RateLimitConfig::default());
        assert!(c.enabled);
        assert_eq!(
            (c.per_minute, c.per_hour, c.per_day, c.burst),
            (Some(1000), Some(30_000), Some(300_000), None)
        );
        assert_eq!(c.redis_failure, RedisFailureMode::Local);
        assert!(!c.trust_proxy_headers);
        assert!(c.overrides.is_empty());
    }

    #[test]
    fn values_are_read() {
        let c = parse(&[
            ("RATE_LIMIT_ENABLED", "off"),
            ("RATE_LIMIT_PER_MINUTE", " 60 "),
            ("RATE_LIMIT_PER_HOUR", "600"),
            ("RATE_LIMIT_PER_DAY", "6000"),
            ("RATE_LIMIT_BURST", "5"),
            ("RATE_LIMIT_REDIS_FAILURE", "Closed"),
            ("TRUST_PROXY_HEADERS", "true"),
        ])
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(
            (c.per_minute, c.per_hour, c.per_day, c.burst),
            (Some(60), Some(600), Some(6000), Some(5))
        );
        assert_eq!(c.redis_failure, RedisFailureMode::Closed);
        assert!(c.trust_proxy_headers);
        assert_eq!(
            parse(&[("RATE_LIMIT_BURST", "0")]).unwrap().burst,
            None,
            "0 = no burst cap"
        );
    }

    #[test]
    fn every_bad_variable_is_an_error_naming_it_its_value_and_the_range() {
        // The shared wording of `crate::env` (it used to read
        // `expected a whole number in 1..=1000000`: the same facts).
        let bool_values = "true | false (or 1 | 0, yes | no, on | off)";
        let cases = [
            ("RATE_LIMIT_ENABLED", "maybe", bool_values),
            ("RATE_LIMIT_PER_MINUTE", "0", "an integer from 1 to 1000000"),
            (
                "RATE_LIMIT_PER_MINUTE",
                "ten",
                "an integer from 1 to 1000000",
            ),
            (
                "RATE_LIMIT_PER_MINUTE",
                "-5",
                "an integer from 1 to 1000000",
            ),
            (
                "RATE_LIMIT_PER_HOUR",
                "100000001",
                "an integer from 1 to 100000000",
            ),
            (
                "RATE_LIMIT_PER_DAY",
                "1.5",
                "an integer from 1 to 1000000000",
            ),
            ("RATE_LIMIT_BURST", "100001", "an integer from 0 to 100000"),
            (
                "RATE_LIMIT_REDIS_FAILURE",
                "sometimes",
                "open | local | closed",
            ),
            ("TRUST_PROXY_HEADERS", "2", bool_values),
            ("RATE_LIMIT_ENDPOINT_OVERRIDES", "{not json", "JSON"),
            ("RATE_LIMIT_ENDPOINT_OVERRIDES", "[1]", "not an object"),
        ];
        for (var, value, allowed) in cases {
            let err = parse(&[(var, value)]).expect_err(var).to_string();
            assert!(err.contains(var), "{err}");
            assert!(err.contains(value), "{err}");
            assert!(err.contains(allowed), "{err}");
        }
    }

    #[test]
    fn overrides_parse_and_replace_only_the_given_windows() {
        let c = parse(&[
            ("RATE_LIMIT_PER_MINUTE", "1000"),
            ("RATE_LIMIT_BURST", "50"),
            (
                "RATE_LIMIT_ENDPOINT_OVERRIDES",
                r#"{"/v1/text_processing/batch_process": {"per_minute": 100},
                    "/v1/text_processing/process/": {"per_minute": 600, "burst": 20},
                    "/v1/slow": {"burst": 0}}"#,
            ),
        ])
        .unwrap();
        assert_eq!(c.overrides.len(), 3);
        let batch = c.limits_for("/v1/text_processing/batch_process");
        assert_eq!(
            (batch.per_minute, batch.per_hour, batch.burst),
            (Some(100), Some(30_000), Some(50))
        );
        let process = c.limits_for("/v1/text_processing/process");
        assert_eq!((process.per_minute, process.burst), (Some(600), Some(20)));
        let slow = c.limits_for("/v1/slow/");
        assert_eq!(slow.burst, Some(0));
        assert!(
            slow.window_limits()
                .iter()
                .all(|w| w.window != Window::Burst),
            "burst 0 removes the cap"
        );
        assert_eq!(c.limits_for("/v1/other"), c.base_limits());
    }

    #[test]
    fn bad_overrides_name_the_route_the_field_and_the_range() {
        let cases = [
            (
                r#"{"/a": {"per_minute": 0}}"#,
                "per_minute=0",
                "an integer from 1 to 1000000",
            ),
            (
                r#"{"/a": {"per_minute": "60"}}"#,
                "per_minute=\"60\"",
                "an integer from 1 to 1000000",
            ),
            (
                r#"{"/a": {"per_hour": 1.5}}"#,
                "per_hour=1.5",
                "an integer from 1 to 100000000",
            ),
            (
                r#"{"/a": {"per_secnd": 5}}"#,
                "per_secnd=5",
                "per_minute, per_hour, per_day, burst",
            ),
            (r#"{"/a": {}}"#, "{}", "at least one"),
            (r#"{"/a": 5}"#, "(override)=5", "an object"),
            (r#"{"a": {"burst": 1}}"#, "(route)", "starting with '/'"),
        ];
        for (json, needle, allowed) in cases {
            let err = parse(&[("RATE_LIMIT_ENDPOINT_OVERRIDES", json)])
                .expect_err(json)
                .to_string();
            assert!(err.contains("RATE_LIMIT_ENDPOINT_OVERRIDES"), "{err}");
            assert!(err.contains("\"/a\"") || err.contains("\"a\""), "{err}");
            assert!(err.contains(needle), "{err}");
            assert!(err.contains(allowed), "{err}");
        }
    }

    #[test]
    fn window_limits_are_shortest_first_and_skip_unset_windows() {
        let limits = Limits {
            per_minute: Some(10),
            per_hour: None,
            per_day: Some(100),
            burst: Some(2),
        };
        let windows: Vec<_> = limits
            .window_limits()
            .iter()
            .map(|w| (w.window, w.limit))
            .collect();
        assert_eq!(
            windows,
            vec![(Window::Burst, 2), (Window::Minute, 10), (Window::Day, 100)]
        );
    }
}
