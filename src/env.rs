//! The bottom layer of configuration: where values come from (the process
//! environment in production, a plain map in tests, so tests never mutate
//! global state), the one [`ConfigError`] every bad value becomes, the
//! deployment [`Environment`], and the one set of parse helpers (booleans,
//! integer and number ranges, durations, enums, URLs) every config module
//! uses, so a value means the same thing and is refused with the same
//! wording whichever variable holds it.
//!
//! Why its own module: each domain module (cache, rate limits, resilience,
//! identity, telemetry) parses its own variables, and
//! [`crate::config::Settings`] assembles the results. With these helpers in
//! `config` the domains and `config` would depend on each other; here they
//! depend on nothing in the crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// What a variable (or document field) may hold, in a form both code and
/// messages can use. `Display` is the wording of the error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowed {
    /// A whole number in `min..=max`.
    Integer {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// Any finite number in `min..=max`.
    Number {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A boolean in one of its accepted spellings (true/false, 1/0, yes/no, on/off, any case).
    Boolean,
    /// Exactly one of these names.
    OneOf(Vec<&'static str>),
    /// Anything else, in words (a URL shape, a pattern, a JSON shape).
    Described(String),
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::Integer { min, max } => write!(f, "an integer from {min} to {max}"),
            Allowed::Number { min, max } => write!(f, "a number from {min} to {max}"),
            Allowed::Boolean => f.write_str("true | false (or 1 | 0, yes | no, on | off)"),
            Allowed::OneOf(names) => f.write_str(&names.join(" | ")),
            Allowed::Described(text) => f.write_str(text),
        }
    }
}

impl From<&str> for Allowed {
    fn from(text: &str) -> Allowed {
        Allowed::Described(text.to_string())
    }
}

impl From<String> for Allowed {
    fn from(text: String) -> Allowed {
        Allowed::Described(text)
    }
}

/// A configuration mistake, reported at start-up before anything listens
/// (or by a runtime preset switch). The one error of every configuration
/// module: each variant names the variable and keeps the details as fields,
/// so nothing is flattened to a bare string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value outside its allowed set or range.
    #[error("invalid {name}={value:?}: allowed {allowed}")]
    Invalid {
        /// The environment variable.
        name: &'static str,
        /// What it held (secrets redacted).
        value: String,
        /// The allowed values or range.
        allowed: Allowed,
    },
    /// One field of a JSON document held by a variable is wrong.
    #[error("{name}: {location}: {field}={value} is invalid: expected {allowed}")]
    InvalidField {
        /// The variable holding the document.
        name: &'static str,
        /// Where in the document, e.g. `route "/v1/x"`.
        location: String,
        /// The offending field (or a parenthesized placeholder for an entry).
        field: String,
        /// The offending value, as JSON.
        value: String,
        /// What would have been accepted.
        allowed: Allowed,
    },
    /// A JSON document held by a variable is invalid; every problem is
    /// listed, each naming its field, value and allowed range.
    #[error("invalid {name}: {}", problems.join("; "))]
    InvalidDocument {
        /// The variable holding the document.
        name: &'static str,
        /// One message per problem.
        problems: Vec<String>,
    },
    /// Settings that are valid alone but cannot work together.
    #[error("{message}")]
    Conflict {
        /// The variables involved, the one to change first.
        variables: Vec<&'static str>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The resilience layers combine into an impossible policy for one
    /// operation.
    #[error("invalid resilience configuration for operation '{operation}': {message}")]
    InconsistentPolicy {
        /// The operation's wire name.
        operation: &'static str,
        /// What is wrong and which layers supplied the values.
        message: String,
    },
    /// An embedded preset file does not parse (a build defect; unit tests
    /// guard against it).
    #[error("embedded preset '{name}' is broken: {reason}")]
    BrokenPreset {
        /// The preset.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `name` holding `value`.
    pub fn invalid(
        name: &'static str,
        value: impl Into<String>,
        allowed: impl Into<Allowed>,
    ) -> ConfigError {
        ConfigError::Invalid {
            name,
            value: value.into(),
            allowed: allowed.into(),
        }
    }

    /// A [`ConfigError::Conflict`] between `variables`.
    pub fn conflict(variables: &[&'static str], message: impl Into<String>) -> ConfigError {
        ConfigError::Conflict {
            variables: variables.to_vec(),
            message: message.into(),
        }
    }
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

/// A variable's value trimmed, `None` when unset or blank.
pub(crate) fn text(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The boolean a string spells: true/false, 1/0, yes/no, on/off, any case;
/// `None` for anything else (a typo is never read as false).
pub(crate) fn bool_value(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A boolean variable (see [`bool_value`]), or `default` when unset.
pub(crate) fn boolean(
    env: &dyn EnvSource,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(raw) => bool_value(&raw).ok_or(ConfigError::Invalid {
            name,
            value: raw,
            allowed: Allowed::Boolean,
        }),
    }
}

/// A whole-number variable within `min..=max`, or `default` when unset.
pub(crate) fn number<T>(
    env: &dyn EnvSource,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Copy + TryInto<u64>,
{
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value: raw,
            allowed: Allowed::Integer {
                min: min.try_into().unwrap_or(0),
                max: max.try_into().unwrap_or(u64::MAX),
            },
        }),
    }
}

/// A finite-number variable within `min..=max`, or `default` when unset.
pub(crate) fn float(
    env: &dyn EnvSource,
    name: &'static str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value: raw,
            allowed: Allowed::Number { min, max },
        }),
    }
}

