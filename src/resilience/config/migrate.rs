//! `keel config migrate`: turns the legacy resilience variables of the
//! reference project (`RETRY_*`, `CIRCUIT_BREAKER_*`, `*_RESILIENCE_STRATEGY`,
//! see `legacy.rs`) into a preset plus a minimal `RESILIENCE_CUSTOM_CONFIG`
//! that keeps **every operation's effective policy exactly as it is today**.
//!
//! "Today" is what the legacy deployment runs: its `RESILIENCE_PRESET`
//! (`simple` when unset) with its `RESILIENCE_CUSTOM_CONFIG` and the legacy
//! variables on top. Presets are tried best score first; the first whose
//! minimal document reproduces today's policies for all five operations is
//! recommended. The preset in force always qualifies (its document is the
//! legacy values), so a migration never changes behaviour; when a closer
//! preset would, the reasoning says which operations it would change.
//!
//! The score follows the reference's formula: each comparable
//! setting adds `weight · similarity` (retry .3, threshold .25, recovery .2,
//! default strategy .15, per-operation strategies .1; numeric similarity
//! `1 - |a-b| / max(a,b,1)`), normalised by the weights present; HIGH ≥ .9,
//! MEDIUM ≥ .7, else LOW; ties go to the earlier preset (simple, development,
//! production).
//!
//! The custom document is minimal *with respect to keel's resolution*: a
//! field is left out only when the recommended preset already resolves
//! every operation to the same policy without it. An existing valid
//! `RESILIENCE_CUSTOM_CONFIG` is folded in (legacy values win), because the
//! printed document replaces it.

use super::custom::Field;
use super::legacy::{self, LegacyLayer};
use super::{
    CUSTOM_CONFIG_VAR, CustomConfig, DEFAULT_PRESET, OperationPolicy, PRESET_VAR, Preset, Strategy,
    preset_ref, presets_ref, resolve_policies, validate_custom_value,
};
use crate::env::EnvSource;
use crate::job::Operation;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// A migration plan from legacy variables to a preset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Migration {
    /// The preset to set as `RESILIENCE_PRESET`.
    pub recommended_preset: String,
    /// `HIGH` (score ≥ .9), `MEDIUM` (≥ .7) or `LOW`.
    pub confidence: String,
    /// The compatibility score of the recommended preset, 0.0–1.0.
    pub score: f64,
    /// Why this preset, with every preset's score.
    pub reasoning: String,
    /// The `RESILIENCE_CUSTOM_CONFIG` to set, or `None` when the preset alone
    /// gives the same behaviour (then the variable should be unset).
    pub custom_config: Option<Value>,
    /// The legacy variables found (to unset), valid or not.
    pub legacy_vars: Vec<String>,
    /// Skipped invalid values and doubtful settings.
    pub warnings: Vec<String>,
    /// What to do, in order.
    pub steps: Vec<String>,
}

/// How [`render_migration`] writes the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationFormat {
    /// A bash script of `export` / `unset` lines.
    Bash,
    /// `.env` file lines.
    Env,
    /// `docker run -e` flags, Dockerfile `ENV` lines and a compose
    /// `environment:` block.
    Docker,
}

impl MigrationFormat {
    /// Every format, in the order help texts list them.
    pub const ALL: [MigrationFormat; 3] = [
        MigrationFormat::Bash,
        MigrationFormat::Env,
        MigrationFormat::Docker,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationFormat::Bash => "bash",
            MigrationFormat::Env => "env",
            MigrationFormat::Docker => "docker",
        }
    }
}

impl fmt::Display for MigrationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned for a format name other than bash, env or docker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format '{0}' (allowed: bash, env, docker)")]
pub struct UnknownMigrationFormat(pub String);

impl FromStr for MigrationFormat {
    type Err = UnknownMigrationFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        MigrationFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == lower)
            .ok_or_else(|| UnknownMigrationFormat(s.to_string()))
    }
}

