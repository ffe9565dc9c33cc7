//! The effective resilience configuration: which retry, deadline and
//! circuit-breaker policy each operation runs with, and where every value came
//! from.
//!
//! Layers, lowest first: the built-in strategy rows < the
//! preset chosen by `RESILIENCE_PRESET` (`presets/<name>.json`, embedded in
//! the binary; default `simple`) < `RESILIENCE_CUSTOM_CONFIG` (JSON) < the
//! legacy environment variables (`RETRY_MAX_ATTEMPTS`, …). Anything invalid —
//! an unknown preset name, a custom document with a bad field, a legacy
//! variable out of range — is an error naming the setting, the value and the
//! allowed range; there is never a silent fallback.
//!
//! **Resolution, per operation** (this is what makes presets really drive the
//! runtime; the reference project resolved presets and overrides that then
//! changed nothing):
//! 1. *Strategy*: the legacy `<OP>_RESILIENCE_STRATEGY`, else the custom
//!    `operation_overrides[op]`, else the preset's `operation_overrides[op]`,
//!    else `DEFAULT_RESILIENCE_STRATEGY`, else the custom `default_strategy`,
//!    else the preset's `default_strategy`.
//! 2. *Starting values*: when the operation has an override (from any
//!    layer), every field starts from that strategy's row. Otherwise the
//!    fields start from the default strategy's row and the preset's own
//!    `retry_attempts`, `circuit_breaker_threshold` and `recovery_timeout`
//!    replace attempts, threshold and recovery.
//! 3. *Custom fields*: every field set in the custom document replaces that
//!    field for **all** operations (explicit intent beats strategy rows:
//!    `{"retry_attempts":7}` changes every operation's attempts).
//! 4. *Legacy variables*: mapped to the same fields (see `keel config
//!    migrate`) and applied like step 3, after it, so they win.
//!
//! Afterwards every operation must have `exponential_min < exponential_max`.
//! [`ResilienceConfig::sources`] reports, per operation and field, which of
//! `default`, `preset:<name>`, `strategy:<name>`, `custom` or `env:<VAR>`
//! supplied the value. Resolution is pure and cheap (microseconds): the
//! embedded presets are parsed once, on first use.

mod custom;
mod legacy;
mod migrate;
mod recommend;
mod validate;

pub use custom::CustomConfig;
pub use migrate::{Migration, MigrationFormat, UnknownMigrationFormat, migrate, render_migration};
pub use recommend::{ENVIRONMENT_VARS, Recommendation, recommend, recommend_auto};
pub(crate) use validate::edit_distance;
pub use validate::{ValidationReport, validate_custom_config, validate_custom_value};

use crate::env::{Allowed, ConfigError, EnvSource};
use crate::job::Operation;
use custom::Field;
use legacy::LegacyLayer;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

/// The variable that selects the preset.
pub const PRESET_VAR: &str = "RESILIENCE_PRESET";
/// The variable holding the custom configuration JSON.
pub const CUSTOM_CONFIG_VAR: &str = "RESILIENCE_CUSTOM_CONFIG";
/// The preset names, in listing order.
pub const PRESET_NAMES: [&str; 3] = ["simple", "development", "production"];
/// The preset used when `RESILIENCE_PRESET` is unset.
pub const DEFAULT_PRESET: &str = "simple";
/// Trial calls a half-open breaker admits unless configured.
pub const DEFAULT_HALF_OPEN_MAX_CALLS: u32 = 1;
/// Calls the breaker window must hold before rate rules apply, unless configured.
pub const DEFAULT_MINIMUM_CALLS: u32 = 10;
/// The deployment environments a preset may name in `environment_contexts`.
pub const ENVIRONMENTS: [&str; 4] = ["development", "testing", "staging", "production"];

/// A named set of retry and breaker values (the strategy table in the
/// README's "Presets" section, inherited from the reference project).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Fail fast: 2 attempts, 10 s budget, breaker 3 / 30 s.
    Aggressive,
    /// The default: 3 attempts, 30 s budget, breaker 5 / 60 s.
    Balanced,
    /// Patient: 5 attempts, 120 s budget, breaker 8 / 120 s.
    Conservative,
    /// Maximum effort: 7 attempts, 300 s budget, breaker 10 / 300 s, jitter up to 5 s.
    Critical,
}

/// Where a hedged call goes (`hedge_to`): to the provider whose call is slow,
/// or to the next provider of the chain (an answer from it is `degraded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HedgeTarget {
    /// Another call to the same provider (the default).
    #[default]
    Same,
    /// A call to the next provider of the chain (the same one when it is last).
    Next,
}

impl HedgeTarget {
    /// Both targets, in listing order.
    pub const ALL: [HedgeTarget; 2] = [HedgeTarget::Same, HedgeTarget::Next];

    /// The wire name: `same` or `next`.
    pub fn as_str(self) -> &'static str {
        match self {
            HedgeTarget::Same => "same",
            HedgeTarget::Next => "next",
        }
    }
}

impl FromStr for HedgeTarget {
    type Err = ();

    /// Exact wire names only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HedgeTarget::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// Calls a hedged attempt may have in flight unless configured (the first
/// call and one hedge).
pub const DEFAULT_MAX_HEDGED_ATTEMPTS: u32 = 2;

/// Returned when a string names no strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy '{0}' (allowed: aggressive, balanced, conservative, critical)")]
pub struct UnknownStrategy(pub String);

impl Strategy {
    /// Every strategy, from least to most patient.
    pub const ALL: [Strategy; 4] = [
        Strategy::Aggressive,
        Strategy::Balanced,
        Strategy::Conservative,
        Strategy::Critical,
    ];