/// A duration variable in whole seconds within `min..=max`.
pub(crate) fn seconds(
    env: &dyn EnvSource,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(env, name, default, min, max).map(Duration::from_secs)
}

/// A duration variable in whole milliseconds within `min..=max`.
pub(crate) fn millis(
    env: &dyn EnvSource,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(env, name, default, min, max).map(Duration::from_millis)
}

/// An enum variable: one of `choices`' names (trimmed, any case), `None`
/// when unset. The error lists every name.
pub(crate) fn choice<T: Copy>(
    env: &dyn EnvSource,
    name: &'static str,
    choices: &[(&'static str, T)],
) -> Result<Option<T>, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(None);
    };
    let wanted = raw.trim().to_ascii_lowercase();
    match choices.iter().find(|(n, _)| *n == wanted) {
        Some((_, v)) => Ok(Some(*v)),
        None => Err(ConfigError::Invalid {
            name,
            value: raw,
            allowed: Allowed::OneOf(choices.iter().map(|(n, _)| *n).collect()),
        }),
    }
}

/// `raw` checked to be an absolute `http://` or `https://` URL with a host;
/// returned trimmed. `allowed` is the wording of the error.
pub(crate) fn http_url(
    name: &'static str,
    raw: &str,
    allowed: &str,
) -> Result<String, ConfigError> {
    let value = raw.trim();
    match reqwest::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.to_string())
        }
        _ => Err(ConfigError::invalid(name, raw, allowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> MapEnv {
        MapEnv::new(vars)
    }

    #[test]
    fn booleans_accept_every_spelling_and_refuse_typos() {
        for (raw, want) in [("TRUE", true), (" on ", true), ("1", true), ("No", false)] {
            assert_eq!(bool_value(raw), Some(want), "{raw}");
        }
        assert_eq!(bool_value("maybe"), None);
        assert_eq!(boolean(&env(&[]), "B", true), Ok(true));
        assert_eq!(
            boolean(&env(&[("B", "maybe")]), "B", true)
                .unwrap_err()
                .to_string(),
            "invalid B=\"maybe\": allowed true | false (or 1 | 0, yes | no, on | off)"
        );
    }

    #[test]
    fn ranges_name_the_variable_value_and_bounds() {
        assert_eq!(number(&env(&[("N", " 7 ")]), "N", 1u32, 1, 10), Ok(7));
        assert_eq!(
            number(&env(&[("N", "11")]), "N", 1u32, 1, 10)
                .unwrap_err()
                .to_string(),
            "invalid N=\"11\": allowed an integer from 1 to 10"
        );
        assert_eq!(float(&env(&[("F", "0.5")]), "F", 1.0, 0.0, 1.0), Ok(0.5));
        assert_eq!(
            float(&env(&[("F", "NaN")]), "F", 1.0, 0.0, 1.0)
                .unwrap_err()
                .to_string(),
            "invalid F=\"NaN\": allowed a number from 0 to 1"
        );
        assert_eq!(
            millis(&env(&[("M", "250")]), "M", 1, 0, 1000),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            seconds(&env(&[]), "S", 30, 0, 60),
            Ok(Duration::from_secs(30))
        );
    }

    #[test]
    fn choices_are_case_insensitive_and_listed_when_wrong() {
        let options = [("open", 1), ("closed", 2)];
        assert_eq!(
            choice(&env(&[("C", " Closed ")]), "C", &options),
            Ok(Some(2))
        );
        assert_eq!(choice(&env(&[]), "C", &options), Ok(None));
        assert_eq!(
            choice(&env(&[("C", "ajar")]), "C", &options)
                .unwrap_err()
                .to_string(),
            "invalid C=\"ajar\": allowed open | closed"
        );
    }

    #[test]
    fn urls_need_http_and_a_host() {
        assert_eq!(
            http_url("U", " http://127.0.0.1:9/v1 ", "an http URL"),
            Ok("http://127.0.0.1:9/v1".to_string())
        );
        for bad in ["not a url", "ftp://x", "http://"] {
            assert!(http_url("U", bad, "an http URL").is_err(), "{bad}");
        }
    }
}