/// Similarity of two numbers, 0.0–1.0 (the reference's formula).
fn similarity(a: f64, b: f64) -> f64 {
    1.0 - ((a - b).abs() / a.max(b).max(1.0)).min(1.0)
}

/// Each preset's compatibility score with `c`, in preset order, or `None`
/// when `c` sets none of the compared fields.
pub(crate) fn preset_scores(c: &CustomConfig) -> Option<Vec<(&'static Preset, f64)>> {
    let presets = presets_ref();
    let mut out = Vec::with_capacity(presets.len());
    for preset in presets {
        let mut score = 0.0;
        let mut total = 0.0;
        let numbers = [
            (c.retry_attempts, preset.retry_attempts, 0.3),
            (
                c.circuit_breaker_threshold,
                preset.circuit_breaker_threshold,
                0.25,
            ),
            (c.recovery_timeout, preset.recovery_timeout, 0.2),
        ];
        for (mine, theirs, weight) in numbers {
            if let Some(mine) = mine {
                score += weight * similarity(f64::from(mine), f64::from(theirs));
                total += weight;
            }
        }
        if let Some(strategy) = c.default_strategy {
            if strategy == preset.default_strategy {
                score += 0.15;
            }
            total += 0.15;
        }
        if !c.operation_overrides.is_empty() {
            // An operation matches when the preset runs it with the same
            // strategy, through an override or its default.
            let (matches, count) = c
                .operation_overrides
                .iter()
                .fold((0, 0), |(m, n), (op, s)| {
                    let theirs = preset
                        .operation_overrides
                        .get(op)
                        .unwrap_or(preset.default_strategy);
                    (m + usize::from(theirs == s), n + 1)
                });
            score += 0.1 * matches as f64 / count as f64;
            total += 0.1;
        }
        if total == 0.0 {
            return None;
        }
        // Rounded so float noise never moves a score across a threshold.
        out.push((preset, ((score / total) * 1e6).round() / 1e6));
    }
    Some(out)
}

/// The best-scoring preset for `c` (ties: the earlier preset), if any field
/// is comparable.
pub(crate) fn best_preset(c: &CustomConfig) -> Option<(&'static str, f64)> {
    let scores = preset_scores(c)?;
    let mut best: Option<(&'static str, f64)> = None;
    for (preset, score) in scores {
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((preset.name.as_str(), score));
        }
    }
    best
}

/// HIGH / MEDIUM / LOW for a score.
fn confidence(score: f64) -> &'static str {
    if score >= 0.9 {
        "HIGH"
    } else if score >= 0.7 {
        "MEDIUM"
    } else {
        "LOW"
    }
}