    /// The wire name, e.g. `balanced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Aggressive => "aggressive",
            Strategy::Balanced => "balanced",
            Strategy::Conservative => "conservative",
            Strategy::Critical => "critical",
        }
    }

    /// The strategy's full row: every policy field's starting value.
    pub fn policy(self) -> OperationPolicy {
        // attempts, max delay s, multiplier, min ms, max ms, threshold,
        // recovery s, jitter max ms: the reference project's strategy table.
        let (attempts, max_delay, mult, min_ms, max_ms, threshold, recovery, jitter_ms) = match self
        {
            Strategy::Aggressive => (2, 10, 0.5, 1_000, 5_000, 3, 30, 2_000),
            Strategy::Balanced => (3, 30, 1.0, 2_000, 10_000, 5, 60, 2_000),
            Strategy::Conservative => (5, 120, 2.0, 4_000, 30_000, 8, 120, 2_000),
            Strategy::Critical => (7, 300, 1.5, 3_000, 60_000, 10, 300, 5_000),
        };
        OperationPolicy {
            strategy: self,
            max_attempts: attempts,
            max_delay: Duration::from_secs(max_delay),
            exponential_multiplier: mult,
            exponential_min: Duration::from_millis(min_ms),
            exponential_max: Duration::from_millis(max_ms),
            jitter_enabled: true,
            jitter_max: Duration::from_millis(jitter_ms),
            failure_threshold: threshold,
            recovery_timeout: Duration::from_secs(recovery),
            half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
            failure_rate_threshold: None,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            hedge_delay: Duration::ZERO,
            max_hedged_attempts: DEFAULT_MAX_HEDGED_ATTEMPTS,
            hedge_to: HedgeTarget::Same,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    /// Exact wire names only (callers reading env vars lowercase first).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// Everything the runtime needs for one operation: retry, backoff, deadline
/// and circuit-breaker settings. Serialized with durations in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperationPolicy {
    /// The strategy whose row supplied the starting values.
    pub strategy: Strategy,
    /// Total attempts per request, the first try included (1–10).
    pub max_attempts: u32,
    /// The overall per-request deadline budget across all attempts and
    /// waits (`max_delay_seconds`, 5–600 s).
    #[serde(rename = "max_delay_seconds", serialize_with = "ser_secs")]
    pub max_delay: Duration,
    /// Backoff wait n = clamp(multiplier·2^(n-1) s, min, max) (0.1–5.0).
    pub exponential_multiplier: f64,
    /// Smallest backoff wait (0.5–10 s); always below `exponential_max`.
    #[serde(serialize_with = "ser_secs")]
    pub exponential_min: Duration,
    /// Largest backoff wait (5–120 s).
    #[serde(serialize_with = "ser_secs")]
    pub exponential_max: Duration,
    /// Whether a uniform random jitter in `0..jitter_max` is added to each wait.
    pub jitter_enabled: bool,
    /// Largest jitter (0.1–10 s; 2 s, critical 5 s).
    #[serde(serialize_with = "ser_secs")]
    pub jitter_max: Duration,
    /// Consecutive failed calls that open the breaker (1–20); a success
    /// resets the count.
    pub failure_threshold: u32,
    /// How long an open breaker waits before admitting half-open trials
    /// (10–300 s).
    #[serde(serialize_with = "ser_secs")]
    pub recovery_timeout: Duration,
    /// Trial calls admitted while half-open (1–10, default 1).
    pub half_open_max_calls: u32,
    /// Optional rate rule: open when this fraction (0.05–1.0) of the calls
    /// in the window failed. `None` = rule off.
    pub failure_rate_threshold: Option<f64>,
    /// A call slower than this counts as slow (1–600 s). `None` = rule off.
    #[serde(rename = "slow_call_duration_seconds", serialize_with = "ser_opt_secs")]
    pub slow_call_duration: Option<Duration>,
    /// Optional rate rule: open when this fraction (0.05–1.0) of the calls in
    /// the window were slow. Set exactly when `slow_call_duration` is.
    pub slow_call_rate_threshold: Option<f64>,
    /// Calls the window must hold before the rate rules apply (1–1000,
    /// default 10).
    pub minimum_calls: u32,
    /// Hedging: when a call has not answered after this long, another call
    /// starts while the first continues and the first answer wins
    /// (`hedge_delay_ms`, 0–60 000; 0 = off, the default in every strategy).
    #[serde(rename = "hedge_delay_ms", serialize_with = "ser_millis")]
    pub hedge_delay: Duration,
    /// Calls one hedged attempt may have in flight, the first included
    /// (1–3, default 2; 1 = no hedge).
    pub max_hedged_attempts: u32,
    /// Where hedged calls go: `same` provider or the `next` of the chain.
    pub hedge_to: HedgeTarget,
}

impl OperationPolicy {
    /// True when a slow call may be hedged.
    pub fn hedging(&self) -> bool {
        !self.hedge_delay.is_zero() && self.max_hedged_attempts > 1
    }
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ser_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A strategy per operation (absent = no override). Serialized as a map in
/// [`Operation::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperationOverrides([Option<Strategy>; 5]);

impl OperationOverrides {
    /// The override for `op`, if any.
    pub fn get(&self, op: Operation) -> Option<Strategy> {
        self.0[op_index(op)]
    }

    /// Sets or removes the override for `op`.
    pub fn set(&mut self, op: Operation, strategy: Option<Strategy>) {
        self.0[op_index(op)] = strategy;
    }

    /// The overrides present, in [`Operation::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Operation, Strategy)> + '_ {
        Operation::ALL
            .into_iter()
            .filter_map(|op| self.get(op).map(|s| (op, s)))
    }

    /// True when no operation is overridden.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// How many operations are overridden.
    pub fn len(&self) -> usize {
        self.0.iter().filter(|s| s.is_some()).count()
    }
}

impl fmt::Display for OperationOverrides {
    /// `qa=critical, sentiment=aggressive`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.iter().map(|(op, s)| format!("{op}={s}")).collect();
        f.write_str(&parts.join(", "))
    }
}

impl Serialize for OperationOverrides {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(op, st)| (op.as_str(), st.as_str())))
    }
}

/// The position of `op` in [`Operation::ALL`], for per-operation arrays.
pub(crate) fn op_index(op: Operation) -> usize {
    match op {
        Operation::Summarize => 0,
        Operation::Sentiment => 1,
        Operation::KeyPoints => 2,
        Operation::Questions => 3,
        Operation::Qa => 4,
    }
}

