//! Who is calling: every authenticated request resolves to one [`Identity`]
//! (README "Identity").
//!
//! Three kinds of credential resolve to an identity:
//! - `static_key`: `API_KEY` / `ADDITIONAL_API_KEYS` (role `client`, plus
//!   `operator` in development without `INTERNAL_API_KEY`) and
//!   `INTERNAL_API_KEY` (role `operator`). Fixed at start-up, compared in
//!   constant time, and — so two-variable setups behave exactly as before —
//!   a static key presented on the surface it does not belong to is simply
//!   not a valid key there (401), not a 403.
//! - `client_key`: `keel_…` secrets operators issue through `/internal/keys`
//!   ([`keys`]); stored only as SHA-256 digests, revocable at runtime.
//! - `jwt`: bearer tokens verified against `JWT_HS256_SECRET` or the JWKS at
//!   `JWT_JWKS_URL` ([`jwt`]), with `jti` revocation ([`denylist`]).
//!
//! Invariants: the hot path does no Redis round trip (stores are refreshed
//! into local maps in the background), no raw secret or token is ever logged,
//! stored or echoed, and limits and ownership key on [`Identity::owner`],
//! never on a secret.

pub mod audit;
pub mod authenticator;
pub mod config;
pub mod denylist;
pub mod jwt;
pub mod keys;

pub use authenticator::{Authenticator, AuthenticatorSettings, OperatorMode, Surface};
pub use config::{IdentityConfig, JwtConfig, JwtKeySource};

use serde::Serialize;

/// A role an identity may hold. `/v1` needs [`Role::Client`], `/internal`
/// needs [`Role::Operator`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May call the public API.
    Client,
    /// May call the operator API.
    Operator,
}

impl Role {
    /// Parses `client` / `operator` (case-insensitive); anything else is `None`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "client" => Some(Role::Client),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// The set of roles of an identity (a two-bit set: cheap to copy and test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Holds [`Role::Client`].
    pub client: bool,
    /// Holds [`Role::Operator`].
    pub operator: bool,
}

impl Roles {
    /// Just `client`.
    pub const CLIENT: Roles = Roles {
        client: true,
        operator: false,
    };
    /// Just `operator`.
    pub const OPERATOR: Roles = Roles {
        client: false,
        operator: true,
    };
    /// Both roles.
    pub const BOTH: Roles = Roles {
        client: true,
        operator: true,
    };

    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Roles {
        let mut set = Roles::default();
        for role in roles {
            set.insert(*role);
        }
        set
    }

    /// Adds `role`.
    pub fn insert(&mut self, role: Role) {
        match role {
            Role::Client => self.client = true,
            Role::Operator => self.operator = true,
        }
    }

    /// Whether `role` is held.
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Client => self.client,
            Role::Operator => self.operator,
        }
    }

    /// The roles as a list, `client` first (how they are shown).
    pub fn to_vec(self) -> Vec<Role> {
        let mut out = Vec::with_capacity(2);
        if self.client {
            out.push(Role::Client);
        }
        if self.operator {
            out.push(Role::Operator);
        }
        out
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(s)
    }
}

/// How an identity authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IdentityKind)]
pub enum Kind {
    /// A key from the environment (`API_KEY`, `ADDITIONAL_API_KEYS`, `INTERNAL_API_KEY`).
    StaticKey,
    /// A key issued by an operator through `/internal/keys`.
    ClientKey,
    /// A verified JWT bearer token.
    Jwt,
    /// Open access (no key configured, development/testing only).
    Anonymous,
}

/// Limits an identity carries that override the global ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct IdentityLimits {
    /// Requests per sliding minute (replaces `RATE_LIMIT_PER_MINUTE` for this identity).
    pub rate_limit_per_minute: Option<u32>,
}

/// Who is calling. Put in request extensions by the auth layer; handlers
/// scope batches, jobs and limits by [`Identity::owner`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Identity {
    /// Stable, non-secret id: `key:<fingerprint>` (static key),
    /// `client_key:<id>`, `jwt:<sub>`, or `anonymous`.
    pub id: String,
    /// How it authenticated.
    pub kind: Kind,
    /// What it may do.
    #[schema(value_type = Vec<Role>)]
    pub roles: Roles,
    /// The tenant it acts for, if any: jobs, batches and limits are then
    /// shared by every identity of that tenant.
    #[schema(required = true)]
    pub tenant: Option<String>,
    /// Its own limits, if any.
    #[schema(required = true)]
    pub limits: Option<IdentityLimits>,
    /// First characters of the credential followed by "..." (never the whole
    /// secret); `None` for open access and JWTs.
    #[serde(skip)]
    pub key_prefix: Option<String>,
}

impl Identity {
    /// The open-access identity (no key configured); `roles` are the ones the
    /// surface grants in that mode.
    pub fn anonymous(roles: Roles) -> Identity {
        Identity {
            id: "anonymous".into(),
            kind: Kind::Anonymous,
            roles,
            tenant: None,
            limits: None,
            key_prefix: None,
        }
    }

    /// What owns this identity's jobs and batches and what its rate limits
    /// count against: `tenant:<t>` when a tenant is set, else [`Identity::id`].
    pub fn owner(&self) -> String {
        match &self.tenant {
            Some(t) => format!("tenant:{t}"),
            None => self.id.clone(),
        }
    }

