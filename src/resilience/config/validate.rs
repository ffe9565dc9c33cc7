//! Validation of a custom configuration document (`RESILIENCE_CUSTOM_CONFIG`,
//! `keel config validate`, and later the operator API's validate endpoint).
//!
//! The rules are those of the reference project's JSON schema (`{}` and
//! unknown fields are errors, every field has a type and an inclusive range)
//! plus keel's extension fields. Every error names the field, the offending
//! value and the allowed range. Warnings flag legal but doubtful values;
//! suggestions point to simpler equivalents. Validation never fails silently:
//! a document is either fully accepted or rejected with all of its errors.

use super::custom::{Field, parse_field};
use super::{CustomConfig, migrate};
use crate::env::ConfigError;
use serde::Serialize;
use serde_json::Value;

/// The outcome of validating a custom configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// True exactly when `errors` is empty.
    pub is_valid: bool,
    /// Problems that make the document unusable; each names the field, the
    /// value and the allowed range.
    pub errors: Vec<String>,
    /// Legal but doubtful settings (the document is still accepted).
    pub warnings: Vec<String>,
    /// Hints, e.g. the closest preset or a likely misspelt field.
    pub suggestions: Vec<String>,
}

/// A report plus the configuration it describes (meaningful when valid).
pub(crate) struct Checked {
    pub(crate) config: CustomConfig,
    pub(crate) report: ValidationReport,
}

impl Checked {
    /// The configuration, or the errors as a `RESILIENCE_CUSTOM_CONFIG` error.
    pub(crate) fn into_result(self) -> Result<CustomConfig, ConfigError> {
        if self.report.is_valid {
            Ok(self.config)
        } else {
            Err(ConfigError::InvalidDocument {
                name: super::CUSTOM_CONFIG_VAR,
                problems: self.report.errors,
            })
        }
    }
}

/// Validates a custom configuration given as JSON text. Bad JSON is an error
/// that carries the parse position (line and column).
pub fn validate_custom_config(json: &str) -> ValidationReport {
    with_preset_suggestion(check_json(json))
}

/// Validates an already-parsed custom configuration (for the HTTP API).
pub fn validate_custom_value(value: &Value) -> ValidationReport {
    with_preset_suggestion(check_value(value))
}

/// Adds the closest-preset hint to a valid report. Kept out of
/// [`check_value`] because that also parses the embedded presets, which must
/// not consult the preset catalogue while it is being built.
fn with_preset_suggestion(checked: Checked) -> ValidationReport {
    let mut report = checked.report;
    if report.is_valid {
        suggest_preset(&checked.config, &mut report);
    }
    report
}

/// [`validate_custom_config`] keeping the parsed configuration.
pub(crate) fn check_json(json: &str) -> Checked {
    match serde_json::from_str::<Value>(json) {
        Ok(value) => check_value(&value),
        Err(e) => Checked {
            config: CustomConfig::default(),
            report: ValidationReport {
                is_valid: false,
                errors: vec![format!("Invalid JSON: {e}")],
                ..ValidationReport::default()
            },
        },
    }
}

/// [`validate_custom_value`] keeping the parsed configuration.
pub(crate) fn check_value(value: &Value) -> Checked {
    let mut config = CustomConfig::default();
    let mut report = ValidationReport::default();
    let Some(object) = value.as_object() else {
        report.errors.push(format!(
            "Custom configuration must be a JSON object, got {}",
            json_type(value)
        ));
        return Checked { config, report };
    };
    if object.is_empty() {
        report.errors.push(format!(
            "Custom configuration must set at least one field (allowed: {})",
            Field::list()
        ));
        return Checked { config, report };
    }
    for (key, v) in object {
        let Some(field) = Field::from_name(key) else {
            report.errors.push(format!(
                "Unknown field '{key}' (allowed: {})",
                Field::list()
            ));
            if let Some(near) = closest_field(key) {
                report.suggestions.push(format!(
                    "Did you mean '{}' instead of '{key}'?",
                    near.name()
                ));
            }
            continue;
        };
        match parse_field(field, v) {
            Ok(parsed) => config.set(field, parsed),
            Err(errors) => report.errors.extend(errors),
        }
    }
    cross_field_checks(&config, &mut report);
    if object.len() == 1 && object.contains_key("operation_overrides") && config.is_empty() {
        report
            .warnings
            .push("operation_overrides is empty: this configuration changes nothing".to_string());
    }
    report.is_valid = report.errors.is_empty();
    Checked { config, report }
}

