//! Identity settings (`JWT_*`, `IDENTITY_*`, `AUDIT_LOG_CAPACITY`), parsed
//! and validated with the rest of [`crate::config::Settings`], so a bad value
//! stops start-up naming the variable before any socket is bound.

use crate::env::{ConfigError, EnvSource, millis, number, seconds, text};
use std::time::Duration;

/// Where JWT verification keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    /// `JWT_HS256_SECRET`: one shared secret, HS256 only.
    Hs256Secret(String),
    /// `JWT_JWKS_URL`: RS256/ES256 public keys, fetched at start-up and
    /// refreshed every `refresh`.
    Jwks {
        /// The JWKS document's URL.
        url: String,
        /// `JWT_JWKS_REFRESH_SECONDS` (default 300, 1–86400).
        refresh: Duration,
    },
}

impl std::fmt::Debug for JwtKeySource {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKeySource::Hs256Secret(_) => f.write_str("Hs256Secret([redacted])"),
            JwtKeySource::Jwks { url, refresh } => f
                .debug_struct("Jwks")
                .field("url", url)
                .field("refresh", refresh)
                .finish(),
        }
    }
}

/// JWT verification settings; present only when JWT is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The keys.
    pub source: JwtKeySource,
    /// Required `iss` (`JWT_ISSUER`).
    pub issuer: String,
    /// Required member of `aud` (`JWT_AUDIENCE`).
    pub audience: String,
    /// Clock skew allowed on `exp`/`nbf` in seconds (`JWT_LEEWAY_SECONDS`, default 30, 0–300).
    pub leeway_secs: u64,
    /// Claim holding the roles, an array or a space-separated string
    /// (`JWT_ROLES_CLAIM`, default `roles`). Absent claim = `client`.
    pub roles_claim: String,
    /// Claim holding the tenant (`JWT_TENANT_CLAIM`; unset = tokens carry no tenant).
    pub tenant_claim: Option<String>,
}

/// All identity settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// JWT verification, when `JWT_HS256_SECRET` or `JWT_JWKS_URL` is set.
    pub jwt: Option<JwtConfig>,
    /// How often client keys and the `jti` denylist are re-read from Redis
    /// (`IDENTITY_REFRESH_MS`, default 250, 50–5000): the bound on how late a
    /// revocation reaches another instance.
    pub refresh: Duration,
    /// Entries kept by the audit ring (`AUDIT_LOG_CAPACITY`, default 1000, 10–100000).
    pub audit_capacity: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            jwt: None,
            refresh: Duration::from_millis(250),
            audit_capacity: 1000,
        }
    }
}

impl IdentityConfig {
    /// Reads and validates the identity variables.
    pub fn from_env(env: &dyn EnvSource) -> Result<IdentityConfig, ConfigError> {
        let secret = env.get("JWT_HS256_SECRET").filter(|s| !s.is_empty());
        let jwks = text(env, "JWT_JWKS_URL");
        let source = match (secret, jwks) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::conflict(
                    &["JWT_HS256_SECRET", "JWT_JWKS_URL"],
                    "set either JWT_HS256_SECRET or JWT_JWKS_URL, not both: the key source fixes the algorithm",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(ConfigError::invalid(
                        "JWT_HS256_SECRET",
                        "[redacted]",
                        "a secret of at least 32 bytes",
                    ));
                }
                Some(JwtKeySource::Hs256Secret(secret))
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        "JWT_JWKS_URL",
                        url,
                        "an http:// or https:// URL of a JWKS document",
                    ));
                }
                let refresh = seconds(env, "JWT_JWKS_REFRESH_SECONDS", 300, 1, 86_400)?;
                Some(JwtKeySource::Jwks { url, refresh })
            }
            (None, None) => None,
        };
        let jwt = match source {
            None => None,
            Some(source) => {
                let required = |name: &'static str| {
                    text(env, name).ok_or_else(|| {
                        ConfigError::conflict(
                            &[name, "JWT_HS256_SECRET", "JWT_JWKS_URL"],
                            format!(
                                "{name} is required when JWT is on (JWT_HS256_SECRET or JWT_JWKS_URL is set)"
                            ),
                        )
                    })
                };
                Some(JwtConfig {
                    source,
                    issuer: required("JWT_ISSUER")?,
                    audience: required("JWT_AUDIENCE")?,
                    leeway_secs: number(env, "JWT_LEEWAY_SECONDS", 30u64, 0, 300)?,
                    roles_claim: text(env, "JWT_ROLES_CLAIM").unwrap_or_else(|| "roles".into()),
                    tenant_claim: text(env, "JWT_TENANT_CLAIM"),
                })
            }
        };
        Ok(IdentityConfig {
            jwt,
            refresh: millis(env, "IDENTITY_REFRESH_MS", 250, 50, 5000)?,
            audit_capacity: number(env, "AUDIT_LOG_CAPACITY", 1000usize, 10, 100_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn parse(vars: &[(&str, &str)]) -> Result<IdentityConfig, ConfigError> {
        IdentityConfig::from_env(&MapEnv::new(vars))
    }

    #[test]
    fn jwt_off_by_default() {
        assert_eq!(parse(&[]).unwrap(), IdentityConfig::default());
    }

    #[test]
    fn issuer_and_audience_are_required_and_named() {
        let secret = "0123456789abcdef0123456789abcdef";
        let e = parse(&[("JWT_HS256_SECRET", secret)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("JWT_ISSUER"), "{e}");
        let e = parse(&[("JWT_HS256_SECRET", secret), ("JWT_ISSUER", "i")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("JWT_AUDIENCE"), "{e}");
        let c = parse(&[
            ("JWT_HS256_SECRET", secret),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ])
        .unwrap();
        let jwt = c.jwt.unwrap();
        assert_eq!(jwt.roles_claim, "roles");
        assert_eq!(jwt.leeway_secs, 30);
        assert!(!format!("{jwt:?}").contains(secret), "secret redacted");
    }

    #[test]
    fn bad_values_name_themselves() {
        let e = parse(&[("JWT_HS256_SECRET", "short")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("JWT_HS256_SECRET") && e.contains("32"), "{e}");
        let e = parse(&[("JWT_JWKS_URL", "ftp://x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("JWT_JWKS_URL"), "{e}");
        let e = parse(&[
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_JWKS_URL", "http://x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
        let e = parse(&[("IDENTITY_REFRESH_MS", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("IDENTITY_REFRESH_MS"), "{e}");
    }
}