    /// The per-minute limit that replaces the global one, if any.
    pub fn rate_limit_per_minute(&self) -> Option<u32> {
        self.limits.and_then(|l| l.rate_limit_per_minute)
    }
}

/// Why a credential was refused. The message is what the 401 body says:
/// it helps the caller and never contains the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a known static key, client key or verifiable token.
    #[error("Invalid API key")]
    UnknownKey,
    /// A client key that an operator revoked.
    #[error("Invalid API key: the key was revoked")]
    Revoked,
    /// A client key past its `expires_at`.
    #[error("Invalid API key: the key has expired")]
    KeyExpired,
    /// The token's `exp` (plus leeway) is past.
    #[error("Invalid token: expired")]
    Expired,
    /// The token's `nbf` (minus leeway) is in the future.
    #[error("Invalid token: not yet valid (nbf)")]
    NotYetValid,
    /// `iss` is not `JWT_ISSUER`.
    #[error("Invalid token: wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain `JWT_AUDIENCE`.
    #[error("Invalid token: wrong audience")]
    WrongAudience,
    /// The header's `kid` is not in the key set.
    #[error("Invalid token: unknown kid")]
    UnknownKid,
    /// The key set has several keys and the token names none.
    #[error("Invalid token: the header has no kid")]
    MissingKid,
    /// `alg` is not RS256/ES256/HS256, or not the one the key's type fixes.
    #[error(
        "Invalid token: algorithm not allowed for this key (RS256, ES256 or HS256, fixed by the key)"
    )]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("Invalid token: bad signature")]
    BadSignature,
    /// `exp`, `iss`, `aud` or `sub` is missing.
    #[error("Invalid token: a required claim (exp, iss, aud, sub) is missing")]
    MissingClaim,
    /// Not three base64url parts with a JSON header and claims.
    #[error("Invalid token: malformed")]
    Malformed,
    /// Its `jti` was revoked through `/internal/tokens/revoke`.
    #[error("Invalid token: revoked")]
    TokenRevoked,
    /// The JWKS could not be loaded yet, so no key can verify it.
    #[error("Invalid token: no verification keys are loaded")]
    NoKeys,
}

impl AuthError {
    /// A short stable name of the reason (`expired`, `unknown_kid`, …).
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::UnknownKey => "unknown_key",
            AuthError::Revoked => "revoked",
            AuthError::KeyExpired => "key_expired",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::MissingKid => "missing_kid",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::BadSignature => "bad_signature",
            AuthError::MissingClaim => "missing_claim",
            AuthError::Malformed => "malformed",
            AuthError::TokenRevoked => "token_revoked",
            AuthError::NoKeys => "no_keys",
        }
    }

    /// The message as a `'static` string (the error body wants one).
    pub fn message(self) -> &'static str {
        match self {
            AuthError::UnknownKey => "Invalid API key",
            AuthError::Revoked => "Invalid API key: the key was revoked",
            AuthError::KeyExpired => "Invalid API key: the key has expired",
            AuthError::Expired => "Invalid token: expired",
            AuthError::NotYetValid => "Invalid token: not yet valid (nbf)",
            AuthError::WrongIssuer => "Invalid token: wrong issuer",
            AuthError::WrongAudience => "Invalid token: wrong audience",
            AuthError::UnknownKid => "Invalid token: unknown kid",
            AuthError::MissingKid => "Invalid token: the header has no kid",
            AuthError::AlgorithmNotAllowed => {
                "Invalid token: algorithm not allowed for this key (RS256, ES256 or HS256, fixed by the key)"
            }
            AuthError::BadSignature => "Invalid token: bad signature",
            AuthError::MissingClaim => {
                "Invalid token: a required claim (exp, iss, aud, sub) is missing"
            }
            AuthError::Malformed => "Invalid token: malformed",
            AuthError::TokenRevoked => "Invalid token: revoked",
            AuthError::NoKeys => "Invalid token: no verification keys are loaded",
        }
    }
}

/// Seconds since the Unix epoch (wall clock: token and key expiry are wall-clock facts).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs `body` forever in its own task, starting it again (with a log line
/// and a count) if it panics; ends when `body` returns normally (its owner
/// is gone). This is what keeps the background refreshers alive.
pub fn supervise<F, Fut>(
    name: &'static str,
    restarts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    body: F,
) where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(body()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        task = name,
                        "identity background task panicked; restarting it"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(_) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_the_tenant_when_set() {
        let mut id = Identity::anonymous(Roles::CLIENT);
        assert_eq!(id.owner(), "anonymous");
        id.tenant = Some("acme".into());
        assert_eq!(id.owner(), "tenant:acme");
    }

    #[test]
    fn roles_parse_and_serialize() {
        assert_eq!(Role::parse(" Operator"), Some(Role::Operator));
        assert_eq!(Role::parse("admin"), None);
        let r = Roles::of(&[Role::Operator, Role::Client]);
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!(["client", "operator"])
        );
    }

    #[test]
    fn messages_match_display() {
        for e in [
            AuthError::Expired,
            AuthError::UnknownKid,
            AuthError::AlgorithmNotAllowed,
        ] {
            assert_eq!(e.to_string(), e.message());
        }
    }
}