/// Rules that involve more than one field of the document. (Rules that need
/// the preset, like exponential_min < exponential_max when only one of them
/// is set here, are checked by resolution.)
fn cross_field_checks(c: &CustomConfig, report: &mut ValidationReport) {
    if let (Some(min), Some(max)) = (c.exponential_min, c.exponential_max)
        && min >= max
    {
        report.errors.push(format!(
            "exponential_min must be less than exponential_max (exponential_min {min:?} >= exponential_max {max:?})"
        ));
    }
    // The slow-call rule needs both halves; one alone would be silently inert.
    match (c.slow_call_duration_seconds, c.slow_call_rate_threshold) {
        (Some(d), None) => report.errors.push(format!(
            "slow_call_duration_seconds ({d:?}) requires slow_call_rate_threshold (allowed 0.05-1.0): the slow-call rule needs both"
        )),
        (None, Some(r)) => report.errors.push(format!(
            "slow_call_rate_threshold ({r:?}) requires slow_call_duration_seconds (allowed 1.0-600.0): the slow-call rule needs both"
        )),
        _ => {}
    }
    if let (Some(delay), Some(attempts)) = (c.max_delay_seconds, c.retry_attempts)
        && delay < 2 * attempts
    {
        report.warnings.push(format!(
            "max_delay_seconds ({delay}s) might be too short for {attempts} retry attempts (estimated minimum: {}s)",
            2 * attempts
        ));
    }
    if let Some(t) = c.circuit_breaker_threshold
        && t < 3
    {
        report.warnings.push(format!(
            "circuit_breaker_threshold {t} is low: the breaker may open on brief transient failures (3 or more is usual)"
        ));
    }
    if let Some(n) = c.retry_attempts
        && n > 7
    {
        report.warnings.push(format!(
            "retry_attempts {n} is high: every retry adds latency and upstream load (7 or fewer is usual)"
        ));
    }
    if c.jitter_enabled == Some(false) && c.jitter_max.is_some() {
        report
            .warnings
            .push("jitter_max has no effect while jitter_enabled is false".to_string());
    }
    if c.minimum_calls.is_some()
        && c.failure_rate_threshold.is_none()
        && c.slow_call_rate_threshold.is_none()
    {
        report.warnings.push(
            "minimum_calls has no effect without failure_rate_threshold or slow_call_rate_threshold"
                .to_string(),
        );
    }
    if (c.max_hedged_attempts.is_some() || c.hedge_to.is_some())
        && c.hedge_delay_ms.unwrap_or(0) == 0
    {
        report.warnings.push(
            "max_hedged_attempts and hedge_to have no effect without hedge_delay_ms above 0 (hedging is off)"
                .to_string(),
        );
    }
    if c.hedge_delay_ms.is_some_and(|d| d > 0) && c.max_hedged_attempts == Some(1) {
        report.warnings.push(
            "hedge_delay_ms has no effect with max_hedged_attempts 1 (one call per attempt: no hedge)"
                .to_string(),
        );
    }
}

/// When the document restates most of a preset's core settings (two or
/// more of them, similarity ≥ 0.9), suggests that preset instead. Looser
/// matches are not worth a hint: a small overlay is already simple.
fn suggest_preset(c: &CustomConfig, report: &mut ValidationReport) {
    let core_fields = [
        c.retry_attempts.is_some(),
        c.circuit_breaker_threshold.is_some(),
        c.recovery_timeout.is_some(),
        c.default_strategy.is_some(),
        !c.operation_overrides.is_empty(),
    ];
    if core_fields.into_iter().filter(|set| *set).count() < 2 {
        return;
    }
    let Some((name, score)) = migrate::best_preset(c) else {
        return;
    };
    if score >= 0.9 {
        report.suggestions.push(format!(
            "Closest preset: {name} (similarity {score:.2}); RESILIENCE_PRESET={name} with only the fields that differ may express this more simply"
        ));
    }
}

