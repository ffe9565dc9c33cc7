//! The `keel presets …` and `keel config …` subcommands: list, show and
//! recommend resilience presets; validate a custom or the effective
//! configuration; plan a migration away from legacy variables.
//!
//! Each command is a pure function from its arguments and an [`EnvSource`] to
//! a [`CommandOutput`] (stdout text, stderr text, exit code), so its output
//! is testable; the `run_*` functions only print it. Output is plain text
//! with a stable layout. Exit codes: 0 success / valid, 1 invalid
//! configuration, 2 usage error (unknown preset or format, unreadable file).

use crate::env::{ConfigError, EnvSource, MapEnv};
use crate::job::Operation;
use crate::resilience::config::{
    CUSTOM_CONFIG_VAR, CustomConfig, DEFAULT_PRESET, MigrationFormat, PRESET_NAMES, PRESET_VAR,
    Preset, ResilienceConfig, Source, ValidationReport, load, migrate, preset, presets, recommend,
    recommend_auto, render_migration, resolve, validate_custom_config,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `keel presets …`
#[derive(Debug, clap::Subcommand)]
pub enum PresetsCommand {
    /// List the presets with their core numbers and overrides.
    List,
    /// Show one preset and the policy it gives each operation.
    Show {
        /// simple, development or production.
        name: String,
    },
    /// Recommend a preset for an environment name (auto-detected from
    /// ENVIRONMENT, ENV, NODE_ENV, … and DEBUG/PROD signals when omitted).
    Recommend {
        /// e.g. staging, prod-eu, feature-sandbox.
        environment: Option<String>,
    },
}

/// `keel config …`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a custom configuration (--json or --file), or else the
    /// effective configuration from the environment (RESILIENCE_PRESET,
    /// RESILIENCE_CUSTOM_CONFIG, legacy variables).
    Validate {
        /// A custom configuration document, e.g. '{"retry_attempts":4}'.
        #[arg(long, conflicts_with = "file")]
        json: Option<String>,
        /// A file holding a custom configuration document.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Plan the move from legacy resilience variables to a preset.
    Migrate {
        /// Script format: bash, env or docker.
        #[arg(long, default_value = "bash")]
        format: String,
    },
}

/// What a command prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
    /// 0 success, 1 invalid configuration, 2 usage error.
    pub exit_code: u8,
}

impl CommandOutput {
    fn ok(stdout: String) -> CommandOutput {
        CommandOutput {
            stdout,
            ..CommandOutput::default()
        }
    }

    fn usage_error(message: String) -> CommandOutput {
        CommandOutput {
            stderr: format!("{message}\n"),
            exit_code: 2,
            ..CommandOutput::default()
        }
    }

    /// Writes the output; a closed pipe (`keel presets list | head -1`) is
    /// not an error worth a panic, so write errors are ignored.
    fn emit(self) -> ExitCode {
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().write_all(self.stderr.as_bytes());
        ExitCode::from(self.exit_code)
    }
}

/// Runs `keel presets …` and prints its output.
pub fn run_presets(cmd: PresetsCommand, env: &dyn EnvSource) -> ExitCode {
    presets_output(cmd, env).emit()
}

/// Runs `keel config …` and prints its output.
pub fn run_config(cmd: ConfigCommand, env: &dyn EnvSource) -> ExitCode {
    config_output(cmd, env).emit()
}

/// The output of `keel presets …`.
pub fn presets_output(cmd: PresetsCommand, env: &dyn EnvSource) -> CommandOutput {
    match cmd {
        PresetsCommand::List => CommandOutput::ok(list_presets()),
        PresetsCommand::Show { name } => show_preset(&name),
        PresetsCommand::Recommend { environment } => {
            let r = match environment {
                Some(name) => recommend(&name),
                None => recommend_auto(env),
            };
            CommandOutput::ok(format!(
                "environment: {}\nrecommended preset: {}\nconfidence: {:.2}\nreasoning: {}\n",
                r.environment_detected, r.recommended_preset, r.confidence, r.reasoning
            ))
        }
    }
}

