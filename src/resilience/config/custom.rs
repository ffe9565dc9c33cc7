//! The custom-configuration schema: the fields of `RESILIENCE_CUSTOM_CONFIG`
//! (and of a preset file's resilience part), their types and allowed ranges,
//! and [`CustomConfig`], the typed, range-checked form of such a document.
//!
//! Invariant: every `Some` value in a [`CustomConfig`] built by this module
//! lies inside its field's range (the table in [`Field::kind`]); resolution
//! re-checks hand-built values before using them, so an out-of-range value can
//! never reach the runtime. The table is the single source of the ranges: the
//! JSON validator, the legacy environment variables and the preset files all
//! check against it.

use super::{HedgeTarget, OperationOverrides, Strategy};
use crate::job::Operation;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// One field of the custom-configuration schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    RetryAttempts,
    CircuitBreakerThreshold,
    RecoveryTimeout,
    DefaultStrategy,
    OperationOverrides,
    ExponentialMultiplier,
    ExponentialMin,
    ExponentialMax,
    JitterEnabled,
    JitterMax,
    MaxDelaySeconds,
    HalfOpenMaxCalls,
    FailureRateThreshold,
    SlowCallDurationSeconds,
    SlowCallRateThreshold,
    MinimumCalls,
    HedgeDelayMs,
    MaxHedgedAttempts,
    HedgeTo,
}

/// The type and allowed values of a [`Field`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A JSON integer (a number with no fractional part), inclusive range.
    Int { min: u32, max: u32 },
    /// Any finite JSON number, inclusive range.
    Float { min: f64, max: f64 },
    /// `true` or `false`.
    Bool,
    /// One of the four strategy names.
    Strategy,
    /// An object mapping operation names to strategy names.
    Overrides,
    /// `same` or `next`.
    HedgeTarget,
}

impl Kind {
    /// The allowed values in words, e.g. `1-10` or `0.1-5.0`.
    pub(crate) fn allowed(self) -> String {
        match self {
            Kind::Int { min, max } => format!("{min}-{max}"),
            Kind::Float { min, max } => format!("{min:?}-{max:?}"),
            Kind::Bool => "true | false".to_string(),
            Kind::Strategy => STRATEGY_LIST.to_string(),
            Kind::Overrides => format!("an object of {OPERATION_LIST} -> strategy"),
            Kind::HedgeTarget => HEDGE_TARGET_LIST.to_string(),
        }
    }

    /// The JSON type name used in "is not of type" messages.
    fn type_name(self) -> &'static str {
        match self {
            Kind::Int { .. } => "integer",
            Kind::Float { .. } => "number",
            Kind::Bool => "boolean",
            Kind::Strategy => "string",
            Kind::Overrides => "object",
            Kind::HedgeTarget => "string",
        }
    }
}

/// The strategy names, as error messages list them.
pub(crate) const STRATEGY_LIST: &str = "aggressive | balanced | conservative | critical";
/// The hedge targets, as error messages list them.
pub(crate) const HEDGE_TARGET_LIST: &str = "same | next";
/// The operation names, as error messages list them.
pub(crate) const OPERATION_LIST: &str = "summarize | sentiment | key_points | questions | qa";

impl Field {
    /// Every field, in the order documents and messages list them.
    pub(crate) const ALL: [Field; 19] = [
        Field::RetryAttempts,
        Field::CircuitBreakerThreshold,
        Field::RecoveryTimeout,
        Field::DefaultStrategy,
        Field::OperationOverrides,
        Field::ExponentialMultiplier,
        Field::ExponentialMin,
        Field::ExponentialMax,
        Field::JitterEnabled,
        Field::JitterMax,
        Field::MaxDelaySeconds,
        Field::HalfOpenMaxCalls,
        Field::FailureRateThreshold,
        Field::SlowCallDurationSeconds,
        Field::SlowCallRateThreshold,
        Field::MinimumCalls,
        Field::HedgeDelayMs,
        Field::MaxHedgedAttempts,
        Field::HedgeTo,
    ];