/// The JSON type of a value, for "must be an object" messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The field a misspelt key most likely meant (edit distance ≤ 3, or the
/// legacy env-var spelling such as `RETRY_MAX_ATTEMPTS`).
fn closest_field(key: &str) -> Option<Field> {
    let lower = key.to_ascii_lowercase();
    if let Some((_, field)) = super::legacy::LEGACY_FIELD_VARS
        .iter()
        .find(|(var, _)| var.eq_ignore_ascii_case(key))
    {
        return Some(*field);
    }
    Field::ALL
        .into_iter()
        .map(|f| (f, edit_distance(&lower, f.name())))
        .filter(|(_, d)| *d <= 3)
        .min_by_key(|(_, d)| *d)
        .map(|(f, _)| f)
}

/// Levenshtein distance over bytes (keys are ASCII; others just score high).
/// Also suggests misspelt option names in the public API.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(json: &str) -> Vec<String> {
        let r = validate_custom_config(json);
        assert!(!r.is_valid, "expected invalid: {json}");
        r.errors
    }

    fn one_error_naming(json: &str, needle: &str) -> String {
        let errs = errors(json);
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{json}: no error mentions {needle:?}: {errs:?}"
        );
        errs.join("\n")
    }

    #[test]
    fn every_range_is_enforced_at_both_ends() {
        let cases = [
            ("retry_attempts", "0", "11"),
            ("circuit_breaker_threshold", "0", "21"),
            ("recovery_timeout", "9", "301"),
            ("exponential_multiplier", "0.09", "5.1"),
            ("exponential_min", "0.4", "10.5"),
            ("exponential_max", "4.9", "121"),
            ("jitter_max", "0.05", "10.1"),
            ("max_delay_seconds", "4", "601"),
            ("half_open_max_calls", "0", "11"),
            ("failure_rate_threshold", "0.01", "1.5"),
            ("slow_call_rate_threshold", "0.01", "1.5"),
            ("minimum_calls", "0", "1001"),
        ];
        for (field, low, high) in cases {
            let e = one_error_naming(&format!("{{\"{field}\": {low}}}"), field);
            assert!(e.contains("less than the minimum"), "{e}");
            assert!(e.contains(low), "{e}");
            let e = one_error_naming(&format!("{{\"{field}\": {high}}}"), field);
            assert!(e.contains("greater than the maximum"), "{e}");
        }
        let e = one_error_naming(
            r#"{"slow_call_duration_seconds": 0.5, "slow_call_rate_threshold": 0.5}"#,
            "slow_call_duration_seconds",
        );
        assert!(e.contains("less than the minimum of 1.0"), "{e}");
    }

    #[test]
    fn error_text_names_field_value_and_range() {
        let e = errors(r#"{"retry_attempts": 15}"#);
        assert_eq!(
            e,
            vec![
                "Field 'retry_attempts': 15 is greater than the maximum of 10 (allowed 1-10)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        let r = validate_custom_config(
            r#"{"retry_attempts": 10, "circuit_breaker_threshold": 1, "recovery_timeout": 300,
                "exponential_min": 0.5, "exponential_max": 120, "jitter_max": 10,
                "max_delay_seconds": 600, "exponential_multiplier": 0.1}"#,
        );
        assert!(r.is_valid, "{r:?}");
    }

    #[test]
    fn structural_errors() {
        one_error_naming("{}", "at least one field");
        one_error_naming(
            r#"{"retry_attempts": 3, "bogus": 1}"#,
            "Unknown field 'bogus'",
        );
        one_error_naming("[1, 2]", "must be a JSON object, got array");
        one_error_naming("42", "got number");
        let e = one_error_naming(r#"{"retry_attempts": "#, "Invalid JSON");
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn wrong_types_name_field_and_expected_type() {
        one_error_naming(
            r#"{"retry_attempts": "5"}"#,
            "'retry_attempts': \"5\" is not of type integer",
        );
        one_error_naming(
            r#"{"retry_attempts": 2.5}"#,
            "'retry_attempts': 2.5 is not of type integer",
        );
        one_error_naming(
            r#"{"jitter_enabled": "yes"}"#,
            "'jitter_enabled': \"yes\" is not of type boolean",
        );
        one_error_naming(
            r#"{"jitter_max": true}"#,
            "'jitter_max': true is not of type number",
        );
        one_error_naming(
            r#"{"default_strategy": 3}"#,
            "'default_strategy': 3 is not of type string",
        );
        one_error_naming(
            r#"{"operation_overrides": ["qa"]}"#,
            "'operation_overrides'",
        );
        one_error_naming(
            r#"{"operation_overrides": {"qa": 1}}"#,
            "'operation_overrides.qa'",
        );
        // 5.0 is an integer in JSON Schema terms.
        assert!(validate_custom_config(r#"{"retry_attempts": 5.0}"#).is_valid);
    }

    #[test]
    fn enums_and_operations() {
        one_error_naming(
            r#"{"default_strategy": "fast"}"#,
            "'default_strategy': \"fast\" is not one of aggressive | balanced | conservative | critical",
        );
        one_error_naming(
            r#"{"operation_overrides": {"translate": "balanced"}}"#,
            "Invalid operation 'translate' in operation_overrides",
        );
        one_error_naming(
            r#"{"operation_overrides": {"qa": "ultra"}}"#,
            "'operation_overrides.qa': \"ultra\" is not one of",
        );
        // critical is a real strategy (the reference's Settings rejected it).
        assert!(validate_custom_config(r#"{"default_strategy": "critical"}"#).is_valid);
    }

    #[test]
    fn cross_field_rules() {
        one_error_naming(
            r#"{"exponential_min": 8, "exponential_max": 8}"#,
            "exponential_min must be less than exponential_max",
        );
        one_error_naming(
            r#"{"slow_call_rate_threshold": 0.5}"#,
            "requires slow_call_duration_seconds",
        );
        one_error_naming(
            r#"{"slow_call_duration_seconds": 5}"#,
            "requires slow_call_rate_threshold",
        );
        let r = validate_custom_config(r#"{"retry_attempts": 5, "max_delay_seconds": 8}"#);
        assert!(r.is_valid);
        assert_eq!(
            r.warnings,
            vec![
                "max_delay_seconds (8s) might be too short for 5 retry attempts (estimated minimum: 10s)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn warnings_and_suggestions() {
        let r = validate_custom_config(r#"{"retry_attempts": 8, "circuit_breaker_threshold": 2}"#);
        assert!(r.is_valid);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("retry_attempts 8 is high"))
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("circuit_breaker_threshold 2 is low"))
        );
        let r = validate_custom_config(
            r#"{"retry_attempts": 5, "circuit_breaker_threshold": 10, "recovery_timeout": 120}"#,
        );
        assert!(
            r.suggestions
                .iter()
                .any(|s| s.contains("Closest preset: production")),
            "{r:?}"
        );
        let r = validate_custom_config(r#"{"hedge_to": "next"}"#);
        assert!(r.is_valid);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("without hedge_delay_ms")),
            "{r:?}"
        );
        let r = validate_custom_config(r#"{"hedge_delay_ms": 200, "max_hedged_attempts": 1}"#);
        assert!(r.warnings.iter().any(|w| w.contains("no hedge")), "{r:?}");
        let r = validate_custom_config(r#"{"hedge_delay_ms": 200}"#);
        assert!(!r.warnings.iter().any(|w| w.contains("hedge")), "{r:?}");
        let r = validate_custom_config(r#"{"retry_attempt": 5}"#);
        assert!(
            r.suggestions.iter().any(|s| s.contains("'retry_attempts'")),
            "{r:?}"
        );
        let r = validate_custom_config(r#"{"RETRY_MAX_ATTEMPTS": 5}"#);
        assert!(
            r.suggestions.iter().any(|s| s.contains("'retry_attempts'")),
            "{r:?}"
        );
    }

    #[test]
    fn all_errors_are_reported_together() {
        let r =
            validate_custom_config(r#"{"retry_attempts": 0, "recovery_timeout": 1000, "x": 1}"#);
        assert_eq!(r.errors.len(), 3, "{r:?}");
    }

    #[test]
    fn value_entry_point_matches_text_entry_point() {
        let v = json!({"retry_attempts": 15});
        assert_eq!(
            validate_custom_value(&v),
            validate_custom_config(&v.to_string())
        );
    }

    #[test]
    fn huge_values_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let e = errors(&format!("{{\"default_strategy\": \"{long}\"}}"));
        assert!(e[0].len() < 200, "{}", e[0]);
    }
}
