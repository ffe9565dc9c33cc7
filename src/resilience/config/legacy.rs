//! The reference project's legacy resilience environment variables, mapped to
//! custom-configuration fields (the variable names its deployments use).
//!
//! keel honours them as the top layer of the configuration (defaults < preset
//! < custom < legacy) so an old deployment keeps its behaviour, and `keel
//! config migrate` turns them into a preset plus a custom document. Values are
//! checked against the same ranges as the custom fields. Reading reports every
//! bad value; `load` turns the first into a start-up error (never a silent
//! skip), `migrate` turns them into warnings.

use super::custom::{Field, FieldValue, Kind, STRATEGY_LIST, check_range};
use super::{CustomConfig, Strategy, op_index};
use crate::env::{ConfigError, EnvSource, bool_value};
use crate::job::Operation;

/// Legacy variable → custom field, in the order the reference lists them.
pub(crate) const LEGACY_FIELD_VARS: [(&str, Field); 10] = [
    ("RETRY_MAX_ATTEMPTS", Field::RetryAttempts),
    (
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        Field::CircuitBreakerThreshold,
    ),
    ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", Field::RecoveryTimeout),
    ("DEFAULT_RESILIENCE_STRATEGY", Field::DefaultStrategy),
    ("RETRY_MAX_DELAY", Field::MaxDelaySeconds),
    ("RETRY_EXPONENTIAL_MULTIPLIER", Field::ExponentialMultiplier),
    ("RETRY_EXPONENTIAL_MIN", Field::ExponentialMin),
    ("RETRY_EXPONENTIAL_MAX", Field::ExponentialMax),
    ("RETRY_JITTER_ENABLED", Field::JitterEnabled),
    ("RETRY_JITTER_MAX", Field::JitterMax),
];

/// Legacy per-operation strategy variable → `operation_overrides.<op>`.
pub(crate) const LEGACY_OP_VARS: [(&str, Operation); 5] = [
    ("SUMMARIZE_RESILIENCE_STRATEGY", Operation::Summarize),
    ("SENTIMENT_RESILIENCE_STRATEGY", Operation::Sentiment),
    ("KEY_POINTS_RESILIENCE_STRATEGY", Operation::KeyPoints),
    ("QUESTIONS_RESILIENCE_STRATEGY", Operation::Questions),
    ("QA_RESILIENCE_STRATEGY", Operation::Qa),
];

/// The legacy variables found in an environment, as a custom-config layer
/// that remembers which variable set each field (for provenance).
#[derive(Debug, Clone, Default)]
pub(crate) struct LegacyLayer {
    /// The valid values, as custom-config fields.
    pub(crate) config: CustomConfig,
    /// Which variable set each field.
    field_vars: Vec<(Field, &'static str)>,
    /// Which variable set each operation's override, by operation index.
    op_vars: [Option<&'static str>; 5],
    /// Names of every legacy variable that was set (valid or not), in table
    /// order.
    pub(crate) seen: Vec<String>,
}

impl LegacyLayer {
    /// The variable that set `field`, if any.
    pub(crate) fn var_for(&self, field: Field) -> Option<&'static str> {
        self.field_vars
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| *v)
    }

    /// The variable that set `op`'s strategy, if any.
    pub(crate) fn op_var(&self, op: Operation) -> Option<&'static str> {
        self.op_vars[op_index(op)]
    }
}

/// Reads every legacy variable. Invalid values are left out of the layer
/// and returned as errors (one per variable, naming it, its value and the
/// allowed range), so the caller decides between failing and warning.
pub(crate) fn read(env: &dyn EnvSource) -> (LegacyLayer, Vec<ConfigError>) {
    let mut layer = LegacyLayer::default();
    let mut errors = Vec::new();
    for (var, field) in LEGACY_FIELD_VARS {
        let Some(raw) = env.get(var) else { continue };
        layer.seen.push(var.to_string());
        match parse(field, &raw) {
            Ok(value) => {
                layer.config.set(field, value);
                layer.field_vars.push((field, var));
            }
            Err(allowed) => errors.push(invalid(var, &raw, allowed)),
        }
    }
    for (var, op) in LEGACY_OP_VARS {
        let Some(raw) = env.get(var) else { continue };
        layer.seen.push(var.to_string());
        match raw.trim().to_ascii_lowercase().parse::<Strategy>() {
            Ok(strategy) => {
                layer.config.operation_overrides.set(op, Some(strategy));
                layer.op_vars[op_index(op)] = Some(var);
            }
            Err(_) => errors.push(invalid(
                var,
                &raw,
                format!("{STRATEGY_LIST} (operation_overrides.{op})"),
            )),
        }
    }
    (layer, errors)
}

fn invalid(var: &'static str, raw: &str, allowed: String) -> ConfigError {
    ConfigError::invalid(var, raw, allowed)
}

/// Parses one legacy value for `field`; the error is the allowed set in
/// words, e.g. `integer 1-10 (retry_attempts)`.
fn parse(field: Field, raw: &str) -> Result<FieldValue, String> {
    let kind = field.kind();
    let text = raw.trim();
    let allowed = || match kind {
        Kind::Int { .. } => format!("integer {} ({})", kind.allowed(), field.name()),
        Kind::Float { .. } => format!("number {} ({})", kind.allowed(), field.name()),
        Kind::Bool => format!(
            "true | false | 1 | 0 | yes | no | on | off ({})",
            field.name()
        ),
        _ => format!("{} ({})", kind.allowed(), field.name()),
    };
    match kind {
        Kind::Int { .. } | Kind::Float { .. } => {
            let x: f64 = text.parse().map_err(|_| allowed())?;
            check_range(field, x, text).map_err(|_| allowed())
        }
        // The reference accepted true/1/yes (and on in migrate); keel also
        // accepts the matching negatives and rejects anything else rather than
        // reading a typo as false.
        Kind::Bool => bool_value(text).map(FieldValue::Bool).ok_or_else(allowed),
        Kind::Strategy => text
            .to_ascii_lowercase()
            .parse::<Strategy>()
            .map(FieldValue::Strategy)
            .map_err(|_| allowed()),
        Kind::HedgeTarget => text
            .to_ascii_lowercase()
            .parse::<super::HedgeTarget>()
            .map(FieldValue::HedgeTarget)
            .map_err(|()| allowed()),
        Kind::Overrides => Err(allowed()),
    }
}