    /// The JSON key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::RetryAttempts => "retry_attempts",
            Field::CircuitBreakerThreshold => "circuit_breaker_threshold",
            Field::RecoveryTimeout => "recovery_timeout",
            Field::DefaultStrategy => "default_strategy",
            Field::OperationOverrides => "operation_overrides",
            Field::ExponentialMultiplier => "exponential_multiplier",
            Field::ExponentialMin => "exponential_min",
            Field::ExponentialMax => "exponential_max",
            Field::JitterEnabled => "jitter_enabled",
            Field::JitterMax => "jitter_max",
            Field::MaxDelaySeconds => "max_delay_seconds",
            Field::HalfOpenMaxCalls => "half_open_max_calls",
            Field::FailureRateThreshold => "failure_rate_threshold",
            Field::SlowCallDurationSeconds => "slow_call_duration_seconds",
            Field::SlowCallRateThreshold => "slow_call_rate_threshold",
            Field::MinimumCalls => "minimum_calls",
            Field::HedgeDelayMs => "hedge_delay_ms",
            Field::MaxHedgedAttempts => "max_hedged_attempts",
            Field::HedgeTo => "hedge_to",
        }
    }

    /// The field's type and range: the documented custom-config contract
    /// (README "Presets") plus the keel extensions (half-open calls and the
    /// rate rules).
    pub(crate) fn kind(self) -> Kind {
        match self {
            Field::RetryAttempts => Kind::Int { min: 1, max: 10 },
            Field::CircuitBreakerThreshold => Kind::Int { min: 1, max: 20 },
            Field::RecoveryTimeout => Kind::Int { min: 10, max: 300 },
            Field::DefaultStrategy => Kind::Strategy,
            Field::OperationOverrides => Kind::Overrides,
            Field::ExponentialMultiplier => Kind::Float { min: 0.1, max: 5.0 },
            Field::ExponentialMin => Kind::Float {
                min: 0.5,
                max: 10.0,
            },
            Field::ExponentialMax => Kind::Float {
                min: 5.0,
                max: 120.0,
            },
            Field::JitterEnabled => Kind::Bool,
            Field::JitterMax => Kind::Float {
                min: 0.1,
                max: 10.0,
            },
            Field::MaxDelaySeconds => Kind::Int { min: 5, max: 600 },
            Field::HalfOpenMaxCalls => Kind::Int { min: 1, max: 10 },
            Field::FailureRateThreshold => Kind::Float {
                min: 0.05,
                max: 1.0,
            },
            Field::SlowCallDurationSeconds => Kind::Float {
                min: 1.0,
                max: 600.0,
            },
            Field::SlowCallRateThreshold => Kind::Float {
                min: 0.05,
                max: 1.0,
            },
            Field::MinimumCalls => Kind::Int { min: 1, max: 1000 },
            Field::HedgeDelayMs => Kind::Int {
                min: 0,
                max: 60_000,
            },
            Field::MaxHedgedAttempts => Kind::Int { min: 1, max: 3 },
            Field::HedgeTo => Kind::HedgeTarget,
        }
    }

    /// The field with this JSON key.
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// All field names, comma separated, for "unknown field" messages.
    pub(crate) fn list() -> String {
        Field::ALL.map(Field::name).join(", ")
    }
}

/// A typed value of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FieldValue {
    Int(u32),
    Float(f64),
    Bool(bool),
    Strategy(Strategy),
    Overrides(OperationOverrides),
    HedgeTarget(HedgeTarget),
}