/// Analyses the legacy variables in `env` and plans the move to a preset.
///
/// With no (valid) legacy variable there is nothing to migrate: the plan
/// keeps the current `RESILIENCE_PRESET` (simple when unset) with HIGH
/// confidence. Invalid legacy values are skipped with a warning (start-up
/// would reject them).
pub fn migrate(env: &dyn EnvSource) -> Migration {
    let (legacy, problems) = legacy::read(env);
    let mut warnings: Vec<String> = problems.iter().map(|e| format!("Skipped {e}")).collect();
    let existing = match env.get(CUSTOM_CONFIG_VAR) {
        Some(text) => match CustomConfig::parse(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                warnings.push(format!("Ignored the current {e}"));
                None
            }
        },
        None => None,
    };
    let current_preset = env
        .get(PRESET_VAR)
        .and_then(|name| preset_ref(&name).ok().map(|p| p.name.as_str()));
    if legacy.config.is_empty() {
        return nothing_to_migrate(legacy, existing, current_preset, warnings);
    }

    let full = existing.unwrap_or_default().merged_with(&legacy.config);
    // What the deployment runs today: its preset with its custom document
    // and the legacy layer on top.
    let in_force = current_preset.unwrap_or(DEFAULT_PRESET);
    let today = preset_ref(in_force)
        .and_then(|p| resolve_policies(p, existing.as_ref(), &legacy))
        .map(|r| r.policies);
    let scores = preset_scores(&full).unwrap_or_default();
    let score_of = |name: &str| {
        scores
            .iter()
            .find(|(p, _)| p.name == name)
            .map_or(0.5, |(_, s)| *s)
    };
    // Best score first; the sort is stable, so ties keep preset order.
    let mut ranked: Vec<&'static Preset> = scores.iter().map(|(p, _)| *p).collect();
    ranked.sort_by(|a, b| score_of(&b.name).total_cmp(&score_of(&a.name)));
    if let Ok(p) = preset_ref(in_force)
        && !ranked.iter().any(|r| r.name == p.name)
    {
        ranked.push(p);
    }
    let exact = |preset: &'static Preset| -> Option<CustomConfig> {
        let today = today.as_ref().ok()?;
        let minimal = minimize(preset, &full).ok()?;
        (policies(preset, &minimal).ok()? == *today).then_some(minimal)
    };
    let chosen = ranked
        .iter()
        .find_map(|p| exact(p).map(|m| (p.name.as_str(), m)));
    let closest = ranked.first().map(|p| p.name.as_str());
    let score_list = scores
        .iter()
        .map(|(p, s)| format!("{} {s:.2}", p.name))
        .collect::<Vec<_>>()
        .join(", ");
    let (name, minimal, reasoning) = match chosen {
        Some((name, minimal)) => {
            let score = score_of(name);
            let mut why = format!(
                "'{name}' with the custom document keeps every operation's policy exactly as today (compatibility score {:.0}%{})",
                score * 100.0,
                if score_list.is_empty() {
                    String::new()
                } else {
                    format!("; {score_list}")
                }
            );
            if let Some(closer) = closest.filter(|c| *c != name) {
                let changes = today
                    .as_ref()
                    .ok()
                    .and_then(|t| changes_on(preset_ref(closer).ok()?, &full, t));
                why.push_str(&format!(
                    "; '{closer}' scores higher but would change {}",
                    changes.unwrap_or_else(|| "the resolved policies".to_string())
                ));
            }
            (name, minimal, why)
        }
        None => {
            // Only when today's configuration does not resolve (the
            // legacy values contradict the custom document): say so and
            // fall back to the closest preset with every legacy value.
            let name = closest.unwrap_or(in_force);
            if let Err(e) = &today {
                warnings.push(format!(
                    "The current configuration does not resolve ({e}); the plan cannot be checked against it"
                ));
            }
            let minimal = preset_ref(name)
                .ok()
                .and_then(|p| minimize(p, &full).ok())
                .unwrap_or(full);
            let why = format!(
                "'{name}' is the closest preset to the legacy settings (compatibility score {:.0}%; {score_list})",
                score_of(name) * 100.0
            );
            (name, minimal, why)
        }
    };
    let score = score_of(name);

    warnings.extend(doubtful_settings(&full));
    if existing.is_some() {
        warnings.push(format!(
            "The current {CUSTOM_CONFIG_VAR} was folded into the new one (legacy values win)"
        ));
    }
    let custom_config = (!minimal.is_empty()).then(|| minimal.to_value());
    if let Some(v) = &custom_config {
        let report = validate_custom_value(v);
        for e in report.errors {
            warnings.push(format!(
                "The migrated {CUSTOM_CONFIG_VAR} would be rejected: {e}"
            ));
        }
        for w in report.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }

    let mut steps = vec![
        format!("Set {PRESET_VAR}={name}"),
        format!("Unset the legacy variables: {}", legacy.seen.join(", ")),
    ];
    steps.push(match &custom_config {
        Some(v) => format!("Set {CUSTOM_CONFIG_VAR}={}", sh_quote(&canonical(v))),
        None => format!("Unset {CUSTOM_CONFIG_VAR}: preset '{name}' already gives these values"),
    });
    steps.push("Check the result with `keel config validate` before deploying".to_string());

    Migration {
        recommended_preset: name.to_string(),
        confidence: confidence(score).to_string(),
        score,
        reasoning,
        custom_config,
        legacy_vars: legacy.seen,
        warnings,
        steps,
    }
}

