//! Resolving a presented credential to an [`Identity`] for one surface.
//!
//! Order: static keys of that surface (constant-time, as before), then
//! `keel_…` client keys, then JWTs (when configured). The stores refresh
//! from Redis in supervised background tasks that end when the
//! authenticator is dropped.

use super::IdentityConfig;
use super::audit::AuditLog;
use super::denylist::Denylist;
use super::jwt::{JwksError, JwtVerifier, looks_like_jwt};
use super::keys::{ClientKeys, SECRET_PREFIX};
use super::{AuthError, Identity, Kind, Roles};
use crate::env::Environment;
use crate::redis_link::RedisLink;
use crate::redis_link::RedisLinkOptions;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Which API a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/v1`: needs the `client` role.
    Public,
    /// `/internal`: needs the `operator` role.
    Operator,
}

/// What the authenticator reads from the process settings
/// (`crate::config::Settings::authenticator` builds it). Borrowed pieces
/// rather than the whole `Settings`, so identity does not depend on
/// `crate::config`, which assembles the [`IdentityConfig`].
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatorSettings<'a> {
    /// `ENVIRONMENT`: staging and production require keys.
    pub environment: Environment,
    /// `API_KEY` and `ADDITIONAL_API_KEYS`.
    pub api_keys: &'a [String],
    /// `INTERNAL_API_KEY`.
    pub internal_api_key: Option<&'a str>,
    /// `REDIS_URL`, for the shared key store and denylist.
    pub redis_url: Option<&'a str>,
    /// Redis timeouts and cool-off.
    pub redis: RedisLinkOptions,
    /// JWT, audit and refresh settings.
    pub identity: &'a IdentityConfig,
}

/// How the operator API authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorMode {
    /// `INTERNAL_API_KEY` is set: it (and operator client keys / JWTs) are accepted.
    OwnKey,
    /// Development/testing without `INTERNAL_API_KEY`: the public keys act
    /// as operators too (open access when there are none).
    PublicKeys,
    /// Staging/production without `INTERNAL_API_KEY` but with JWT on: only
    /// operator JWTs and operator client keys.
    TokensOnly,
    /// Staging/production without `INTERNAL_API_KEY` or JWT: refused (403).
    Refused,
}

/// Why identity could not start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityStartError {
    /// The JWKS could not be loaded.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// `REDIS_URL` could not be used.
    #[error("REDIS_URL: {0}")]
    Redis(String),
}

/// One static key: its digest and the roles it grants on its surface.
struct StaticKey {
    digest: [u8; 32],
}

/// Resolves credentials; one per process, shared by every request.
pub struct Authenticator {
    public_keys: Vec<StaticKey>,
    internal_key: Option<StaticKey>,
    operator_mode: OperatorMode,
    /// Client keys issued at runtime.
    pub keys: Arc<ClientKeys>,
    /// Revoked JWT ids.
    pub denylist: Arc<Denylist>,
    /// JWT verification, when on.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// The operator audit trail.
    pub audit: AuditLog,
    refresh: Duration,
    /// Restarts of the background refreshers (each logged).
    pub task_restarts: Arc<AtomicU64>,
    /// The link of the shared key store and denylist, when Redis is set.
    redis: Option<Arc<RedisLink>>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn fingerprint(key: &str) -> String {
    digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Authenticator {
    /// Builds the authenticator without network I/O: JWKS keys are loaded by
    /// [`Authenticator::start`]. Used directly by router-level tests.
    pub fn new(settings: AuthenticatorSettings<'_>) -> Result<Authenticator, IdentityStartError> {
        let redis = match settings.redis_url {
            Some(url) => Some(Arc::new(
                RedisLink::new(url, identity_link_options(settings.redis))
                    .map_err(|e| IdentityStartError::Redis(e.to_string()))?,
            )),
            None => None,
        };
        let denylist = Arc::new(Denylist::new(redis.clone()));
        let jwt = match &settings.identity.jwt {
            Some(config) => Some(Arc::new(JwtVerifier::new(
                config.clone(),
                denylist.clone(),
            )?)),
            None => None,
        };
        let operator_mode = match (
            settings.internal_api_key,
            settings.environment.requires_auth(),
            jwt.is_some(),
        ) {
            (Some(_), _, _) => OperatorMode::OwnKey,
            (None, false, _) => OperatorMode::PublicKeys,
            (None, true, true) => OperatorMode::TokensOnly,
            (None, true, false) => OperatorMode::Refused,
        };
        Ok(Authenticator {
            public_keys: settings
                .api_keys
                .iter()
                .map(|k| StaticKey { digest: digest(k) })
                .collect(),
            internal_key: settings
                .internal_api_key
                .map(|k| StaticKey { digest: digest(k) }),
            operator_mode,
            keys: Arc::new(ClientKeys::new(redis.clone())),
            denylist,
            jwt,
            audit: AuditLog::new(settings.identity.audit_capacity),
            refresh: settings.identity.refresh,
            task_restarts: Arc::new(AtomicU64::new(0)),
            redis,
        })
    }

    /// Builds the authenticator, loads the JWKS (a failure stops start-up,
    /// naming `JWT_JWKS_URL`) and the shared key store, and starts the
    /// background refreshers.
    pub async fn start(
        settings: AuthenticatorSettings<'_>,
    ) -> Result<Arc<Authenticator>, IdentityStartError> {
        let auth = Arc::new(Authenticator::new(settings)?);
        if let Some(jwt) = &auth.jwt {
            jwt.load().await?;
        }
        if let Err(error) = auth.keys.refresh().await {
            // Redis being down must not stop keel: keys appear at the next refresh.
            tracing::warn!(%error, "client keys not loaded from Redis yet");
        }
        auth.spawn_refreshers();
        Ok(auth)
    }

    fn spawn_refreshers(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = self.refresh;
        super::supervise(
            "identity-store-refresh",
            self.task_restarts.clone(),
            move || {
                let weak = weak.clone();
                async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let Some(auth) = weak.upgrade() else { return };
                        if let Err(error) = auth.keys.refresh().await {
                            tracing::debug!(%error, "client key refresh failed; keeping the local view");
                        }
                        if let Err(error) = auth.denylist.refresh().await {
                            tracing::debug!(%error, "jti denylist refresh failed; keeping the local view");
                        }
                        if let Some(jwt) = &auth.jwt {
                            jwt.sweep();
                        }
                    }
                }
            },
        );
        let Some(interval) = self.jwt.as_ref().and_then(|j| j.refresh_interval()) else {
            return;
        };
        let weak = Arc::downgrade(self);
        super::supervise("jwks-refresh", self.task_restarts.clone(), move || {
            let weak = weak.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await; // loaded at start-up
                let mut last_early: Option<tokio::time::Instant> = None;
                loop {
                    let Some(jwt) = weak.upgrade().and_then(|a| a.jwt.clone()) else {
                        return;
                    };
                    let early = async {
                        jwt.unknown_kid.notified().await;
                        if let Some(at) = last_early {
                            tokio::time::sleep_until(at + super::jwt::EARLY_REFRESH_SPACING).await;
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = early => last_early = Some(tokio::time::Instant::now()),
                    }
                    drop(jwt);
                    let Some(auth) = weak.upgrade() else { return };
                    let Some(jwt) = &auth.jwt else { return };
                    if let Err(error) = jwt.load().await {
                        tracing::warn!(%error, "JWKS refresh failed; keeping the last good key set");
                    }
                }
            }
        });
    }

    /// The shared key store's Redis link (for the health verdict), when
    /// `REDIS_URL` is set.
    pub fn redis_status(&self) -> Option<crate::redis_link::RedisStatus> {
        self.redis.as_ref().map(|r| r.status())
    }

    /// How the operator API authenticates.
    pub fn operator_mode(&self) -> OperatorMode {
        self.operator_mode
    }

    /// True when `surface` is open (no key configured for it): a request
    /// without valid credentials then acts as [`Identity::anonymous`].
    pub fn is_open(&self, surface: Surface) -> bool {
        match surface {
            Surface::Public => self.public_keys.is_empty(),
            Surface::Operator => {
                self.operator_mode == OperatorMode::PublicKeys && self.public_keys.is_empty()
            }
        }
    }

    /// The roles open access grants on `surface`.
    pub fn open_roles(&self, surface: Surface) -> Roles {
        match surface {
            Surface::Public if self.operator_mode == OperatorMode::PublicKeys => Roles::BOTH,
            Surface::Public => Roles::CLIENT,
            Surface::Operator => Roles::BOTH,
        }
    }

    /// The static keys valid on `surface`, and the roles they grant.
    fn statics(&self, surface: Surface) -> (Vec<&StaticKey>, Roles) {
        let public_roles = if self.operator_mode == OperatorMode::PublicKeys {
            Roles::BOTH
        } else {
            Roles::CLIENT
        };
        match (surface, self.operator_mode) {
            (Surface::Public, _) => (self.public_keys.iter().collect(), public_roles),
            (Surface::Operator, OperatorMode::OwnKey) => {
                (self.internal_key.iter().collect(), Roles::OPERATOR)
            }
            (Surface::Operator, OperatorMode::PublicKeys) => {
                (self.public_keys.iter().collect(), public_roles)
            }
            (Surface::Operator, _) => (Vec::new(), Roles::OPERATOR),
        }
    }

    /// Resolves `presented` on `surface`. The caller checks the role.
    pub fn resolve(&self, surface: Surface, presented: &str) -> Result<Identity, AuthError> {
        let (statics, roles) = self.statics(surface);
        if !statics.is_empty() {
            let d = digest(presented);
            let mut found = subtle::Choice::from(0u8);
            for k in &statics {
                found |= k.digest.ct_eq(&d);
            }
            if bool::from(found) {
                return Ok(Identity {
                    id: format!("key:{}", fingerprint(presented)),
                    kind: Kind::StaticKey,
                    roles,
                    tenant: None,
                    limits: None,
                    key_prefix: Some(format!(
                        "{}...",
                        presented.chars().take(8).collect::<String>()
                    )),
                });
            }
        }
        if presented.starts_with(SECRET_PREFIX) {
            return self
                .keys
                .authenticate(presented)
                .unwrap_or(Err(AuthError::UnknownKey));
        }
        if let Some(jwt) = &self.jwt
            && looks_like_jwt(presented)
        {
            return jwt.verify(presented);
        }
        Err(AuthError::UnknownKey)
    }

    /// The static keys for listings: `(identity id, roles, which variable)`.
    pub fn static_key_listing(&self) -> Vec<StaticKeyView> {
        let (_, public_roles) = self.statics(Surface::Public);
        let view = |digest: &[u8], name, roles| StaticKeyView {
            id: format!(
                "key:{}",
                digest[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            kind: Kind::StaticKey,
            name,
            roles,
            revocable: false,
            note: "set in the environment; change it there and restart to revoke",
        };
        let mut out: Vec<StaticKeyView> = self
            .public_keys
            .iter()
            .map(|k| view(&k.digest, "API_KEY / ADDITIONAL_API_KEYS", public_roles))
            .collect();
        if let Some(k) = &self.internal_key {
            out.push(view(&k.digest, "INTERNAL_API_KEY", Roles::OPERATOR));
        }
        out
    }
}

/// A key from the environment, as `GET /internal/keys` lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StaticKeyView {
    /// Its identity id (`key:` and a fingerprint).
    pub id: String,
    /// Always `static_key`.
    pub kind: Kind,
    /// The variable it comes from.
    pub name: &'static str,
    /// The roles it grants.
    #[schema(value_type = Vec<super::Role>)]
    pub roles: Roles,
    /// Always false: change the environment instead.
    pub revocable: bool,
    /// How to revoke it.
    pub note: &'static str,
}

/// The identity store's own link options: a revocation must reach every
/// instance within a second, so a failed refresh may not cool off for the
/// usual 2 s (at most 250 ms here), and a slow first connect gets 100 ms.
fn identity_link_options(
    base: crate::redis_link::RedisLinkOptions,
) -> crate::redis_link::RedisLinkOptions {
    crate::redis_link::RedisLinkOptions {
        timeout: base.timeout.max(Duration::from_millis(100)),
        cooloff: base.cooloff.min(Duration::from_millis(250)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::env::MapEnv;

    fn auth(vars: &[(&str, &str)]) -> Authenticator {
        Authenticator::new(
            Settings::from_source(&MapEnv::new(vars))
                .unwrap()
                .authenticator(),
        )
        .unwrap()
    }

    #[test]
    fn static_keys_keep_their_surfaces() {
        let a = auth(&[("API_KEY", "pub"), ("INTERNAL_API_KEY", "ops")]);
        assert_eq!(a.operator_mode(), OperatorMode::OwnKey);
        let p = a.resolve(Surface::Public, "pub").unwrap();
        assert_eq!((p.kind, p.roles), (Kind::StaticKey, Roles::CLIENT));
        assert!(p.id.starts_with("key:") && !p.id.contains("pub"));
        // A key on the other surface is unknown there (401 as before), not a 403.
        assert_eq!(
            a.resolve(Surface::Operator, "pub").unwrap_err(),
            AuthError::UnknownKey
        );
        assert_eq!(
            a.resolve(Surface::Public, "ops").unwrap_err(),
            AuthError::UnknownKey
        );
        assert_eq!(
            a.resolve(Surface::Operator, "ops").unwrap().roles,
            Roles::OPERATOR
        );
        assert_eq!(
            a.resolve(Surface::Public, "keel_nope").unwrap_err(),
            AuthError::UnknownKey
        );
        assert!(!a.is_open(Surface::Public) && !a.is_open(Surface::Operator));
    }

    #[test]
    fn development_without_internal_key_uses_public_keys_and_open_access() {
        let a = auth(&[("API_KEY", "pub")]);
        assert_eq!(a.operator_mode(), OperatorMode::PublicKeys);
        assert_eq!(
            a.resolve(Surface::Operator, "pub").unwrap().roles,
            Roles::BOTH
        );
        let open = auth(&[]);
        assert!(open.is_open(Surface::Public) && open.is_open(Surface::Operator));
        assert_eq!(open.open_roles(Surface::Operator), Roles::BOTH);
    }

    #[test]
    fn production_without_internal_key_is_refused_unless_jwt_is_on() {
        let a = auth(&[("API_KEY", "pub"), ("ENVIRONMENT", "production")]);
        assert_eq!(a.operator_mode(), OperatorMode::Refused);
        let a = auth(&[
            ("API_KEY", "pub"),
            ("ENVIRONMENT", "production"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]);
        assert_eq!(a.operator_mode(), OperatorMode::TokensOnly);
        assert_eq!(
            a.resolve(Surface::Operator, "pub").unwrap_err(),
            AuthError::UnknownKey
        );
    }
}