impl FieldValue {
    /// Compact JSON text; overrides in [`Operation::ALL`] order.
    fn to_json_text(self) -> String {
        match self {
            FieldValue::Overrides(o) => {
                let parts: Vec<String> = o
                    .iter()
                    .map(|(op, s)| format!("\"{}\":\"{}\"", op.as_str(), s.as_str()))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            other => other.to_json().to_string(),
        }
    }

    /// The value as JSON.
    fn to_json(self) -> Value {
        match self {
            FieldValue::Int(v) => Value::from(v),
            FieldValue::Float(v) => Value::from(v),
            FieldValue::Bool(v) => Value::Bool(v),
            FieldValue::Strategy(s) => Value::from(s.as_str()),
            FieldValue::HedgeTarget(t) => Value::from(t.as_str()),
            FieldValue::Overrides(o) => {
                let map: Map<String, Value> = o
                    .iter()
                    .map(|(op, s)| (op.as_str().to_string(), Value::from(s.as_str())))
                    .collect();
                Value::Object(map)
            }
        }
    }
}

/// A validated custom configuration: what `RESILIENCE_CUSTOM_CONFIG` (or the
/// legacy environment variables, mapped to the same fields) sets. Every field
/// is optional; a set field replaces the corresponding policy field for
/// **every** operation (see the resolution rule in the parent module), except
/// `default_strategy` and `operation_overrides`, which choose strategies.
///
/// Build it with [`CustomConfig::parse`] / [`CustomConfig::from_value`] so the
/// ranges are checked; [`super::resolve`] re-checks hand-built values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CustomConfig {
    /// Total attempts per request, the first try included. Integer 1–10.
    pub retry_attempts: Option<u32>,
    /// Consecutive failed calls that open the circuit breaker. Integer 1–20.
    pub circuit_breaker_threshold: Option<u32>,
    /// Seconds an open breaker waits before a half-open trial. Integer 10–300.
    pub recovery_timeout: Option<u32>,
    /// Strategy for operations without an override (a preset override still
    /// wins for its operation). One of the four strategies.
    pub default_strategy: Option<Strategy>,
    /// Per-operation strategies; these win over the preset's overrides.
    pub operation_overrides: OperationOverrides,
    /// Backoff multiplier: wait n = clamp(mult·2^(n-1), min, max). 0.1–5.0.
    pub exponential_multiplier: Option<f64>,
    /// Smallest backoff wait, seconds. 0.5–10.0; must stay below `exponential_max`.
    pub exponential_min: Option<f64>,
    /// Largest backoff wait, seconds. 5.0–120.0.
    pub exponential_max: Option<f64>,
    /// Whether a random jitter of up to `jitter_max` is added to each wait.
    pub jitter_enabled: Option<bool>,
    /// Largest jitter, seconds. 0.1–10.0.
    pub jitter_max: Option<f64>,
    /// Overall per-request deadline budget for all attempts and waits,
    /// seconds. Integer 5–600.
    pub max_delay_seconds: Option<u32>,
    /// keel extension: trial calls admitted while half-open. Integer 1–10
    /// (default 1).
    pub half_open_max_calls: Option<u32>,
    /// keel extension: open the breaker when this fraction of the calls in
    /// the sliding window failed. 0.05–1.0 (default: rule off).
    pub failure_rate_threshold: Option<f64>,
    /// keel extension: a call slower than this many seconds counts as slow.
    /// 1–600; must be set together with `slow_call_rate_threshold`.
    pub slow_call_duration_seconds: Option<f64>,
    /// keel extension: open the breaker when this fraction of the calls in
    /// the window were slow. 0.05–1.0; needs `slow_call_duration_seconds`.
    pub slow_call_rate_threshold: Option<f64>,
    /// keel extension: calls the window must hold before the rate rules
    /// apply. Integer 1–1000 (default 10).
    pub minimum_calls: Option<u32>,
    /// keel extension: milliseconds after which a call that has not answered
    /// is hedged by another. Integer 0–60000 (default 0 = off).
    pub hedge_delay_ms: Option<u32>,
    /// keel extension: calls one hedged attempt may have in flight, the
    /// first included. Integer 1–3 (default 2).
    pub max_hedged_attempts: Option<u32>,
    /// keel extension: where hedged calls go, `same` or `next` (default same).
    pub hedge_to: Option<HedgeTarget>,
}

impl CustomConfig {
    /// Parses and validates a JSON document (see
    /// [`super::validate_custom_config`] for the rules). Warnings are dropped
    /// here; use the validator to see them.
    pub fn parse(json: &str) -> Result<CustomConfig, crate::env::ConfigError> {
        let report = super::validate::check_json(json);
        report.into_result()
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<CustomConfig, crate::env::ConfigError> {
        super::validate::check_value(value).into_result()
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        Field::ALL.into_iter().all(|f| self.get(f).is_none())
    }

    /// The document as a JSON object holding only the set fields, in schema
    /// order (`operation_overrides` only when it has entries).
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = Field::ALL
            .into_iter()
            .filter_map(|f| self.get(f).map(|v| (f.name().to_string(), v.to_json())))
            .collect();
        Value::Object(map)
    }