/// Where one resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A built-in default outside the strategy rows (half-open calls, rate rules).
    Default,
    /// The preset's own value (its numbers, an override or its default strategy).
    Preset(&'static str),
    /// The row of this strategy.
    Strategy(Strategy),
    /// `RESILIENCE_CUSTOM_CONFIG` (or a custom document passed to [`resolve`]).
    Custom,
    /// A legacy environment variable.
    Env(&'static str),
}

impl fmt::Display for Source {
    /// `default`, `preset:<name>`, `strategy:<name>`, `custom` or `env:<VAR>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Preset(name) => write!(f, "preset:{name}"),
            Source::Strategy(s) => write!(f, "strategy:{s}"),
            Source::Custom => f.write_str("custom"),
            Source::Env(var) => write!(f, "env:{var}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Provenance of every field of one [`OperationPolicy`] (same names as its
/// serialized form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicySources {
    /// Where the strategy choice came from.
    pub strategy: Source,
    /// Source of `max_attempts`.
    pub max_attempts: Source,
    /// Source of `max_delay`.
    #[serde(rename = "max_delay_seconds")]
    pub max_delay: Source,
    /// Source of `exponential_multiplier`.
    pub exponential_multiplier: Source,
    /// Source of `exponential_min`.
    pub exponential_min: Source,
    /// Source of `exponential_max`.
    pub exponential_max: Source,
    /// Source of `jitter_enabled`.
    pub jitter_enabled: Source,
    /// Source of `jitter_max`.
    pub jitter_max: Source,
    /// Source of `failure_threshold`.
    pub failure_threshold: Source,
    /// Source of `recovery_timeout`.
    pub recovery_timeout: Source,
    /// Source of `half_open_max_calls`.
    pub half_open_max_calls: Source,
    /// Source of `failure_rate_threshold`.
    pub failure_rate_threshold: Source,
    /// Source of `slow_call_duration`.
    #[serde(rename = "slow_call_duration_seconds")]
    pub slow_call_duration: Source,
    /// Source of `slow_call_rate_threshold`.
    pub slow_call_rate_threshold: Source,
    /// Source of `minimum_calls`.
    pub minimum_calls: Source,
    /// Source of `hedge_delay`.
    #[serde(rename = "hedge_delay_ms")]
    pub hedge_delay: Source,
    /// Source of `max_hedged_attempts`.
    pub max_hedged_attempts: Source,
    /// Source of `hedge_to`.
    pub hedge_to: Source,
}

impl PolicySources {
    /// Every row field from `strategy`'s row, the rest from defaults.
    fn from_row(strategy: Strategy) -> PolicySources {
        let row = Source::Strategy(strategy);
        PolicySources {
            strategy: row,
            max_attempts: row,
            max_delay: row,
            exponential_multiplier: row,
            exponential_min: row,
            exponential_max: row,
            jitter_enabled: row,
            jitter_max: row,
            failure_threshold: row,
            recovery_timeout: row,
            half_open_max_calls: Source::Default,
            failure_rate_threshold: Source::Default,
            slow_call_duration: Source::Default,
            slow_call_rate_threshold: Source::Default,
            minimum_calls: Source::Default,
            hedge_delay: Source::Default,
            max_hedged_attempts: Source::Default,
            hedge_to: Source::Default,
        }
    }

    /// `(policy field name, source)` for every field, in declaration order.
    pub fn entries(&self) -> [(&'static str, Source); 18] {
        [
            ("strategy", self.strategy),
            ("max_attempts", self.max_attempts),
            ("max_delay", self.max_delay),
            ("exponential_multiplier", self.exponential_multiplier),
            ("exponential_min", self.exponential_min),
            ("exponential_max", self.exponential_max),
            ("jitter_enabled", self.jitter_enabled),
            ("jitter_max", self.jitter_max),
            ("failure_threshold", self.failure_threshold),
            ("recovery_timeout", self.recovery_timeout),
            ("half_open_max_calls", self.half_open_max_calls),
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_duration", self.slow_call_duration),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
            ("minimum_calls", self.minimum_calls),
            ("hedge_delay", self.hedge_delay),
            ("max_hedged_attempts", self.max_hedged_attempts),
            ("hedge_to", self.hedge_to),
        ]
    }

    /// The source of the [`OperationPolicy`] field named `field`.
    pub fn get(&self, field: &str) -> Option<Source> {
        self.entries()
            .into_iter()
            .find(|(name, _)| *name == field)
            .map(|(_, s)| s)
    }
}

/// The effective configuration: one policy per operation, with provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceConfig {
    /// The preset in force: `simple`, `development` or `production`.
    pub preset: String,
    /// The policy of each operation, indexed like [`Operation::ALL`]; use
    /// [`ResilienceConfig::policy`].
    pub policies: [OperationPolicy; 5],
    /// Where each field of each policy came from, indexed like `policies`.
    pub sources: [PolicySources; 5],
    /// The custom document applied, if any.
    pub custom: Option<CustomConfig>,
    /// Names of the legacy variables that were set.
    pub legacy_vars: Vec<String>,
    /// Legal but doubtful aspects (inert settings, legacy variables in use).
    pub warnings: Vec<String>,
}

impl ResilienceConfig {
    /// The policy for `op`.
    pub fn policy(&self, op: Operation) -> &OperationPolicy {
        &self.policies[op_index(op)]
    }

    /// The provenance of `op`'s policy fields.
    pub fn sources(&self, op: Operation) -> &PolicySources {
        &self.sources[op_index(op)]
    }

    /// Where `op`'s policy field `field` (an [`OperationPolicy`] field name)
    /// came from.
    pub fn source(&self, op: Operation, field: &str) -> Option<Source> {
        self.sources(op).get(field)
    }
}

impl Serialize for ResilienceConfig {
    /// `{preset, operations: {op: {<policy fields>, sources: {...}}}, custom,
    /// legacy_vars, warnings}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct OpView<'a> {
            #[serde(flatten)]
            policy: &'a OperationPolicy,
            sources: &'a PolicySources,
        }
        struct Ops<'a>(&'a ResilienceConfig);
        impl Serialize for Ops<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(Operation::ALL.into_iter().map(|op| {
                    (
                        op.as_str(),
                        OpView {
                            policy: self.0.policy(op),
                            sources: self.0.sources(op),
                        },
                    )
                }))
            }
        }
        #[derive(Serialize)]
        struct View<'a> {
            preset: &'a str,
            operations: Ops<'a>,
            custom: Option<&'a CustomConfig>,
            legacy_vars: &'a [String],
            warnings: &'a [String],
        }
        View {
            preset: &self.preset,
            operations: Ops(self),
            custom: self.custom.as_ref(),
            legacy_vars: &self.legacy_vars,
            warnings: &self.warnings,
        }
        .serialize(s)
    }
}

/// A preset as shipped in `presets/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Preset {
    /// `simple`, `development` or `production` (equals the file name).
    pub name: String,
    /// What the preset is for, in one or two sentences.
    pub description: String,
    /// Total attempts for operations without an override (1–10).
    pub retry_attempts: u32,
    /// Breaker threshold for operations without an override (1–20).
    pub circuit_breaker_threshold: u32,
    /// Breaker recovery seconds for operations without an override (10–300).
    pub recovery_timeout: u32,
    /// Strategy of operations without an override.
    pub default_strategy: Strategy,
    /// Per-operation strategies (operation → strategy; absent = no override).
    #[schema(value_type = BTreeMap<String, Strategy>)]
    pub operation_overrides: OperationOverrides,
    /// Deployment environments the preset suits (of `ENVIRONMENTS`).
    pub environment_contexts: Vec<String>,
}

/// The embedded preset files. `include_str!` resolves relative to this
/// source file, so the binary carries them and works from any directory.
const PRESET_FILES: [(&str, &str); 3] = [
    ("simple", include_str!("../../presets/simple.json")),
    (
        "development",
        include_str!("../../presets/development.json"),
    ),
    ("production", include_str!("../../presets/production.json")),
];