/// The output of `keel config …`.
pub fn config_output(cmd: ConfigCommand, env: &dyn EnvSource) -> CommandOutput {
    match cmd {
        ConfigCommand::Validate { json, file } => validate_output(json, file, env),
        ConfigCommand::Migrate { format } => migrate_output(&format, env),
    }
}

fn list_presets() -> String {
    let rows: Vec<Vec<String>> = presets()
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.retry_attempts.to_string(),
                p.circuit_breaker_threshold.to_string(),
                format!("{}s", p.recovery_timeout),
                p.default_strategy.to_string(),
                p.operation_overrides.to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "attempts",
            "threshold",
            "recovery",
            "default",
            "overrides",
            "description",
        ],
        &rows,
    )
}

fn show_preset(name: &str) -> CommandOutput {
    let p = match preset(name) {
        Ok(p) => p,
        Err(ConfigError::Invalid {
            name: PRESET_VAR, ..
        }) => {
            return CommandOutput::usage_error(format!(
                "unknown preset '{name}' (allowed: {})",
                PRESET_NAMES.join(", ")
            ));
        }
        Err(e) => return CommandOutput::usage_error(e.to_string()),
    };
    // The preset on its own: no custom document, no legacy variables.
    let resolved = match resolve(&p.name, None, &MapEnv::default()) {
        Ok(c) => c,
        Err(e) => return CommandOutput::usage_error(e.to_string()),
    };
    let mut out = describe_preset(&p);
    out.push_str("\nresolved policies:\n");
    out.push_str(&policy_table(&resolved, false));
    CommandOutput::ok(out)
}

fn describe_preset(p: &Preset) -> String {
    format!(
        "preset: {}\ndescription: {}\nretry_attempts: {}\ncircuit_breaker_threshold: {}\nrecovery_timeout: {}s\ndefault_strategy: {}\noperation_overrides: {}\nenvironment_contexts: {}\n",
        p.name,
        p.description,
        p.retry_attempts,
        p.circuit_breaker_threshold,
        p.recovery_timeout,
        p.default_strategy,
        p.operation_overrides,
        p.environment_contexts.join(", ")
    )
}