    /// The compact JSON text of [`CustomConfig::to_value`], always in
    /// schema order (independent of how `serde_json` orders map keys), so
    /// printed documents are stable.
    pub fn to_json_string(&self) -> String {
        let parts: Vec<String> = Field::ALL
            .into_iter()
            .filter_map(|f| {
                self.get(f)
                    .map(|v| format!("{}:{}", Value::from(f.name()), v.to_json_text()))
            })
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    /// The value of one field, `None` when unset (empty overrides are unset).
    pub(crate) fn get(&self, field: Field) -> Option<FieldValue> {
        match field {
            Field::RetryAttempts => self.retry_attempts.map(FieldValue::Int),
            Field::CircuitBreakerThreshold => self.circuit_breaker_threshold.map(FieldValue::Int),
            Field::RecoveryTimeout => self.recovery_timeout.map(FieldValue::Int),
            Field::DefaultStrategy => self.default_strategy.map(FieldValue::Strategy),
            Field::OperationOverrides => (!self.operation_overrides.is_empty())
                .then_some(FieldValue::Overrides(self.operation_overrides)),
            Field::ExponentialMultiplier => self.exponential_multiplier.map(FieldValue::Float),
            Field::ExponentialMin => self.exponential_min.map(FieldValue::Float),
            Field::ExponentialMax => self.exponential_max.map(FieldValue::Float),
            Field::JitterEnabled => self.jitter_enabled.map(FieldValue::Bool),
            Field::JitterMax => self.jitter_max.map(FieldValue::Float),
            Field::MaxDelaySeconds => self.max_delay_seconds.map(FieldValue::Int),
            Field::HalfOpenMaxCalls => self.half_open_max_calls.map(FieldValue::Int),
            Field::FailureRateThreshold => self.failure_rate_threshold.map(FieldValue::Float),
            Field::SlowCallDurationSeconds => {
                self.slow_call_duration_seconds.map(FieldValue::Float)
            }
            Field::SlowCallRateThreshold => self.slow_call_rate_threshold.map(FieldValue::Float),
            Field::MinimumCalls => self.minimum_calls.map(FieldValue::Int),
            Field::HedgeDelayMs => self.hedge_delay_ms.map(FieldValue::Int),
            Field::MaxHedgedAttempts => self.max_hedged_attempts.map(FieldValue::Int),
            Field::HedgeTo => self.hedge_to.map(FieldValue::HedgeTarget),
        }
    }

    /// Sets one field. A value whose variant does not fit the field is
    /// ignored (callers only pass values parsed for that field).
    pub(crate) fn set(&mut self, field: Field, value: FieldValue) {
        use FieldValue as V;
        match (field, value) {
            (Field::RetryAttempts, V::Int(v)) => self.retry_attempts = Some(v),
            (Field::CircuitBreakerThreshold, V::Int(v)) => self.circuit_breaker_threshold = Some(v),
            (Field::RecoveryTimeout, V::Int(v)) => self.recovery_timeout = Some(v),
            (Field::DefaultStrategy, V::Strategy(s)) => self.default_strategy = Some(s),
            (Field::OperationOverrides, V::Overrides(o)) => {
                for (op, s) in o.iter() {
                    self.operation_overrides.set(op, Some(s));
                }
            }
            (Field::ExponentialMultiplier, V::Float(v)) => self.exponential_multiplier = Some(v),
            (Field::ExponentialMin, V::Float(v)) => self.exponential_min = Some(v),
            (Field::ExponentialMax, V::Float(v)) => self.exponential_max = Some(v),
            (Field::JitterEnabled, V::Bool(v)) => self.jitter_enabled = Some(v),
            (Field::JitterMax, V::Float(v)) => self.jitter_max = Some(v),
            (Field::MaxDelaySeconds, V::Int(v)) => self.max_delay_seconds = Some(v),
            (Field::HalfOpenMaxCalls, V::Int(v)) => self.half_open_max_calls = Some(v),
            (Field::FailureRateThreshold, V::Float(v)) => self.failure_rate_threshold = Some(v),
            (Field::SlowCallDurationSeconds, V::Float(v)) => {
                self.slow_call_duration_seconds = Some(v)
            }
            (Field::SlowCallRateThreshold, V::Float(v)) => self.slow_call_rate_threshold = Some(v),
            (Field::MinimumCalls, V::Int(v)) => self.minimum_calls = Some(v),
            (Field::HedgeDelayMs, V::Int(v)) => self.hedge_delay_ms = Some(v),
            (Field::MaxHedgedAttempts, V::Int(v)) => self.max_hedged_attempts = Some(v),
            (Field::HedgeTo, V::HedgeTarget(t)) => self.hedge_to = Some(t),
            _ => {}
        }
    }

    /// Unsets one field (all overrides for `operation_overrides`).
    pub(crate) fn clear(&mut self, field: Field) {
        match field {
            Field::RetryAttempts => self.retry_attempts = None,
            Field::CircuitBreakerThreshold => self.circuit_breaker_threshold = None,
            Field::RecoveryTimeout => self.recovery_timeout = None,
            Field::DefaultStrategy => self.default_strategy = None,
            Field::OperationOverrides => self.operation_overrides = OperationOverrides::default(),
            Field::ExponentialMultiplier => self.exponential_multiplier = None,
            Field::ExponentialMin => self.exponential_min = None,
            Field::ExponentialMax => self.exponential_max = None,
            Field::JitterEnabled => self.jitter_enabled = None,
            Field::JitterMax => self.jitter_max = None,
            Field::MaxDelaySeconds => self.max_delay_seconds = None,
            Field::HalfOpenMaxCalls => self.half_open_max_calls = None,
            Field::FailureRateThreshold => self.failure_rate_threshold = None,
            Field::SlowCallDurationSeconds => self.slow_call_duration_seconds = None,
            Field::SlowCallRateThreshold => self.slow_call_rate_threshold = None,
            Field::MinimumCalls => self.minimum_calls = None,
            Field::HedgeDelayMs => self.hedge_delay_ms = None,
            Field::MaxHedgedAttempts => self.max_hedged_attempts = None,
            Field::HedgeTo => self.hedge_to = None,
        }
    }

    /// `self` with every field set in `top` replaced by `top`'s value
    /// (overrides merge per operation). Used to stack legacy vars on custom.
    pub(crate) fn merged_with(&self, top: &CustomConfig) -> CustomConfig {
        let mut out = *self;
        for field in Field::ALL {
            if let Some(v) = top.get(field) {
                out.set(field, v);
            }
        }
        out
    }
}

impl CustomConfig {
    /// The JSON Schema of a custom-configuration document, built from the
    /// field table above so the OpenAPI documents and the validator cannot
    /// disagree: a non-empty object of the known fields only, each with its
    /// type and inclusive range.
    pub fn json_schema() -> utoipa::openapi::schema::Schema {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let strategy = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(STRATEGY_LIST.split(" | ")))
        };
        let mut doc = ObjectBuilder::new()
            .schema_type(Type::Object)
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some(
                "A custom resilience configuration (`RESILIENCE_CUSTOM_CONFIG`): a non-empty \
                 object of these fields only; each set field replaces that policy field for \
                 every operation.",
            ));
        for field in Field::ALL {
            let schema = match field.kind() {
                Kind::Int { min, max } => ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(min))
                    .maximum(Some(max)),
                Kind::Float { min, max } => ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(min))
                    .maximum(Some(max)),
                Kind::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
                Kind::Strategy => strategy(),
                Kind::HedgeTarget => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(HEDGE_TARGET_LIST.split(" | "))),
                Kind::Overrides => {
                    let mut o = ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
                    for op in Operation::ALL {
                        o = o.property(op.as_str(), strategy());
                    }
                    o
                }
            };
            doc = doc.property(field.name(), schema);
        }
        doc.build().into()
    }
}