/// The parsed presets, built once on first use.
struct Catalog {
    presets: Vec<Preset>,
    broken: Vec<ConfigError>,
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(|| {
        let mut presets = Vec::new();
        let mut broken = Vec::new();
        for (name, text) in PRESET_FILES {
            match parse_preset(name, text) {
                Ok(p) => presets.push(p),
                Err(e) => broken.push(e),
            }
        }
        Catalog { presets, broken }
    })
}

/// The shape of a `presets/<name>.json` file. Every field is required and
/// nothing else is allowed: a custom-only field such as `jitter_max` is not
/// a preset field. [`PresetFile::validate`] checks what the types cannot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    /// Must equal the file's name.
    name: String,
    /// What the preset is for.
    description: String,
    /// Attempts for operations without an override. A JSON number, not a
    /// `u32`, so integrality and range are checked by the custom-config
    /// table like every other `retry_attempts` (which reads `5.0` as 5).
    retry_attempts: f64,
    /// Breaker threshold for operations without an override (see above).
    circuit_breaker_threshold: f64,
    /// Breaker recovery seconds for operations without an override (see above).
    recovery_timeout: f64,
    /// Strategy of operations without an override.
    default_strategy: Strategy,
    /// Per-operation strategies (may be empty).
    operation_overrides: HashMap<Operation, Strategy>,
    /// Deployment environments the preset suits, of [`ENVIRONMENTS`].
    environment_contexts: Vec<String>,
}

impl PresetFile {
    /// The preset, once the name, the contexts and the ranges are checked.
    fn validate(self, expected: &'static str) -> Result<Preset, ConfigError> {
        let broken = |reason: String| ConfigError::BrokenPreset {
            name: expected,
            reason,
        };
        if self.name != expected {
            return Err(broken(format!("its name is '{}'", self.name)));
        }
        if let Some(other) = self
            .environment_contexts
            .iter()
            .find(|c| !ENVIRONMENTS.contains(&c.as_str()))
        {
            return Err(broken(format!(
                "environment_contexts: {other:?} is not one of {}",
                ENVIRONMENTS.join(", ")
            )));
        }
        let int = |field: Field, x: f64| match custom::check_range(field, x, &x.to_string()) {
            Ok(custom::FieldValue::Int(n)) => Ok(n),
            Ok(_) => Err(broken(format!("'{}' is not an integer", field.name()))),
            Err(e) => Err(broken(e)),
        };
        let mut operation_overrides = OperationOverrides::default();
        for (op, strategy) in self.operation_overrides {
            operation_overrides.set(op, Some(strategy));
        }
        Ok(Preset {
            retry_attempts: int(Field::RetryAttempts, self.retry_attempts)?,
            circuit_breaker_threshold: int(
                Field::CircuitBreakerThreshold,
                self.circuit_breaker_threshold,
            )?,
            recovery_timeout: int(Field::RecoveryTimeout, self.recovery_timeout)?,
            name: self.name,
            description: self.description,
            default_strategy: self.default_strategy,
            operation_overrides,
            environment_contexts: self.environment_contexts,
        })
    }
}

/// Parses one preset file (see [`PresetFile`]).
fn parse_preset(expected: &'static str, text: &str) -> Result<Preset, ConfigError> {
    serde_json::from_str::<PresetFile>(text)
        .map_err(|e| ConfigError::BrokenPreset {
            name: expected,
            reason: e.to_string(),
        })?
        .validate(expected)
}

/// The known preset name `name` denotes (trimmed, case-insensitive).
fn normalize_preset_name(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    PRESET_NAMES.into_iter().find(|n| *n == lower)
}

/// The parsed presets (the embedded files are valid by a unit-tested invariant).
pub(crate) fn presets_ref() -> &'static [Preset] {
    &catalog().presets
}

/// The preset called `name` (trimmed, case-insensitive).
pub(crate) fn preset_ref(name: &str) -> Result<&'static Preset, ConfigError> {
    let Some(known) = normalize_preset_name(name) else {
        return Err(unknown_preset(name));
    };
    let cat = catalog();
    if let Some(p) = cat.presets.iter().find(|p| p.name == known) {
        return Ok(p);
    }
    Err(cat
        .broken
        .iter()
        .find(|e| matches!(e, ConfigError::BrokenPreset { name, .. } if *name == known))
        .cloned()
        .unwrap_or_else(|| unknown_preset(name)))
}

/// The preset called `name` (`simple`, `development`, `production`;
/// trimmed, case-insensitive).
pub fn preset(name: &str) -> Result<Preset, ConfigError> {
    preset_ref(name).cloned()
}

/// Every preset, in [`PRESET_NAMES`] order. The embedded files are checked by
/// unit tests; a broken one could only be left out here, and [`preset`] /
/// [`load`] would report it.
pub fn presets() -> Vec<Preset> {
    presets_ref().to_vec()
}

/// The error for a `RESILIENCE_PRESET` (or runtime switch) naming no preset.
fn unknown_preset(name: &str) -> ConfigError {
    ConfigError::invalid(PRESET_VAR, name, Allowed::OneOf(PRESET_NAMES.to_vec()))
}

/// Loads the effective configuration from `RESILIENCE_PRESET` (default
/// `simple`), `RESILIENCE_CUSTOM_CONFIG` and the legacy variables. Any
/// invalid setting is an error; validation warnings of the custom document
/// are kept in [`ResilienceConfig::warnings`].
pub fn load(env: &dyn EnvSource) -> Result<ResilienceConfig, ConfigError> {
    let name = env
        .get(PRESET_VAR)
        .unwrap_or_else(|| DEFAULT_PRESET.to_string());
    // The preset is checked first so its error wins over later ones.
    preset_ref(&name)?;
    let mut warnings = Vec::new();
    let custom = match env.get(CUSTOM_CONFIG_VAR) {
        Some(text) => {
            let checked = validate::check_json(&text);
            warnings = checked.report.warnings.clone();
            Some(checked.into_result()?)
        }
        None => None,
    };
    let mut config = resolve(&name, custom.as_ref(), env)?;
    for w in config.warnings.drain(..) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    config.warnings = warnings;
    Ok(config)
}