fn validate_output(
    json: Option<String>,
    file: Option<PathBuf>,
    env: &dyn EnvSource,
) -> CommandOutput {
    let preset_name = env
        .get(PRESET_VAR)
        .unwrap_or_else(|| DEFAULT_PRESET.to_string());
    let given = match (json, file) {
        (Some(_), Some(_)) => {
            return CommandOutput::usage_error("use either --json or --file, not both".to_string());
        }
        (Some(text), None) => Some((text, "--json".to_string())),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => Some((text, path.display().to_string())),
            Err(e) => {
                return CommandOutput::usage_error(format!("cannot read {}: {e}", path.display()));
            }
        },
        (None, None) => None,
    };
    let (mut report, effective, checked) = match given {
        Some((text, origin)) => {
            // The document as it would run: in place of RESILIENCE_CUSTOM_CONFIG,
            // under the environment's preset and legacy variables.
            let mut report = validate_custom_config(&text);
            let mut effective = None;
            if let Ok(custom) = CustomConfig::parse(&text) {
                match resolve(&preset_name, Some(&custom), env) {
                    Ok(c) => effective = Some(c),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
            (
                report,
                effective,
                format!(
                    "custom configuration from {origin}, as {CUSTOM_CONFIG_VAR} under the environment's {PRESET_VAR} and legacy variables"
                ),
            )
        }
        None => {
            let mut report = match env.get(CUSTOM_CONFIG_VAR) {
                Some(text) => validate_custom_config(&text),
                None => ValidationReport {
                    is_valid: true,
                    ..ValidationReport::default()
                },
            };
            let mut effective = None;
            match load(env) {
                Ok(c) => effective = Some(c),
                // Already itemised by the report; still surface preset and
                // legacy-variable problems hidden behind it.
                Err(ConfigError::InvalidDocument {
                    name: CUSTOM_CONFIG_VAR,
                    ..
                }) => {
                    if let Err(e) = resolve(&preset_name, None, env) {
                        report.errors.push(e.to_string());
                    }
                }
                Err(e) => report.errors.push(e.to_string()),
            }
            (
                report,
                effective,
                format!(
                    "effective configuration from the environment ({PRESET_VAR}, {CUSTOM_CONFIG_VAR}, legacy variables)"
                ),
            )
        }
    };
    if let Some(c) = &effective {
        for w in &c.warnings {
            if !report.warnings.contains(w) {
                report.warnings.push(w.clone());
            }
        }
    }
    report.is_valid = report.errors.is_empty();

    let mut out = String::new();
    out.push_str(if report.is_valid {
        "valid\n"
    } else {
        "invalid\n"
    });
    let _ = writeln!(out, "checked: {checked}");
    section(&mut out, "errors", &report.errors);
    section(&mut out, "warnings", &report.warnings);
    section(&mut out, "suggestions", &report.suggestions);
    if let (true, Some(c)) = (report.is_valid, &effective) {
        let _ = writeln!(out, "\neffective configuration (preset {}):", c.preset);
        out.push_str(&policy_table(c, true));
    }
    CommandOutput {
        stdout: out,
        stderr: String::new(),
        exit_code: if report.is_valid { 0 } else { 1 },
    }
}

fn migrate_output(format: &str, env: &dyn EnvSource) -> CommandOutput {
    let format = match format.parse::<MigrationFormat>() {
        Ok(f) => f,
        Err(e) => return CommandOutput::usage_error(e.to_string()),
    };
    let m = migrate(env);
    let mut out = String::new();
    let _ = writeln!(out, "recommended preset: {}", m.recommended_preset);
    let _ = writeln!(out, "confidence: {} (score {:.2})", m.confidence, m.score);
    let _ = writeln!(out, "reasoning: {}", m.reasoning);
    let _ = writeln!(
        out,
        "legacy variables: {}",
        if m.legacy_vars.is_empty() {
            "none".to_string()
        } else {
            m.legacy_vars.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "custom config: {}",
        m.custom_config
            .as_ref()
            .and_then(|v| CustomConfig::from_value(v).ok())
            .map_or_else(|| "none".to_string(), |c| c.to_json_string())
    );
    section(&mut out, "warnings", &m.warnings);
    out.push_str("steps:\n");
    for (i, step) in m.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", i + 1);
    }
    let _ = writeln!(out, "\n--- {format} ---");
    out.push_str(&render_migration(&m, format));
    CommandOutput::ok(out)
}

/// `name:` followed by one indented item per line; nothing when empty.
fn section(out: &mut String, name: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{name}:");
    for item in items {
        let _ = writeln!(out, "  - {item}");
    }
}

/// Seconds without trailing zeros: `120s`, `0.5s`.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// One row per operation: strategy, attempts, breaker threshold and
/// recovery, backoff min/max/multiplier, deadline, jitter, hedging; with `sources`,
/// the fields set by the custom document or legacy variables.
fn policy_table(c: &ResilienceConfig, sources: bool) -> String {
    let mut header = vec![
        "operation",
        "strategy",
        "attempts",
        "threshold",
        "recovery",
        "backoff min/max/mult",
        "deadline",
        "jitter",
        "hedge",
    ];
    if sources {
        header.push("set by");
    }
    let rows: Vec<Vec<String>> = Operation::ALL
        .into_iter()
        .map(|op| {
            let p = c.policy(op);
            let mut row = vec![
                op.to_string(),
                p.strategy.to_string(),
                p.max_attempts.to_string(),
                p.failure_threshold.to_string(),
                secs(p.recovery_timeout),
                format!(
                    "{}/{}/x{}",
                    secs(p.exponential_min),
                    secs(p.exponential_max),
                    p.exponential_multiplier
                ),
                secs(p.max_delay),
                if p.jitter_enabled {
                    secs(p.jitter_max)
                } else {
                    "off".to_string()
                },
                if p.hedging() {
                    format!(
                        "{}ms x{} {}",
                        p.hedge_delay.as_millis(),
                        p.max_hedged_attempts,
                        p.hedge_to.as_str()
                    )
                } else {
                    "off".to_string()
                },
            ];
            if sources {
                let set: Vec<String> = c
                    .sources(op)
                    .entries()
                    .into_iter()
                    .filter(|(_, s)| matches!(s, Source::Custom | Source::Env(_)))
                    .map(|(field, s)| format!("{field}={s}"))
                    .collect();
                row.push(if set.is_empty() {
                    "-".to_string()
                } else {
                    set.join(" ")
                });
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// Left-aligned columns separated by two spaces; no trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let _ = write!(s, "{cell:<w$}");
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presets_cmd(cmd: PresetsCommand) -> CommandOutput {
        presets_output(cmd, &MapEnv::default())
    }

    fn validate(json: Option<&str>, env: &[(&str, &str)]) -> CommandOutput {
        config_output(
            ConfigCommand::Validate {
                json: json.map(str::to_string),
                file: None,
            },
            &MapEnv::new(env),
        )
    }

    #[test]
    fn list_shows_every_preset() {
        let out = presets_cmd(PresetsCommand::List);
        assert_eq!(out.exit_code, 0);
        for name in PRESET_NAMES {
            assert!(out.stdout.contains(name), "{}", out.stdout);
        }
        assert!(out.stdout.starts_with("name "));
        assert!(out.stdout.contains("qa=critical"));
        assert_eq!(out.stdout.lines().count(), 4);
    }

    #[test]
    fn show_prints_the_resolved_table() {
        let out = presets_cmd(PresetsCommand::Show {
            name: "production".to_string(),
        });
        assert_eq!(out.exit_code, 0);
        let qa = out
            .stdout
            .lines()
            .find(|l| l.starts_with("qa "))
            .expect("qa row");
        let cells: Vec<&str> = qa.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "qa",
                "critical",
                "7",
                "10",
                "300s",
                "3s/60s/x1.5",
                "300s",
                "5s",
                "off"
            ]
        );
        assert!(out.stdout.contains("default_strategy: conservative"));
    }

    #[test]
    fn show_unknown_preset_is_a_usage_error() {
        let out = presets_cmd(PresetsCommand::Show {
            name: "fast".to_string(),
        });
        assert_eq!(out.exit_code, 2);
        assert_eq!(
            out.stderr,
            "unknown preset 'fast' (allowed: simple, development, production)\n"
        );
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn recommend_named_and_auto() {
        let out = presets_cmd(PresetsCommand::Recommend {
            environment: Some("staging".to_string()),
        });
        assert!(
            out.stdout
                .contains("recommended preset: production\nconfidence: 0.90\n"),
            "{}",
            out.stdout
        );
        let out = presets_output(
            PresetsCommand::Recommend { environment: None },
            &MapEnv::new(&[("ENVIRONMENT", "dev")]),
        );
        assert!(
            out.stdout.contains("environment: dev (auto-detected)"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("recommended preset: development"));
    }

    #[test]
    fn validate_invalid_json_names_the_field() {
        let out = validate(Some(r#"{"retry_attempts": 15}"#), &[]);
        assert_eq!(out.exit_code, 1);
        assert!(out.stdout.starts_with("invalid\n"));
        assert!(
            out.stdout
                .contains("Field 'retry_attempts': 15 is greater than the maximum of 10")
        );
        assert!(!out.stdout.contains("effective configuration"));
    }

    #[test]
    fn validate_valid_json_prints_warnings_and_table() {
        let out = validate(
            Some(r#"{"retry_attempts": 5, "max_delay_seconds": 8}"#),
            &[("RESILIENCE_PRESET", "development")],
        );
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert!(out.stdout.starts_with("valid\n"));
        assert!(
            out.stdout
                .contains("might be too short for 5 retry attempts")
        );
        assert!(
            out.stdout
                .contains("effective configuration (preset development):")
        );
        assert!(out.stdout.contains("max_attempts=custom"), "{}", out.stdout);
    }

    #[test]
    fn validate_json_against_the_environment_preset() {
        // Legal on its own, impossible under development's aggressive rows.
        let out = validate(
            Some(r#"{"exponential_min": 8}"#),
            &[("RESILIENCE_PRESET", "development")],
        );
        assert_eq!(out.exit_code, 1);
        assert!(
            out.stdout
                .contains("exponential_min must be less than exponential_max")
        );
    }

    #[test]
    fn validate_environment() {
        let out = validate(None, &[]);
        assert_eq!(out.exit_code, 0);
        assert!(
            out.stdout
                .contains("effective configuration (preset simple):")
        );
        let out = validate(None, &[("RESILIENCE_PRESET", "fast")]);
        assert_eq!(out.exit_code, 1);
        assert!(
            out.stdout.contains("RESILIENCE_PRESET=\"fast\""),
            "{}",
            out.stdout
        );
        let out = validate(
            None,
            &[
                ("RESILIENCE_CUSTOM_CONFIG", "{}"),
                ("RETRY_MAX_ATTEMPTS", "zero"),
            ],
        );
        assert_eq!(out.exit_code, 1);
        assert!(out.stdout.contains("at least one field"));
        assert!(
            out.stdout.contains("RETRY_MAX_ATTEMPTS=\"zero\""),
            "{}",
            out.stdout
        );
        let out = validate(None, &[("RETRY_MAX_ATTEMPTS", "4")]);
        assert_eq!(out.exit_code, 0);
        assert!(out.stdout.contains("max_attempts=env:RETRY_MAX_ATTEMPTS"));
    }

    #[test]
    fn validate_file() {
        let dir = std::env::temp_dir().join(format!("keel-cli-resilience-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("custom.json");
        std::fs::write(&path, r#"{"circuit_breaker_threshold": 0}"#).expect("write");
        let out = config_output(
            ConfigCommand::Validate {
                json: None,
                file: Some(path.clone()),
            },
            &MapEnv::default(),
        );
        assert_eq!(out.exit_code, 1);
        assert!(out.stdout.contains("circuit_breaker_threshold"));
        let _ = std::fs::remove_dir_all(&dir);
        let out = config_output(
            ConfigCommand::Validate {
                json: None,
                file: Some(path),
            },
            &MapEnv::default(),
        );
        assert_eq!(out.exit_code, 2);
        assert!(out.stderr.starts_with("cannot read"));
    }

    #[test]
    fn migrate_prints_plan_and_script() {
        let env = MapEnv::new(&[
            ("RESILIENCE_PRESET", "production"),
            ("RETRY_MAX_ATTEMPTS", "4"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "9"),
        ]);
        let out = config_output(
            ConfigCommand::Migrate {
                format: "docker".to_string(),
            },
            &env,
        );
        assert_eq!(out.exit_code, 0);
        assert!(
            out.stdout.contains("recommended preset: production"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains("custom config: {\"retry_attempts\":4,\"circuit_breaker_threshold\":9}")
        );
        assert!(out.stdout.contains("--- docker ---"));
        assert!(out.stdout.contains("ENV RESILIENCE_PRESET=production"));
        let out = config_output(
            ConfigCommand::Migrate {
                format: "yaml".to_string(),
            },
            &env,
        );
        assert_eq!(out.exit_code, 2);
        assert!(out.stderr.contains("unknown format 'yaml'"));
    }

    #[test]
    fn clap_wiring_parses() {
        use clap::{Parser, Subcommand};
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: Cmd,
        }
        #[derive(Subcommand)]
        enum Cmd {
            #[command(subcommand)]
            Presets(PresetsCommand),
            #[command(subcommand)]
            Config(ConfigCommand),
        }
        let cli =
            Cli::try_parse_from(["keel", "config", "validate", "--json", "{}"]).expect("parses");
        assert!(matches!(
            cli.cmd,
            Cmd::Config(ConfigCommand::Validate { json: Some(_), .. })
        ));
        let cli = Cli::try_parse_from(["keel", "config", "migrate"]).expect("parses");
        assert!(
            matches!(cli.cmd, Cmd::Config(ConfigCommand::Migrate { ref format }) if format == "bash")
        );
        let cli = Cli::try_parse_from(["keel", "presets", "show", "simple"]).expect("parses");
        assert!(matches!(cli.cmd, Cmd::Presets(PresetsCommand::Show { .. })));
        assert!(
            Cli::try_parse_from(["keel", "config", "validate", "--json", "{}", "--file", "x"])
                .is_err()
        );
    }
}