/// The schema of the custom-configuration document in both OpenAPI
/// documents: [`CustomConfig::json_schema`], built from the field table the
/// validator uses.
impl utoipa::PartialSchema for CustomConfig {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        CustomConfig::json_schema().into()
    }
}

impl utoipa::ToSchema for CustomConfig {}

impl Serialize for CustomConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// A JSON value for an error message, shortened so a huge input is never
/// echoed whole.
pub(crate) fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 64 {
        let short: String = text.chars().take(61).collect();
        format!("{short}...")
    } else {
        text
    }
}

/// Range-checks a number for an integer or float field. `shown` is how the
/// value appears in the message (JSON text or the raw env string).
pub(crate) fn check_range(field: Field, x: f64, shown: &str) -> Result<FieldValue, String> {
    let name = field.name();
    let kind = field.kind();
    let allowed = kind.allowed();
    let (min, max) = match kind {
        Kind::Int { min, max } => (f64::from(min), f64::from(max)),
        Kind::Float { min, max } => (min, max),
        _ => {
            return Err(format!(
                "Field '{name}': {shown} is not of type {}",
                kind.type_name()
            ));
        }
    };
    if !x.is_finite() {
        return Err(format!(
            "Field '{name}': {shown} is not a finite number (allowed {allowed})"
        ));
    }
    if x < min {
        return Err(format!(
            "Field '{name}': {shown} is less than the minimum of {} (allowed {allowed})",
            num(min, kind)
        ));
    }
    if x > max {
        return Err(format!(
            "Field '{name}': {shown} is greater than the maximum of {} (allowed {allowed})",
            num(max, kind)
        ));
    }
    match kind {
        Kind::Int { .. } if x.fract() != 0.0 => Err(format!(
            "Field '{name}': {shown} is not of type integer (allowed {allowed})"
        )),
        // In range and integral, so the cast is exact.
        Kind::Int { .. } => Ok(FieldValue::Int(x as u32)),
        _ => Ok(FieldValue::Float(x)),
    }
}