/// The plan when no valid legacy variable is set.
fn nothing_to_migrate(
    legacy: LegacyLayer,
    existing: Option<CustomConfig>,
    current_preset: Option<&'static str>,
    warnings: Vec<String>,
) -> Migration {
    let name = current_preset.unwrap_or("simple");
    let mut steps = vec![format!("Set {PRESET_VAR}={name}")];
    if !legacy.seen.is_empty() {
        steps.push(format!(
            "Unset the invalid legacy variables: {}",
            legacy.seen.join(", ")
        ));
    }
    steps.push("Nothing else to migrate: no legacy resilience variable is in use".to_string());
    Migration {
        recommended_preset: name.to_string(),
        confidence: "HIGH".to_string(),
        score: 1.0,
        reasoning: format!(
            "No legacy configuration detected; '{name}' needs no migration{}",
            if current_preset.is_some() {
                " (the current preset)"
            } else {
                " (the default preset, ideal for new setups)"
            }
        ),
        custom_config: existing.filter(|c| !c.is_empty()).map(|c| c.to_value()),
        legacy_vars: legacy.seen,
        warnings,
        steps,
    }
}

/// The reference's migration warnings for doubtful legacy values.
fn doubtful_settings(c: &CustomConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = c.retry_attempts.filter(|n| *n > 7) {
        out.push(format!(
            "High retry attempts ({n}) may cause significant latency"
        ));
    }
    if let Some(t) = c.circuit_breaker_threshold.filter(|t| *t < 3) {
        out.push(format!(
            "Low circuit breaker threshold ({t}) may open the breaker on brief failures"
        ));
    }
    if let (Some(n), Some(t)) = (c.retry_attempts, c.circuit_breaker_threshold)
        && n > t
    {
        out.push(
            "Retry attempts exceed the circuit breaker threshold: the breaker may open before the retries are used up"
                .to_string(),
        );
    }
    if c.default_strategy == Some(Strategy::Aggressive) {
        out.push("Aggressive default strategy: make sure it suits this environment".to_string());
    }
    out
}