/// Resolves preset `preset_name` + `custom` + the legacy variables in `env`
/// (for start-up and runtime preset switching). `custom` is re-validated, so a
/// hand-built value out of range is rejected rather than used.
pub fn resolve(
    preset_name: &str,
    custom: Option<&CustomConfig>,
    env: &dyn EnvSource,
) -> Result<ResilienceConfig, ConfigError> {
    let preset = preset_ref(preset_name)?;
    if let Some(c) = custom {
        validate::check_value(&c.to_value()).into_result()?;
    }
    let (legacy, errors) = legacy::read(env);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let resolved = resolve_policies(preset, custom, &legacy)?;
    let mut warnings = resolved.warnings;
    if let Some(c) = custom.filter(|c| !c.is_empty())
        && resolve_policies(preset, None, &legacy)?.policies == resolved.policies
    {
        warnings.push(format!(
            "{CUSTOM_CONFIG_VAR} {} changes nothing: preset '{}'{} already gives every operation these values",
            c.to_json_string(),
            preset.name,
            if legacy.seen.is_empty() { "" } else { " with the legacy variables" }
        ));
    }
    if !legacy.seen.is_empty() {
        warnings.push(format!(
            "legacy resilience variables in use ({}); `keel config migrate` prints the equivalent {PRESET_VAR} / {CUSTOM_CONFIG_VAR}",
            legacy.seen.join(", ")
        ));
    }
    Ok(ResilienceConfig {
        preset: preset.name.clone(),
        policies: resolved.policies,
        sources: resolved.sources,
        custom: custom.copied(),
        legacy_vars: legacy.seen,
        warnings,
    })
}

/// The outcome of [`resolve_policies`].
pub(crate) struct Resolved {
    pub(crate) policies: [OperationPolicy; 5],
    pub(crate) sources: [PolicySources; 5],
    pub(crate) warnings: Vec<String>,
}

/// Applies the resolution rule of the module documentation. `custom` and
/// `legacy` must already be range-checked.
pub(crate) fn resolve_policies(
    preset: &'static Preset,
    custom: Option<&CustomConfig>,
    legacy: &LegacyLayer,
) -> Result<Resolved, ConfigError> {
    let pname = preset.name.as_str();
    let legacy_source = |f: Field| legacy.var_for(f).map_or(Source::Custom, Source::Env);
    let default_choice = legacy
        .config
        .default_strategy
        .map(|s| (s, legacy_source(Field::DefaultStrategy)))
        .or_else(|| {
            custom
                .and_then(|c| c.default_strategy)
                .map(|s| (s, Source::Custom))
        })
        .unwrap_or((preset.default_strategy, Source::Preset(pname)));
    let mut policies = [Strategy::Balanced.policy(); 5];
    let mut sources = [PolicySources::from_row(Strategy::Balanced); 5];
    let mut overridden_ops = 0;
    for op in Operation::ALL {
        // Step 1: the strategy.
        let override_choice = legacy
            .config
            .operation_overrides
            .get(op)
            .map(|s| (s, legacy.op_var(op).map_or(Source::Custom, Source::Env)))
            .or_else(|| {
                custom
                    .and_then(|c| c.operation_overrides.get(op))
                    .map(|s| (s, Source::Custom))
            })
            .or_else(|| {
                preset
                    .operation_overrides
                    .get(op)
                    .map(|s| (s, Source::Preset(pname)))
            });
        let (strategy, strategy_source) = override_choice.unwrap_or(default_choice);
        // Step 2: the starting values.
        let mut p = strategy.policy();
        let mut src = PolicySources::from_row(strategy);
        src.strategy = strategy_source;
        if override_choice.is_some() {
            overridden_ops += 1;
        } else {
            let from_preset = Source::Preset(pname);
            p.max_attempts = preset.retry_attempts;
            p.failure_threshold = preset.circuit_breaker_threshold;
            p.recovery_timeout = Duration::from_secs(u64::from(preset.recovery_timeout));
            src.max_attempts = from_preset;
            src.failure_threshold = from_preset;
            src.recovery_timeout = from_preset;
        }
        // Steps 3 and 4: custom fields, then legacy variables, for every op.
        if let Some(c) = custom {
            apply_fields(&mut p, &mut src, c, &|_| Source::Custom);
        }
        apply_fields(&mut p, &mut src, &legacy.config, &legacy_source);
        if p.exponential_min >= p.exponential_max {
            return Err(ConfigError::InconsistentPolicy {
                operation: op.as_str(),
                message: format!(
                    "exponential_min must be less than exponential_max (exponential_min {}s from {}, exponential_max {}s from {})",
                    p.exponential_min.as_secs_f64(),
                    src.exponential_min,
                    p.exponential_max.as_secs_f64(),
                    src.exponential_max
                ),
            });
        }
        policies[op_index(op)] = p;
        sources[op_index(op)] = src;
    }
    let mut warnings = Vec::new();
    if overridden_ops == Operation::ALL.len()
        && let (s, from @ (Source::Custom | Source::Env(_))) = default_choice
    {
        warnings.push(format!(
            "default_strategy '{s}' (from {from}) applies to no operation: every operation has an override; use operation_overrides instead"
        ));
    }
    Ok(Resolved {
        policies,
        sources,
        warnings,
    })
}