/// A bound as the messages show it: `10` for integers, `5.0` for floats.
fn num(x: f64, kind: Kind) -> String {
    match kind {
        Kind::Int { .. } => format!("{x:.0}"),
        _ => format!("{x:?}"),
    }
}

/// Parses one JSON field value. Errors name the field, the value and the
/// allowed range; `operation_overrides` may yield several.
pub(crate) fn parse_field(field: Field, value: &Value) -> Result<FieldValue, Vec<String>> {
    let name = field.name();
    let kind = field.kind();
    let wrong_type = || {
        vec![format!(
            "Field '{name}': {} is not of type {} (allowed {})",
            show(value),
            kind.type_name(),
            kind.allowed()
        )]
    };
    match kind {
        Kind::Int { .. } | Kind::Float { .. } => match value.as_f64() {
            // Reject JSON booleans/strings; accept 5.0 as the integer 5 like
            // JSON Schema draft-06+ does.
            Some(x) if value.is_number() => {
                check_range(field, x, &show(value)).map_err(|e| vec![e])
            }
            _ => Err(wrong_type()),
        },
        Kind::Bool => value.as_bool().map(FieldValue::Bool).ok_or_else(wrong_type),
        Kind::Strategy => match value.as_str() {
            Some(s) => parse_strategy(name, s, value)
                .map(FieldValue::Strategy)
                .map_err(|e| vec![e]),
            None => Err(wrong_type()),
        },
        Kind::HedgeTarget => match value.as_str() {
            Some(s) => s
                .parse::<HedgeTarget>()
                .map(FieldValue::HedgeTarget)
                .map_err(|()| {
                    vec![format!(
                        "Field '{name}': {} is not one of {HEDGE_TARGET_LIST}",
                        show(value)
                    )]
                }),
            None => Err(wrong_type()),
        },
        Kind::Overrides => {
            let Some(map) = value.as_object() else {
                return Err(wrong_type());
            };
            let mut overrides = OperationOverrides::default();
            let mut errors = Vec::new();
            for (key, v) in map {
                let Ok(op) = key.parse::<Operation>() else {
                    errors.push(format!(
                        "Invalid operation '{key}' in operation_overrides (allowed: {})",
                        OPERATION_LIST
                    ));
                    continue;
                };
                let path = format!("operation_overrides.{key}");
                match v.as_str() {
                    Some(s) => match parse_strategy(&path, s, v) {
                        Ok(strategy) => overrides.set(op, Some(strategy)),
                        Err(e) => errors.push(e),
                    },
                    None => errors.push(format!(
                        "Field '{path}': {} is not of type string (allowed {STRATEGY_LIST})",
                        show(v)
                    )),
                }
            }
            if errors.is_empty() {
                Ok(FieldValue::Overrides(overrides))
            } else {
                Err(errors)
            }
        }
    }
}

/// A strategy name, exactly as the schema's enum spells it.
fn parse_strategy(path: &str, s: &str, value: &Value) -> Result<Strategy, String> {
    s.parse::<Strategy>().map_err(|_| {
        format!(
            "Field '{path}': {} is not one of {STRATEGY_LIST}",
            show(value)
        )
    })
}
