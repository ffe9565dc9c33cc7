//! Preset recommendation from an environment name (the reference project's rules): an exact
//! name table first, then substring patterns checked in a fixed order
//! (staging-like → production .70, development-like → development .75,
//! production-like → production .75, else simple .40).
//!
//! The reference used regexes of the form `.*word.*`, which are plain
//! substring tests; they are implemented as such, so no regex crate is
//! needed. Auto mode reads only environment variables (never the file system),
//! so its answer does not depend on the working directory.

use crate::env::EnvSource;
use serde::Serialize;

/// A preset recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// The environment name as given, or `"<value> (auto-detected)"`,
    /// `"development (auto-detected)"`, `"unknown (auto-detected)"` in auto mode.
    pub environment_detected: String,
    /// `simple`, `development` or `production`.
    pub recommended_preset: String,
    /// How sure the match is, 0.0–1.0 (.95 exact name … .40 no pattern).
    pub confidence: f64,
    /// Why, in one sentence.
    pub reasoning: String,
}

/// Exact names (after trim + lowercase): preset, confidence, reasoning.
const EXACT: [(&str, &str, f64, &str); 9] = [
    (
        "development",
        "development",
        0.95,
        "Exact match for development environment",
    ),
    (
        "dev",
        "development",
        0.90,
        "Standard abbreviation for development",
    ),
    (
        "testing",
        "development",
        0.85,
        "Testing typically uses development-like settings",
    ),
    (
        "test",
        "development",
        0.85,
        "Test environment should fail fast",
    ),
    (
        "staging",
        "production",
        0.90,
        "Staging should mirror production settings",
    ),
    (
        "stage",
        "production",
        0.85,
        "Stage environment abbreviation",
    ),
    (
        "production",
        "production",
        0.95,
        "Exact match for production environment",
    ),
    (
        "prod",
        "production",
        0.90,
        "Standard abbreviation for production",
    ),
    (
        "live",
        "production",
        0.85,
        "Live environment implies production",
    ),
];

/// Substring patterns, checked group by group in this order (the order
/// matters: "pre-prod" must read as staging before "prod" reads as production).
const STAGING_PATTERNS: [&str; 5] = ["stag", "pre-prod", "preprod", "uat", "integration"];
const DEV_PATTERNS: [&str; 5] = ["dev", "local", "test", "sandbox", "demo"];
const PROD_PATTERNS: [&str; 6] = ["prod", "live", "release", "stable", "main", "master"];

/// Variables that name the deployment environment, in priority order.
pub const ENVIRONMENT_VARS: [&str; 8] = [
    "ENVIRONMENT",
    "ENV",
    "DEPLOYMENT_ENV",
    "NODE_ENV",
    "RAILS_ENV",
    "DJANGO_SETTINGS_MODULE",
    "FLASK_ENV",
    "APP_ENV",
];

/// Recommends a preset for an environment name: exact names, then patterns.
pub fn recommend(environment: &str) -> Recommendation {
    let name = environment.trim().to_lowercase();
    let (preset, confidence, reasoning) = classify(&name);
    Recommendation {
        environment_detected: environment.to_string(),
        recommended_preset: preset.to_string(),
        confidence,
        reasoning,
    }
}

fn classify(name: &str) -> (&'static str, f64, String) {
    if let Some((_, preset, confidence, why)) = EXACT.iter().find(|(n, ..)| *n == name) {
        return (preset, *confidence, why.to_string());
    }
    let has = |patterns: &[&str]| patterns.iter().any(|p| name.contains(p));
    if has(&STAGING_PATTERNS) {
        (
            "production",
            0.70,
            format!("Environment name '{name}' matches staging pattern, using production preset"),
        )
    } else if has(&DEV_PATTERNS) {
        (
            "development",
            0.75,
            format!("Environment name '{name}' matches development pattern"),
        )
    } else if has(&PROD_PATTERNS) {
        (
            "production",
            0.75,
            format!("Environment name '{name}' matches production pattern"),
        )
    } else {
        (
            "simple",
            0.40,
            format!("Unknown environment pattern '{name}', defaulting to simple preset"),
        )
    }
}