/// Step 3/4 of resolution: every field set in `c` replaces the policy field.
fn apply_fields(
    p: &mut OperationPolicy,
    src: &mut PolicySources,
    c: &CustomConfig,
    source: &dyn Fn(Field) -> Source,
) {
    // Values are range-checked (finite, positive), so the Duration
    // conversions cannot panic.
    let secs = |x: f64| Duration::from_secs_f64(x);
    if let Some(v) = c.retry_attempts {
        p.max_attempts = v;
        src.max_attempts = source(Field::RetryAttempts);
    }
    if let Some(v) = c.circuit_breaker_threshold {
        p.failure_threshold = v;
        src.failure_threshold = source(Field::CircuitBreakerThreshold);
    }
    if let Some(v) = c.recovery_timeout {
        p.recovery_timeout = Duration::from_secs(u64::from(v));
        src.recovery_timeout = source(Field::RecoveryTimeout);
    }
    if let Some(v) = c.max_delay_seconds {
        p.max_delay = Duration::from_secs(u64::from(v));
        src.max_delay = source(Field::MaxDelaySeconds);
    }
    if let Some(v) = c.exponential_multiplier {
        p.exponential_multiplier = v;
        src.exponential_multiplier = source(Field::ExponentialMultiplier);
    }
    if let Some(v) = c.exponential_min {
        p.exponential_min = secs(v);
        src.exponential_min = source(Field::ExponentialMin);
    }
    if let Some(v) = c.exponential_max {
        p.exponential_max = secs(v);
        src.exponential_max = source(Field::ExponentialMax);
    }
    if let Some(v) = c.jitter_enabled {
        p.jitter_enabled = v;
        src.jitter_enabled = source(Field::JitterEnabled);
    }
    if let Some(v) = c.jitter_max {
        p.jitter_max = secs(v);
        src.jitter_max = source(Field::JitterMax);
    }
    if let Some(v) = c.half_open_max_calls {
        p.half_open_max_calls = v;
        src.half_open_max_calls = source(Field::HalfOpenMaxCalls);
    }
    if let Some(v) = c.failure_rate_threshold {
        p.failure_rate_threshold = Some(v);
        src.failure_rate_threshold = source(Field::FailureRateThreshold);
    }
    if let Some(v) = c.slow_call_duration_seconds {
        p.slow_call_duration = Some(secs(v));
        src.slow_call_duration = source(Field::SlowCallDurationSeconds);
    }
    if let Some(v) = c.slow_call_rate_threshold {
        p.slow_call_rate_threshold = Some(v);
        src.slow_call_rate_threshold = source(Field::SlowCallRateThreshold);
    }
    if let Some(v) = c.minimum_calls {
        p.minimum_calls = v;
        src.minimum_calls = source(Field::MinimumCalls);
    }
    if let Some(v) = c.hedge_delay_ms {
        p.hedge_delay = Duration::from_millis(u64::from(v));
        src.hedge_delay = source(Field::HedgeDelayMs);
    }
    if let Some(v) = c.max_hedged_attempts {
        p.max_hedged_attempts = v;
        src.max_hedged_attempts = source(Field::MaxHedgedAttempts);
    }
    if let Some(v) = c.hedge_to {
        p.hedge_to = v;
        src.hedge_to = source(Field::HedgeTo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use Operation::*;

    fn cfg(vars: &[(&str, &str)]) -> ResilienceConfig {
        load(&MapEnv::new(vars)).expect("valid configuration")
    }

    fn err(vars: &[(&str, &str)]) -> String {
        load(&MapEnv::new(vars))
            .expect_err("invalid configuration")
            .to_string()
    }

    /// (strategy, attempts, threshold, recovery s) of one operation.
    fn row(c: &ResilienceConfig, op: Operation) -> (Strategy, u32, u32, u64) {
        let p = c.policy(op);
        (
            p.strategy,
            p.max_attempts,
            p.failure_threshold,
            p.recovery_timeout.as_secs(),
        )
    }

    #[test]
    fn embedded_presets_parse_and_match_the_contract() {
        assert!(catalog().broken.is_empty(), "{:?}", catalog().broken);
        let names: Vec<String> = presets().into_iter().map(|p| p.name).collect();
        assert_eq!(names, PRESET_NAMES);
        let p = preset("production").expect("production");
        assert_eq!(
            (
                p.retry_attempts,
                p.circuit_breaker_threshold,
                p.recovery_timeout
            ),
            (5, 10, 120)
        );
        assert_eq!(p.default_strategy, Strategy::Conservative);
        assert_eq!(
            p.operation_overrides.to_string(),
            "summarize=conservative, sentiment=aggressive, key_points=balanced, questions=balanced, qa=critical"
        );
        assert_eq!(p.environment_contexts, ["production", "staging"]);
        let d = preset("development").expect("development");
        assert_eq!(
            (
                d.retry_attempts,
                d.circuit_breaker_threshold,
                d.recovery_timeout,
                d.default_strategy
            ),
            (2, 3, 30, Strategy::Aggressive)
        );
        assert_eq!(
            d.operation_overrides.to_string(),
            "sentiment=aggressive, qa=balanced"
        );
        let s = preset(" Simple ").expect("case-insensitive");
        assert!(s.operation_overrides.is_empty());
        assert_eq!(s.environment_contexts.len(), 4);
    }

    #[test]
    fn preset_parser_rejects_malformed_files() {
        let bad = [
            r#"{"name": "simple"}"#,
            r#"[1]"#,
            r#"{"name": "other", "description": "d", "retry_attempts": 3, "circuit_breaker_threshold": 5,
                "recovery_timeout": 60, "default_strategy": "balanced", "operation_overrides": {},
                "environment_contexts": []}"#,
            r#"{"name": "simple", "description": "d", "retry_attempts": 30, "circuit_breaker_threshold": 5,
                "recovery_timeout": 60, "default_strategy": "balanced", "operation_overrides": {},
                "environment_contexts": []}"#,
            r#"{"name": "simple", "description": "d", "retry_attempts": 3, "circuit_breaker_threshold": 5,
                "recovery_timeout": 60, "default_strategy": "balanced", "operation_overrides": {},
                "environment_contexts": [], "jitter_max": 1}"#,
        ];
        for text in bad {
            assert!(
                matches!(
                    parse_preset("simple", text),
                    Err(ConfigError::BrokenPreset { .. })
                ),
                "{text}"
            );
        }
    }

    /// The messages of a broken preset name the field, the value and what
    /// is allowed; shapes the checks accepted before stay accepted.
    #[test]
    fn preset_errors_name_field_value_and_allowed() {
        let doc = |extra: &str| {
            format!(
                r#"{{"name": "simple", "description": "d", "retry_attempts": 3,
                "circuit_breaker_threshold": 5, "recovery_timeout": 60,
                "default_strategy": "balanced", "operation_overrides": {{}},
                "environment_contexts": ["testing"]{extra}}}"#
            )
        };
        let err = |text: &str| {
            parse_preset("simple", text)
                .expect_err("broken")
                .to_string()
        };
        let e = err(&doc(r#", "jitter_max": 1"#));
        assert!(
            e.contains("jitter_max") && e.contains("retry_attempts"),
            "{e}"
        );
        let e = err(&doc("").replace(r#""retry_attempts": 3"#, r#""retry_attempts": 30"#));
        assert!(
            e.contains(
                "Field 'retry_attempts': 30 is greater than the maximum of 10 (allowed 1-10)"
            ),
            "{e}"
        );
        let e = err(&doc("").replace(r#"{}"#, r#"{"translate": "balanced"}"#));
        assert!(e.contains("translate") && e.contains("key_points"), "{e}");
        let e = err(&doc("").replace(r#""balanced""#, r#""fast""#));
        assert!(e.contains("fast") && e.contains("conservative"), "{e}");
        let e = err(&doc("").replace(r#"["testing"]"#, r#"["qa"]"#));
        assert!(e.contains("\"qa\" is not one of development"), "{e}");
        let e = err(&doc("").replace(r#""retry_attempts": 3"#, r#""retry_attempts": 2.5"#));
        assert!(e.contains("not of type integer"), "{e}");
        let p = parse_preset(
            "simple",
            &doc("").replace(r#""retry_attempts": 3"#, r#""retry_attempts": 3.0"#),
        )
        .expect("3.0 is the integer 3, as in custom documents");
        assert_eq!(p.retry_attempts, 3);
    }

    #[test]
    fn strategy_rows() {
        let c = Strategy::Critical.policy();
        assert_eq!(c.max_attempts, 7);
        assert_eq!(c.max_delay, Duration::from_secs(300));
        assert_eq!(c.exponential_multiplier, 1.5);
        assert_eq!(c.exponential_min, Duration::from_secs(3));
        assert_eq!(c.exponential_max, Duration::from_secs(60));
        assert_eq!(c.jitter_max, Duration::from_secs(5));
        assert_eq!(
            (c.failure_threshold, c.recovery_timeout.as_secs()),
            (10, 300)
        );
        let a = Strategy::Aggressive.policy();
        assert_eq!(a.exponential_multiplier, 0.5);
        assert_eq!(a.jitter_max, Duration::from_secs(2));
        assert_eq!((a.half_open_max_calls, a.minimum_calls), (1, 10));
        assert!(a.jitter_enabled && a.failure_rate_threshold.is_none());
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert!(s.policy().exponential_min < s.policy().exponential_max);
        }
        assert!("Balanced".parse::<Strategy>().is_err());
    }

    #[test]
    fn simple_preset_is_balanced_everywhere() {
        let c = cfg(&[]);
        assert_eq!(c.preset, "simple");
        for op in Operation::ALL {
            assert_eq!(row(&c, op), (Strategy::Balanced, 3, 5, 60), "{op}");
            assert_eq!(c.policy(op).max_delay, Duration::from_secs(30));
            assert_eq!(c.source(op, "max_attempts"), Some(Source::Preset("simple")));
            assert_eq!(
                c.source(op, "max_delay"),
                Some(Source::Strategy(Strategy::Balanced))
            );
            assert_eq!(c.source(op, "half_open_max_calls"), Some(Source::Default));
        }
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn development_preset() {
        let c = cfg(&[("RESILIENCE_PRESET", "development")]);
        assert_eq!(row(&c, Summarize), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(row(&c, KeyPoints), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(row(&c, Questions), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(row(&c, Sentiment), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(row(&c, Qa), (Strategy::Balanced, 3, 5, 60));
        assert_eq!(c.policy(Qa).max_delay, Duration::from_secs(30));
        assert_eq!(
            c.source(Qa, "strategy"),
            Some(Source::Preset("development"))
        );
        assert_eq!(
            c.source(Qa, "max_attempts"),
            Some(Source::Strategy(Strategy::Balanced))
        );
    }

    #[test]
    fn production_preset() {
        let c = cfg(&[("RESILIENCE_PRESET", "production")]);
        assert_eq!(row(&c, Qa), (Strategy::Critical, 7, 10, 300));
        assert_eq!(c.policy(Qa).max_delay, Duration::from_secs(300));
        assert_eq!(row(&c, Sentiment), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(row(&c, Summarize), (Strategy::Conservative, 5, 8, 120));
        assert_eq!(row(&c, KeyPoints), (Strategy::Balanced, 3, 5, 60));
        assert_eq!(row(&c, Questions), (Strategy::Balanced, 3, 5, 60));
        // Presets really differ from one another (the reference's did not).
        assert_ne!(c.policies, cfg(&[]).policies);
    }

    #[test]
    fn custom_numbers_apply_to_every_operation() {
        let c = cfg(&[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"retry_attempts":7,"circuit_breaker_threshold":12}"#,
            ),
        ]);
        for op in Operation::ALL {
            assert_eq!(c.policy(op).max_attempts, 7, "{op}");
            assert_eq!(c.policy(op).failure_threshold, 12, "{op}");
            assert_eq!(c.source(op, "max_attempts"), Some(Source::Custom));
        }
        // Other fields keep their strategy rows.
        assert_eq!(c.policy(Qa).recovery_timeout, Duration::from_secs(300));
        assert_eq!(
            c.policy(Sentiment).recovery_timeout,
            Duration::from_secs(30)
        );
        assert!(c.custom.is_some());
    }

    #[test]
    fn custom_override_changes_only_that_operation() {
        let base = cfg(&[]);
        let c = cfg(&[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"operation_overrides":{"summarize":"aggressive"}}"#,
        )]);
        assert_eq!(row(&c, Summarize), (Strategy::Aggressive, 2, 3, 30));
        assert_eq!(c.source(Summarize, "strategy"), Some(Source::Custom));
        for op in [Sentiment, KeyPoints, Questions, Qa] {
            assert_eq!(c.policy(op), base.policy(op), "{op}");
        }
        // A custom override beats the preset's.
        let c = cfg(&[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"operation_overrides":{"qa":"balanced"}}"#,
            ),
        ]);
        assert_eq!(row(&c, Qa), (Strategy::Balanced, 3, 5, 60));
    }

    #[test]
    fn custom_default_strategy_and_extensions() {
        let c = cfg(&[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"default_strategy":"conservative","exponential_max":40,"jitter_enabled":false,
                "failure_rate_threshold":0.5,"slow_call_duration_seconds":2.5,
                "slow_call_rate_threshold":0.8,"minimum_calls":20,"half_open_max_calls":3}"#,
        )]);
        // simple has no overrides: conservative row, simple's numbers.
        let p = c.policy(Summarize);
        assert_eq!(row(&c, Summarize), (Strategy::Conservative, 3, 5, 60));
        assert_eq!(p.max_delay, Duration::from_secs(120));
        assert_eq!(p.exponential_max, Duration::from_secs(40));
        assert!(!p.jitter_enabled);
        assert_eq!(p.failure_rate_threshold, Some(0.5));
        assert_eq!(p.slow_call_duration, Some(Duration::from_millis(2500)));
        assert_eq!(p.slow_call_rate_threshold, Some(0.8));
        assert_eq!((p.minimum_calls, p.half_open_max_calls), (20, 3));
        assert_eq!(c.source(Summarize, "strategy"), Some(Source::Custom));
    }

    #[test]
    fn legacy_variables_win_over_custom() {
        let c = cfg(&[
            ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts":7}"#),
            ("RETRY_MAX_ATTEMPTS", "4"),
        ]);
        for op in Operation::ALL {
            assert_eq!(c.policy(op).max_attempts, 4);
            assert_eq!(
                c.source(op, "max_attempts"),
                Some(Source::Env("RETRY_MAX_ATTEMPTS"))
            );
            assert_eq!(
                c.source(op, "max_attempts")
                    .map(|s| s.to_string())
                    .as_deref(),
                Some("env:RETRY_MAX_ATTEMPTS")
            );
        }
        assert_eq!(c.legacy_vars, ["RETRY_MAX_ATTEMPTS"]);
        assert!(c.warnings.iter().any(|w| w.contains("keel config migrate")));

        let c = cfg(&[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"operation_overrides":{"qa":"balanced"}}"#,
            ),
            ("QA_RESILIENCE_STRATEGY", "Aggressive"),
            ("RETRY_JITTER_ENABLED", "no"),
            ("RETRY_EXPONENTIAL_MULTIPLIER", "0.25"),
        ]);
        assert_eq!(c.policy(Qa).strategy, Strategy::Aggressive);
        assert_eq!(
            c.source(Qa, "strategy"),
            Some(Source::Env("QA_RESILIENCE_STRATEGY"))
        );
        assert!(!c.policy(Summarize).jitter_enabled);
        assert_eq!(c.policy(Summarize).exponential_multiplier, 0.25);
    }

    #[test]
    fn invalid_settings_are_errors_never_fallbacks() {
        assert_eq!(
            err(&[("RESILIENCE_PRESET", "fast")]),
            r#"invalid RESILIENCE_PRESET="fast": allowed simple | development | production"#
        );
        let e = err(&[("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts":15}"#)]);
        assert_eq!(
            e,
            "invalid RESILIENCE_CUSTOM_CONFIG: Field 'retry_attempts': 15 is greater than the maximum of 10 (allowed 1-10)"
        );
        let e = err(&[("RESILIENCE_CUSTOM_CONFIG", "{not json")]);
        assert!(
            e.starts_with("invalid RESILIENCE_CUSTOM_CONFIG: Invalid JSON"),
            "{e}"
        );
        assert!(err(&[("RESILIENCE_CUSTOM_CONFIG", "{}")]).contains("at least one field"));
        let e = err(&[("RETRY_MAX_ATTEMPTS", "abc")]);
        assert_eq!(
            e,
            r#"invalid RETRY_MAX_ATTEMPTS="abc": allowed integer 1-10 (retry_attempts)"#
        );
        let e = err(&[("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "5")]);
        assert!(
            e.contains("CIRCUIT_BREAKER_RECOVERY_TIMEOUT=\"5\"") && e.contains("10-300"),
            "{e}"
        );
        let e = err(&[("SENTIMENT_RESILIENCE_STRATEGY", "turbo")]);
        assert!(
            e.contains("SENTIMENT_RESILIENCE_STRATEGY") && e.contains("critical"),
            "{e}"
        );
        let e = err(&[("RETRY_JITTER_ENABLED", "maybe")]);
        assert!(e.contains("RETRY_JITTER_ENABLED"), "{e}");
        // The preset error is reported first.
        assert!(
            err(&[("RESILIENCE_PRESET", "x"), ("RETRY_MAX_ATTEMPTS", "0")])
                .contains("RESILIENCE_PRESET")
        );
    }

    #[test]
    fn exponential_bounds_are_checked_after_resolution() {
        // 8 s is below balanced's 10 s maximum but above aggressive's 5 s.
        let custom = r#"{"exponential_min":8}"#;
        assert!(load(&MapEnv::new(&[("RESILIENCE_CUSTOM_CONFIG", custom)])).is_ok());
        let e = err(&[
            ("RESILIENCE_PRESET", "development"),
            ("RESILIENCE_CUSTOM_CONFIG", custom),
        ]);
        assert!(
            e.contains("exponential_min must be less than exponential_max"),
            "{e}"
        );
        assert!(
            e.contains("operation 'summarize'") && e.contains("strategy:aggressive"),
            "{e}"
        );
        let e = err(&[
            ("RETRY_EXPONENTIAL_MIN", "9"),
            ("RETRY_EXPONENTIAL_MAX", "6"),
        ]);
        assert!(e.contains("env:RETRY_EXPONENTIAL_MIN"), "{e}");
    }

    #[test]
    fn resolve_rechecks_hand_built_custom_configs() {
        let bad = CustomConfig {
            retry_attempts: Some(99),
            ..CustomConfig::default()
        };
        let e = resolve("simple", Some(&bad), &MapEnv::default()).expect_err("out of range");
        assert!(e.to_string().contains("retry_attempts"), "{e}");
        let nan = CustomConfig {
            jitter_max: Some(f64::NAN),
            ..CustomConfig::default()
        };
        assert!(resolve("simple", Some(&nan), &MapEnv::default()).is_err());
    }

    #[test]
    fn inert_settings_are_warned_about() {
        let c = cfg(&[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"default_strategy":"critical"}"#,
            ),
        ]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("applies to no operation")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings.iter().any(|w| w.contains("changes nothing")),
            "{:?}",
            c.warnings
        );
        let c = cfg(&[("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts":3}"#)]);
        assert!(
            c.warnings.iter().any(|w| w.contains("changes nothing")),
            "{:?}",
            c.warnings
        );
        let c = cfg(&[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"retry_attempts":5,"max_delay_seconds":8}"#,
        )]);
        assert!(
            c.warnings.iter().any(|w| w.contains("might be too short")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn runtime_switch_and_serialization() {
        let env = MapEnv::default();
        let c = resolve("production", None, &env).expect("production");
        assert_eq!(c.preset, "production");
        let json = serde_json::to_value(&c).expect("serializes");
        assert_eq!(json["operations"]["qa"]["max_attempts"], 7);
        assert_eq!(json["operations"]["qa"]["strategy"], "critical");
        assert_eq!(json["operations"]["qa"]["max_delay_seconds"], 300.0);
        assert_eq!(
            json["operations"]["qa"]["sources"]["strategy"],
            "preset:production"
        );
        assert_eq!(
            json["operations"]["summarize"]["sources"]["max_attempts"],
            "strategy:conservative"
        );
        assert_eq!(json["custom"], serde_json::Value::Null);
        let p = serde_json::to_value(preset("development").expect("dev")).expect("serializes");
        assert_eq!(
            p["operation_overrides"],
            serde_json::json!({"sentiment": "aggressive", "qa": "balanced"})
        );
        assert!(matches!(
            resolve("nope", None, &env),
            Err(ConfigError::Invalid {
                name: PRESET_VAR,
                ..
            })
        ));
    }

    #[test]
    fn custom_config_round_trips() {
        let text = r#"{"max_delay_seconds":45,"operation_overrides":{"qa":"critical","summarize":"balanced"},"retry_attempts":4,"jitter_enabled":false}"#;
        let c = CustomConfig::parse(text).expect("valid");
        assert_eq!(
            c.to_json_string(),
            r#"{"retry_attempts":4,"operation_overrides":{"summarize":"balanced","qa":"critical"},"jitter_enabled":false,"max_delay_seconds":45}"#
        );
        assert_eq!(CustomConfig::from_value(&c.to_value()), Ok(c));
    }

    #[test]
    fn load_is_fast() {
        let env = MapEnv::new(&[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"retry_attempts":4,"operation_overrides":{"qa":"balanced"}}"#,
            ),
        ]);
        load(&env).expect("warm-up");
        let start = std::time::Instant::now();
        for _ in 0..100 {
            load(&env).expect("valid");
        }
        // Generous bound for debug builds on a shared machine: < 1 ms each.
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }
}