/// What `preset` + the minimal document for `full` would change against
/// `today`, e.g. "summarize (deadline 30 s -> 120 s, recovery 60 s -> 120 s)";
/// `None` when it changes nothing or does not resolve.
fn changes_on(
    preset: &'static Preset,
    full: &CustomConfig,
    today: &[OperationPolicy; 5],
) -> Option<String> {
    let after = policies(preset, &minimize(preset, full).ok()?).ok()?;
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    let parts: Vec<String> = Operation::ALL
        .iter()
        .zip(today.iter().zip(after.iter()))
        .filter(|(_, (a, b))| a != b)
        .map(|(op, (a, b))| {
            let mut what = Vec::new();
            if a.strategy != b.strategy {
                what.push(format!("strategy {} -> {}", a.strategy, b.strategy));
            }
            if a.max_attempts != b.max_attempts {
                what.push(format!("attempts {} -> {}", a.max_attempts, b.max_attempts));
            }
            if a.max_delay != b.max_delay {
                what.push(format!(
                    "deadline {} -> {}",
                    secs(a.max_delay),
                    secs(b.max_delay)
                ));
            }
            if a.failure_threshold != b.failure_threshold {
                what.push(format!(
                    "threshold {} -> {}",
                    a.failure_threshold, b.failure_threshold
                ));
            }
            if a.recovery_timeout != b.recovery_timeout {
                what.push(format!(
                    "recovery {} -> {}",
                    secs(a.recovery_timeout),
                    secs(b.recovery_timeout)
                ));
            }
            if what.is_empty() {
                what.push("backoff".to_string());
            }
            format!("{} ({})", op.as_str(), what.join(", "))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The resolved policies of `preset` + `custom`.
fn policies(
    preset: &'static Preset,
    custom: &CustomConfig,
) -> Result<[OperationPolicy; 5], crate::env::ConfigError> {
    resolve_policies(preset, Some(custom), &LegacyLayer::default()).map(|r| r.policies)
}

/// Drops every field (and override entry) of `full` that `preset` already
/// implies, keeping the resolved policies identical.
fn minimize(
    preset: &'static Preset,
    full: &CustomConfig,
) -> Result<CustomConfig, crate::env::ConfigError> {
    let target = policies(preset, full)?;
    let mut minimal = *full;
    for field in Field::ALL {
        if field == Field::OperationOverrides || minimal.get(field).is_none() {
            continue;
        }
        let mut trial = minimal;
        trial.clear(field);
        if policies(preset, &trial).is_ok_and(|p| p == target) {
            minimal = trial;
        }
    }
    for op in Operation::ALL {
        if minimal.operation_overrides.get(op).is_none() {
            continue;
        }
        let mut trial = minimal;
        trial.operation_overrides.set(op, None);
        if policies(preset, &trial).is_ok_and(|p| p == target) {
            minimal = trial;
        }
    }
    Ok(minimal)
}

/// A custom document as compact JSON in schema order (stable whatever map
/// ordering `serde_json` was built with).
fn canonical(v: &Value) -> String {
    CustomConfig::from_value(v).map_or_else(|_| v.to_string(), |c| c.to_json_string())
}

/// Single-quotes a word for POSIX shells (and Dockerfile `ENV`, whose lexer
/// follows the same rules).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Single-quotes a YAML scalar.
fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Writes the plan as a bash script, `.env` lines or Docker snippets.
pub fn render_migration(m: &Migration, format: MigrationFormat) -> String {
    let preset = &m.recommended_preset;
    let custom = m.custom_config.as_ref().map(canonical);
    let mut out = vec![
        format!(
            "# keel resilience configuration, generated by `keel config migrate --format {format}`; review before use"
        ),
        format!(
            "# preset: {preset}, confidence: {} (score {:.2})",
            m.confidence, m.score
        ),
    ];
    out.push(format!("# why: {}", m.reasoning));
    for w in &m.warnings {
        out.push(format!("# warning: {w}"));
    }
    match format {
        MigrationFormat::Bash => {
            out.insert(0, "#!/usr/bin/env bash".to_string());
            out.push(format!("export {PRESET_VAR}={preset}"));
            out.push(match &custom {
                Some(json) => format!("export {CUSTOM_CONFIG_VAR}={}", sh_quote(json)),
                None => format!("unset {CUSTOM_CONFIG_VAR}"),
            });
            for var in &m.legacy_vars {
                out.push(format!("unset {var}"));
            }
        }
        MigrationFormat::Env => {
            out.push(format!("{PRESET_VAR}={preset}"));
            out.push(match &custom {
                Some(json) => format!("{CUSTOM_CONFIG_VAR}={}", sh_quote(json)),
                None => format!("# {CUSTOM_CONFIG_VAR} is not needed (remove it if present)"),
            });
            if !m.legacy_vars.is_empty() {
                out.push("# remove these legacy variables from this file:".to_string());
                for var in &m.legacy_vars {
                    out.push(format!("# {var}"));
                }
            }
        }
        MigrationFormat::Docker => {
            if !m.legacy_vars.is_empty() {
                out.push(format!(
                    "# remove from the container environment: {}",
                    m.legacy_vars.join(", ")
                ));
            }
            out.push(String::new());
            out.push("# docker run flags:".to_string());
            match &custom {
                Some(json) => {
                    out.push(format!("-e {PRESET_VAR}={preset} \\"));
                    out.push(format!(
                        "-e {}",
                        sh_quote(&format!("{CUSTOM_CONFIG_VAR}={json}"))
                    ));
                }
                None => out.push(format!("-e {PRESET_VAR}={preset}")),
            }
            out.push(String::new());
            out.push("# Dockerfile:".to_string());
            out.push(format!("ENV {PRESET_VAR}={preset}"));
            if let Some(json) = &custom {
                out.push(format!("ENV {CUSTOM_CONFIG_VAR}={}", sh_quote(json)));
            }
            out.push(String::new());
            out.push("# docker-compose.yml (service environment):".to_string());
            out.push("environment:".to_string());
            out.push(format!("  - {PRESET_VAR}={preset}"));
            if let Some(json) = &custom {
                out.push(format!(
                    "  - {}",
                    yaml_quote(&format!("{CUSTOM_CONFIG_VAR}={json}"))
                ));
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use serde_json::json;

    #[test]
    fn no_legacy_vars_is_simple_high() {
        let m = migrate(&MapEnv::default());
        assert_eq!(m.recommended_preset, "simple");
        assert_eq!(m.confidence, "HIGH");
        assert_eq!(m.custom_config, None);
        assert!(m.legacy_vars.is_empty());
        assert!(m.warnings.is_empty());
        assert!(m.steps[0].contains("RESILIENCE_PRESET=simple"));
    }

    #[test]
    fn production_like_legacy_set() {
        let env = MapEnv::new(&[
            ("RESILIENCE_PRESET", "production"),
            ("RETRY_MAX_ATTEMPTS", "5"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "10"),
            ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "120"),
            ("DEFAULT_RESILIENCE_STRATEGY", "conservative"),
            ("QA_RESILIENCE_STRATEGY", "critical"),
            ("RETRY_MAX_DELAY", "90"),
        ]);
        let m = migrate(&env);
        assert_eq!(m.recommended_preset, "production");
        assert_eq!(m.confidence, "HIGH");
        assert_eq!(m.score, 1.0);
        // The legacy numbers act on every operation, while production's
        // overridden operations have their own rows, so they stay; the
        // default strategy and qa=critical are implied by the preset.
        assert_eq!(
            m.custom_config,
            Some(json!({
                "retry_attempts": 5, "circuit_breaker_threshold": 10,
                "recovery_timeout": 120, "max_delay_seconds": 90
            }))
        );
        assert_eq!(m.legacy_vars.len(), 6);
        assert_same_policies(&env, &m);
        assert!(
            m.steps
                .iter()
                .any(|s| s.contains("Unset the legacy variables"))
        );
    }

    /// Reads `KEY=VALUE` lines (single-quoted values unquoted) of the
    /// rendered `.env` plan, as a deployment would.
    fn env_of(text: &str) -> MapEnv {
        let pairs: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map_or(v.to_string(), |v| v.replace(r"'\''", "'"));
                (k.to_string(), v)
            })
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        MapEnv::new(&refs)
    }

    /// The effective policy of every operation is the same before (the
    /// legacy environment, through the real loader) and after (the rendered
    /// `.env` plan, through the real loader).
    fn assert_same_policies(legacy_env: &MapEnv, m: &Migration) {
        let before = crate::resilience::config::load(legacy_env).expect("the legacy env loads");
        let rendered = render_migration(m, MigrationFormat::Env);
        let after = crate::resilience::config::load(&env_of(&rendered))
            .unwrap_or_else(|e| panic!("the migrated env loads: {e}\n{rendered}"));
        assert_eq!(after.preset, m.recommended_preset, "{rendered}");
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(
                before.policies[i], after.policies[i],
                "{op:?} changes after migrating\n{rendered}\nreasoning: {}",
                m.reasoning
            );
        }
    }

    /// Issue example and every variable alone, with and without a preset
    /// or custom document in force: the migration never changes what any
    /// operation does.
    #[test]
    fn migration_preserves_every_operations_effective_policy() {
        let singles = [
            ("RETRY_MAX_ATTEMPTS", "4"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7"),
            ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "90"),
            ("DEFAULT_RESILIENCE_STRATEGY", "critical"),
            ("RETRY_MAX_DELAY", "45"),
            ("RETRY_EXPONENTIAL_MULTIPLIER", "2.0"),
            ("RETRY_EXPONENTIAL_MIN", "1.5"),
            ("RETRY_EXPONENTIAL_MAX", "20"),
            ("RETRY_JITTER_ENABLED", "false"),
            ("RETRY_JITTER_MAX", "3.5"),
            ("SUMMARIZE_RESILIENCE_STRATEGY", "aggressive"),
            ("QA_RESILIENCE_STRATEGY", "critical"),
        ];
        let mut cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![
                ("RETRY_MAX_ATTEMPTS", "4"),
                ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7"),
            ],
            vec![
                ("RETRY_MAX_ATTEMPTS", "2"),
                ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3"),
                ("DEFAULT_RESILIENCE_STRATEGY", "aggressive"),
                ("QA_RESILIENCE_STRATEGY", "balanced"),
                ("SUMMARIZE_RESILIENCE_STRATEGY", "critical"),
                ("RETRY_JITTER_ENABLED", "false"),
            ],
        ];
        cases.extend(singles.iter().map(|v| vec![*v]));
        let contexts: [&[(&str, &str)]; 4] = [
            &[],
            &[("RESILIENCE_PRESET", "production")],
            &[("RESILIENCE_PRESET", "development")],
            &[("RESILIENCE_CUSTOM_CONFIG", r#"{"recovery_timeout": 120}"#)],
        ];
        let mut checked = 0;
        for vars in &cases {
            for context in contexts {
                let all: Vec<(&str, &str)> = context.iter().chain(vars.iter()).copied().collect();
                let env = MapEnv::new(&all);
                let m = migrate(&env);
                assert_same_policies(&env, &m);
                checked += 1;
            }
        }
        assert_eq!(checked, cases.len() * contexts.len());
    }

    /// The issue's example: production scores higher, but it would change
    /// summarize, sentiment and qa; the plan keeps simple (in force) with a
    /// custom document and says what production would have changed.
    #[test]
    fn a_closer_preset_that_changes_behaviour_is_not_recommended() {
        let env = MapEnv::new(&[
            ("RETRY_MAX_ATTEMPTS", "4"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7"),
        ]);
        let m = migrate(&env);
        assert_eq!(m.recommended_preset, "simple", "{m:?}");
        assert_eq!(
            m.custom_config,
            Some(json!({"retry_attempts": 4, "circuit_breaker_threshold": 7}))
        );
        assert!(
            m.reasoning
                .contains("'production' scores higher but would change"),
            "{}",
            m.reasoning
        );
        assert!(m.reasoning.contains("deadline"), "{}", m.reasoning);
        assert_same_policies(&env, &m);
    }

    #[test]
    fn migrated_config_behaves_like_the_legacy_one() {
        let vars = [
            ("RETRY_MAX_ATTEMPTS", "2"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3"),
            ("DEFAULT_RESILIENCE_STRATEGY", "aggressive"),
            ("QA_RESILIENCE_STRATEGY", "balanced"),
            ("SUMMARIZE_RESILIENCE_STRATEGY", "critical"),
            ("RETRY_JITTER_ENABLED", "false"),
        ];
        let legacy_env = MapEnv::new(&vars);
        let m = migrate(&legacy_env);
        assert_same_policies(&legacy_env, &m);
        let v = m.custom_config.clone().expect("some");
        assert_eq!(
            v["operation_overrides"]["summarize"],
            json!("critical"),
            "{v}"
        );
        assert_eq!(v["jitter_enabled"], json!(false));
    }

    #[test]
    fn invalid_numbers_are_skipped_with_a_warning() {
        let env = MapEnv::new(&[
            ("RETRY_MAX_ATTEMPTS", "lots"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "99"),
            ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "30"),
        ]);
        let m = migrate(&env);
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("RETRY_MAX_ATTEMPTS=\"lots\"")),
            "{m:?}"
        );
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("CIRCUIT_BREAKER_FAILURE_THRESHOLD=\"99\""))
        );
        assert_eq!(m.legacy_vars.len(), 3);
        assert_same_policies(
            &MapEnv::new(&[("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "30")]),
            &m,
        );
    }

    #[test]
    fn scores_and_confidence_levels() {
        assert_eq!(similarity(3.0, 3.0), 1.0);
        assert_eq!(similarity(5.0, 10.0), 0.5);
        assert_eq!(confidence(0.9), "HIGH");
        assert_eq!(confidence(0.7), "MEDIUM");
        assert_eq!(confidence(0.69), "LOW");
        let c = CustomConfig {
            retry_attempts: Some(4),
            ..CustomConfig::default()
        };
        // 4 vs 3 (simple) = .75, vs 5 (production) = .8.
        assert_eq!(best_preset(&c), Some(("production", 0.8)));
        assert_eq!(best_preset(&CustomConfig::default()), None);
        // Closest by score is production, but only simple (in force)
        // keeps the policies: 4 vs 3 = .75, MEDIUM.
        let m = migrate(&MapEnv::new(&[("RETRY_MAX_ATTEMPTS", "4")]));
        assert_eq!(
            (m.recommended_preset.as_str(), m.confidence.as_str()),
            ("simple", "MEDIUM")
        );
    }

    #[test]
    fn only_uncompared_fields_default_to_simple() {
        let m = migrate(&MapEnv::new(&[("RETRY_JITTER_MAX", "3.5")]));
        assert_eq!(m.recommended_preset, "simple");
        assert_eq!(m.confidence, "LOW");
        assert_eq!(m.custom_config, Some(json!({"jitter_max": 3.5})));
    }

    #[test]
    fn keeps_current_preset_when_nothing_to_migrate() {
        let m = migrate(&MapEnv::new(&[
            ("RESILIENCE_PRESET", "production"),
            ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 4}"#),
        ]));
        assert_eq!(m.recommended_preset, "production");
        assert_eq!(m.custom_config, Some(json!({"retry_attempts": 4})));
    }

    #[test]
    fn formats_render() {
        let env = MapEnv::new(&[
            ("RESILIENCE_PRESET", "production"),
            ("RETRY_MAX_ATTEMPTS", "4"),
            ("RETRY_MAX_DELAY", "45"),
        ]);
        let m = migrate(&env);
        let bash = render_migration(&m, MigrationFormat::Bash);
        assert!(bash.starts_with("#!/usr/bin/env bash\n"));
        assert!(
            bash.contains("export RESILIENCE_PRESET=production\n"),
            "{bash}"
        );
        assert!(
            bash.contains("export RESILIENCE_CUSTOM_CONFIG='{\"retry_attempts\":4"),
            "{bash}"
        );
        assert!(bash.contains("unset RETRY_MAX_ATTEMPTS\n"));
        let env_file = render_migration(&m, MigrationFormat::Env);
        assert!(
            env_file.contains("\nRESILIENCE_PRESET=production\n"),
            "{env_file}"
        );
        assert!(env_file.contains("# RETRY_MAX_DELAY"));
        let docker = render_migration(&m, MigrationFormat::Docker);
        assert!(
            docker.contains("-e RESILIENCE_PRESET=production"),
            "{docker}"
        );
        assert!(docker.contains("ENV RESILIENCE_PRESET=production"));
        assert!(docker.contains("environment:\n  - RESILIENCE_PRESET=production"));
        assert!(docker.contains("  - 'RESILIENCE_CUSTOM_CONFIG={\"retry_attempts\":4"));

        let empty = migrate(&MapEnv::default());
        assert!(
            render_migration(&empty, MigrationFormat::Bash)
                .contains("unset RESILIENCE_CUSTOM_CONFIG")
        );
    }

    #[test]
    fn format_names() {
        assert_eq!("Docker".parse(), Ok(MigrationFormat::Docker));
        let e = "yaml".parse::<MigrationFormat>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown format 'yaml' (allowed: bash, env, docker)"
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