/// Recommends a preset from the environment: the first set variable of
/// [`ENVIRONMENT_VARS`] decides (tagged "(auto-detected)"); else development
/// signals (`DEBUG` = true/1, `HOST` containing localhost/127.0.0.1) give
/// development .75; else production signals (`PROD`/`PRODUCTION` = true,
/// `DEBUG` = false/0, "prod" in `HOST`, "production" in `DATABASE_URL`) give
/// production .70; else simple .50.
///
/// Unlike the reference, file-system signals (`.env`, `.git`,
/// `docker-compose.dev.yml` in the working directory) are not used: they made
/// the answer depend on where the process happened to be started.
pub fn recommend_auto(env: &dyn EnvSource) -> Recommendation {
    if let Some((var, value)) = ENVIRONMENT_VARS
        .iter()
        .find_map(|var| env.get(var).map(|v| (*var, v)))
    {
        let r = recommend(&value);
        return Recommendation {
            environment_detected: format!("{value} (auto-detected)"),
            reasoning: format!("{} (from {var})", r.reasoning),
            ..r
        };
    }
    let get = |name: &str| env.get(name).map(|v| v.trim().to_lowercase());
    let debug = get("DEBUG");
    let host = get("HOST").unwrap_or_default();
    let dev = matches!(debug.as_deref(), Some("true" | "1"))
        || host.contains("localhost")
        || host.contains("127.0.0.1");
    if dev {
        return Recommendation {
            environment_detected: "development (auto-detected)".to_string(),
            recommended_preset: "development".to_string(),
            confidence: 0.75,
            reasoning: "Development indicators detected (DEBUG=true or a localhost HOST)"
                .to_string(),
        };
    }
    let prod = get("PROD").as_deref() == Some("true")
        || get("PRODUCTION").as_deref() == Some("true")
        || matches!(debug.as_deref(), Some("false" | "0"))
        || host.contains("prod")
        || get("DATABASE_URL").is_some_and(|u| u.contains("production"));
    if prod {
        return Recommendation {
            environment_detected: "production (auto-detected)".to_string(),
            recommended_preset: "production".to_string(),
            confidence: 0.70,
            reasoning: "Production indicators detected (PROD=true, DEBUG=false, production host or database URL)".to_string(),
        };
    }
    Recommendation {
        environment_detected: "unknown (auto-detected)".to_string(),
        recommended_preset: "simple".to_string(),
        confidence: 0.50,
        reasoning: "No clear environment indicators found, using simple preset as safe default"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn check(env: &str, preset: &str, confidence: f64) {
        let r = recommend(env);
        assert_eq!(
            (r.recommended_preset.as_str(), r.confidence),
            (preset, confidence),
            "{env}: {r:?}"
        );
        assert_eq!(r.environment_detected, env);
    }

    #[test]
    fn exact_names() {
        check("development", "development", 0.95);
        check("dev", "development", 0.90);
        check("testing", "development", 0.85);
        check("test", "development", 0.85);
        check("staging", "production", 0.90);
        check("stage", "production", 0.85);
        check("production", "production", 0.95);
        check("prod", "production", 0.90);
        check("live", "production", 0.85);
        // Trimmed and case-insensitive.
        check("  PRODUCTION ", "production", 0.95);
    }

    #[test]
    fn patterns_in_order() {
        check("uat-eu", "production", 0.70);
        check("pre-prod", "production", 0.70);
        check("integration-7", "production", 0.70);
        check("feature-sandbox", "development", 0.75);
        check("local-docker", "development", 0.75);
        check("release-2", "production", 0.75);
        check("master", "production", 0.75);
        check("xyz", "simple", 0.40);
        check("", "simple", 0.40);
        // Staging patterns are checked before development ones.
        assert_eq!(recommend("staging-dev").confidence, 0.70);
    }

    #[test]
    fn auto_detection() {
        let r = recommend_auto(&MapEnv::new(&[
            ("ENVIRONMENT", "staging"),
            ("DEBUG", "false"),
        ]));
        assert_eq!(r.recommended_preset, "production");
        assert_eq!(r.confidence, 0.90);
        assert_eq!(r.environment_detected, "staging (auto-detected)");
        assert!(r.reasoning.contains("ENVIRONMENT"));

        // ENVIRONMENT outranks NODE_ENV.
        let r = recommend_auto(&MapEnv::new(&[
            ("NODE_ENV", "production"),
            ("ENVIRONMENT", "dev"),
        ]));
        assert_eq!(r.recommended_preset, "development");

        let r = recommend_auto(&MapEnv::new(&[("DEBUG", "true")]));
        assert_eq!(
            (r.recommended_preset.as_str(), r.confidence),
            ("development", 0.75)
        );
        let r = recommend_auto(&MapEnv::new(&[("HOST", "127.0.0.1")]));
        assert_eq!(r.recommended_preset, "development");

        let r = recommend_auto(&MapEnv::new(&[("DEBUG", "false")]));
        assert_eq!(
            (r.recommended_preset.as_str(), r.confidence),
            ("production", 0.70)
        );
        let r = recommend_auto(&MapEnv::new(&[(
            "DATABASE_URL",
            "postgres://db/production",
        )]));
        assert_eq!(r.recommended_preset, "production");

        let r = recommend_auto(&MapEnv::default());
        assert_eq!(
            (r.recommended_preset.as_str(), r.confidence),
            ("simple", 0.50)
        );
        assert_eq!(r.environment_detected, "unknown (auto-detected)");
    }
}
