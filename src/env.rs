//! The bottom layer of configuration: where values come from (the process
//! environment in production, a plain map in tests, so tests never mutate
//! global state), the error every bad value becomes, the deployment
//! [`Environment`], and the small parsers every domain config uses.
//!
//! Why its own module: each domain module (cache, rate limits, resilience,
//! jobs, identity, telemetry) parses its own variables, and
//! [`crate::config::Settings`] assembles the results. With these helpers in
//! `config` the domains and `config` would depend on each other; here they
//! depend on nothing in the crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A read-only source of configuration variables.
pub trait EnvSource {
    /// The variable's value, or `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// A fixed set of variables, for tests and embedding.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    /// Builds a source from `(name, value)` pairs.
    pub fn new(vars: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Adds or replaces one variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_string(), value.to_string());
    }
}

impl EnvSource for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// A configuration mistake, reported at start-up before anything listens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value outside its allowed set or range.
    #[error("invalid {name}={value:?}: allowed {allowed}")]
    Invalid {
        /// The environment variable.
        name: &'static str,
        /// What it held.
        value: String,
        /// The allowed values or range, in words.
        allowed: String,
    },
    /// A combination of settings that cannot work together.
    #[error("{0}")]
    Inconsistent(String),
}

/// The deployment environment; decides how strict keel is about security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer machine: open access allowed with a warning.
    Development,
    /// Automated tests: like development.
    Testing,
    /// Pre-production: API keys are mandatory.
    Staging,
    /// Production: API keys are mandatory.
    Production,
}

impl Environment {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Staging and production refuse to run without API keys.
    pub fn requires_auth(self) -> bool {
        matches!(self, Environment::Staging | Environment::Production)
    }
}

/// Returned when a string names no environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment '{0}' (allowed: development, testing, staging, production)")]
pub struct UnknownEnvironment(pub String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    /// Case-insensitive; `dev`, `test`, `stage` and `prod` are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "testing" | "test" => Ok(Environment::Testing),
            "staging" | "stage" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(UnknownEnvironment(s.to_string())),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A boolean variable: true/false, 1/0, yes/no, on/off.
pub(crate) fn boolean(
    env: &dyn EnvSource,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match env.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            value: v,
            allowed: "true | false".into(),
        }),
    }
}

/// Parses a number variable within `min..=max`, or returns `default` when unset.
pub(crate) fn number<T>(
    env: &dyn EnvSource,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Copy + fmt::Display,
{
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value: raw,
            allowed: format!("an integer from {min} to {max}"),
        }),
    }
}
