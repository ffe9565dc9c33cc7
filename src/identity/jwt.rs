//! JWT bearer tokens, verified with the `jsonwebtoken` crate.
//!
//! Keys: `JWT_HS256_SECRET` (HS256 only) or the JWKS at `JWT_JWKS_URL`
//! (RSA keys verify RS256 only, P-256 keys ES256 only). The key's type fixes
//! the algorithm — a token's `alg` header only has to agree with it — so an
//! HS256 token "signed" with an RSA public key, `alg: none` and every other
//! algorithm are refused. `iss` must be `JWT_ISSUER`, `aud` must contain
//! `JWT_AUDIENCE`, `exp` and `sub` are required, `exp`/`nbf` get
//! `JWT_LEEWAY_SECONDS` of skew.
//!
//! The JWKS is fetched before keel listens (a failure stops start-up naming
//! `JWT_JWKS_URL`) and refreshed every `JWT_JWKS_REFRESH_SECONDS` by a
//! supervised background task; a failed refresh keeps the last good set and
//! is counted in [`JwtVerifier::status`]. A key set that changes bumps a
//! generation, which invalidates every cached verification (so a removed
//! `kid` stops working at once). A verified token is cached by its SHA-256
//! until `exp` (+ leeway): the hot path of a repeated token is one map read
//! plus the `jti` denylist check.

use super::config::{JwtConfig, JwtKeySource};
use super::denylist::Denylist;
use super::{AuthError, Identity, IdentityLimits, Kind, Role, Roles, now_unix};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Most cached verifications; past it the cache is emptied (bounded memory).
const CACHE_MAX: usize = 100_000;

/// A verification key with the one algorithm it may verify.
struct VerifyKey {
    key: DecodingKey,
    alg: Algorithm,
}

/// The loaded keys.
#[derive(Default)]
struct KeySet {
    /// JWKS keys by `kid`.
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// The HS256 secret, when that is the source.
    hs256: Option<Arc<VerifyKey>>,
}

/// A cached verification.
struct Cached {
    identity: Identity,
    jti: Option<String>,
    /// Refuse after this (Unix seconds): `exp` + leeway.
    until: i64,
    /// The key-set generation it was verified under.
    generation: u64,
}

/// Why the JWKS could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The HTTP request failed or was not a 200.
    #[error("JWT_JWKS_URL={url}: cannot fetch the JWKS: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not a JWKS with at least one usable key.
    #[error("JWT_JWKS_URL={url}: {reason}")]
    Document {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Refresh state, for operators.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JwksStatus {
    /// `hs256` or `jwks`.
    pub source: &'static str,
    /// Loaded `kid`s.
    pub kids: Vec<String>,
    /// Successful loads.
    pub refreshes: u64,
    /// Failed refreshes (the last good set stayed in force).
    pub refresh_failures: u64,
    /// Unix seconds of the last successful load.
    pub last_success: Option<i64>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The latest refresh failed: tokens are verified with the last good set
    /// (a health finding until a refresh succeeds).
    pub failing: bool,
    /// Verified tokens in the cache.
    pub cached_tokens: usize,
}

/// Verifies JWTs; shared by every request (`Arc`), lock-free on the hot path.
pub struct JwtVerifier {
    config: JwtConfig,
    keys: ArcSwap<KeySet>,
    generation: AtomicU64,
    cache: DashMap<[u8; 32], Cached>,
    denylist: Arc<Denylist>,
    http: reqwest::Client,
    refreshes: AtomicU64,
    failures: AtomicU64,
    last_success: std::sync::atomic::AtomicI64,
    last_error: Mutex<Option<String>>,
    failing: std::sync::atomic::AtomicBool,
    /// Woken when a token names an unknown `kid`: the refresher then loads
    /// the JWKS early (at most once per [`EARLY_REFRESH_SPACING`]), so a
    /// rotated-in key works before the next scheduled refresh.
    pub unknown_kid: tokio::sync::Notify,
}

/// Least time between two early (unknown-`kid`) JWKS refreshes.
pub const EARLY_REFRESH_SPACING: Duration = Duration::from_secs(10);

/// The algorithm a JWK's key type fixes, or `None` for keys keel does not use.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    // A key that declares another algorithm is not ours to reinterpret.
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    declared_ok.then_some(alg)
}

fn parse_jwks(url: &str, body: &[u8]) -> Result<KeySet, JwksError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| JwksError::Document {
        url: url.to_string(),
        reason: format!("not JSON: {e}"),
    })?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err(JwksError::Document {
            url: url.to_string(),
            reason: "not a JWKS: no \"keys\" array".into(),
        });
    };
    let mut set = KeySet::default();
    for raw in keys {
        // One odd key (another kty, no kid) must not hide the others.
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), jwk_algorithm(&jwk)) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            set.by_kid.insert(kid, Arc::new(VerifyKey { key, alg }));
        }
    }
    if set.by_kid.is_empty() {
        return Err(JwksError::Document {
            url: url.to_string(),
            reason: "the JWKS has no usable key (RSA or P-256 with a kid)".into(),
        });
    }
    Ok(set)
}

/// Maps a `jsonwebtoken` failure to the reason the caller sees.
fn reason(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => AuthError::AlgorithmNotAllowed,
        _ => AuthError::Malformed,
    }
}

/// The `alg` of a token's header, read without trusting it (so `none` and
/// unknown names get a clear reason instead of "malformed").
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64_url_decode(header)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

/// Minimal unpadded base64url decoding (only the header is read this way).
fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = ((acc << 6) | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Whether a presented credential looks like a JWT (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

impl JwtVerifier {
    /// A verifier with an empty JWKS (HS256: ready at once). Call
    /// [`JwtVerifier::load`] before serving when the source is a JWKS.
    pub fn new(config: JwtConfig, denylist: Arc<Denylist>) -> Result<JwtVerifier, JwksError> {
        let mut set = KeySet::default();
        if let JwtKeySource::Hs256Secret(secret) = &config.source {
            let key =
                DecodingKey::from_secret(secret.as_bytes()).map_err(|e| JwksError::Document {
                    url: "JWT_HS256_SECRET".into(),
                    reason: e.to_string(),
                })?;
            set.hs256 = Some(Arc::new(VerifyKey {
                key,
                alg: Algorithm::HS256,
            }));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| JwksError::Fetch {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(JwtVerifier {
            config,
            keys: ArcSwap::from_pointee(set),
            generation: AtomicU64::new(0),
            cache: DashMap::new(),
            denylist,
            http,
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_success: std::sync::atomic::AtomicI64::new(0),
            last_error: Mutex::new(None),
            failing: std::sync::atomic::AtomicBool::new(false),
            unknown_kid: tokio::sync::Notify::new(),
        })
    }

    /// The JWKS refresh interval, when the source is a JWKS.
    pub fn refresh_interval(&self) -> Option<Duration> {
        match &self.config.source {
            JwtKeySource::Jwks { refresh, .. } => Some(*refresh),
            JwtKeySource::Hs256Secret(_) => None,
        }
    }

    /// Fetches the JWKS and installs it (a no-op for HS256). On failure the
    /// keys in force stay, and the failure is counted.
    pub async fn load(&self) -> Result<(), JwksError> {
        let JwtKeySource::Jwks { url, .. } = &self.config.source else {
            return Ok(());
        };
        match self.fetch(url).await {
            Ok(set) => {
                let changed = {
                    let old = self.keys.load();
                    let mut a: Vec<_> = old.by_kid.keys().collect();
                    let mut b: Vec<_> = set.by_kid.keys().collect();
                    a.sort();
                    b.sort();
                    a != b
                };
                self.keys.store(Arc::new(set));
                if changed {
                    self.generation.fetch_add(1, Relaxed);
                }
                self.refreshes.fetch_add(1, Relaxed);
                self.last_success.store(now_unix(), Relaxed);
                self.failing.store(false, Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Relaxed);
                self.failing.store(true, Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, JwksError> {
        let fail = |reason: String| JwksError::Fetch {
            url: url.to_string(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| fail(e.to_string()))?;
        parse_jwks(url, &body)
    }

    /// Drops cached verifications that have run out.
    pub fn sweep(&self) {
        let now = now_unix();
        let generation = self.generation.load(Relaxed);
        self.cache
            .retain(|_, c| c.until > now && c.generation == generation);
    }

    /// Refresh counters and loaded `kid`s.
    pub fn status(&self) -> JwksStatus {
        let keys = self.keys.load();
        let mut kids: Vec<String> = keys.by_kid.keys().cloned().collect();
        kids.sort();
        let last = self.last_success.load(Relaxed);
        JwksStatus {
            source: if keys.hs256.is_some() {
                "hs256"
            } else {
                "jwks"
            },
            kids,
            refreshes: self.refreshes.load(Relaxed),
            refresh_failures: self.failures.load(Relaxed),
            last_success: (last > 0).then_some(last),
            last_error: self.last_error.lock().ok().and_then(|l| l.clone()),
            failing: self.failing.load(Relaxed),
            cached_tokens: self.cache.len(),
        }
    }

    /// Verifies `token` and maps its claims to an identity.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let generation = self.generation.load(Relaxed);
        if let Some(hit) = self.cache.get(&digest)
            && hit.generation == generation
        {
            if hit.until <= now_unix() {
                return Err(AuthError::Expired);
            }
            if hit
                .jti
                .as_deref()
                .is_some_and(|j| self.denylist.is_revoked(j))
            {
                return Err(AuthError::TokenRevoked);
            }
            return Ok(hit.identity.clone());
        }
        let (identity, jti, exp) = self.verify_uncached(token)?;
        if jti.as_deref().is_some_and(|j| self.denylist.is_revoked(j)) {
            return Err(AuthError::TokenRevoked);
        }
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        let leeway = i64::try_from(self.config.leeway_secs).unwrap_or(0);
        self.cache.insert(
            digest,
            Cached {
                identity: identity.clone(),
                jti,
                until: exp.saturating_add(leeway),
                generation,
            },
        );
        Ok(identity)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Identity, Option<String>, i64), AuthError> {
        let alg = header_alg(token).ok_or(AuthError::Malformed)?;
        let alg = match alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "HS256" => Algorithm::HS256,
            _ => return Err(AuthError::AlgorithmNotAllowed),
        };
        let header = jsonwebtoken::decode_header(token).map_err(|e| reason(e.kind()))?;
        let keys = self.keys.load();
        let key = match &keys.hs256 {
            Some(hs) => hs.clone(),
            None => {
                if keys.by_kid.is_empty() {
                    return Err(AuthError::NoKeys);
                }
                match &header.kid {
                    Some(kid) => match keys.by_kid.get(kid) {
                        Some(key) => key.clone(),
                        None => {
                            self.unknown_kid.notify_one();
                            return Err(AuthError::UnknownKid);
                        }
                    },
                    None if keys.by_kid.len() == 1 => keys
                        .by_kid
                        .values()
                        .next()
                        .cloned()
                        .ok_or(AuthError::MissingKid)?,
                    None => return Err(AuthError::MissingKid),
                }
            }
        };
        // The key fixes the algorithm; the header only has to agree.
        if alg != key.alg {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| reason(e.kind()))?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(AuthError::MissingClaim)?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(AuthError::MissingClaim)?;
        let roles = match claims.get(&self.config.roles_claim) {
            None => Roles::CLIENT,
            Some(Value::String(s)) => Roles::of(
                &s.split_whitespace()
                    .filter_map(Role::parse)
                    .collect::<Vec<_>>(),
            ),
            Some(Value::Array(items)) => Roles::of(
                &items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(Role::parse)
                    .collect::<Vec<_>>(),
            ),
            Some(_) => Roles::default(),
        };
        let tenant = self
            .config
            .tenant_claim
            .as_ref()
            .and_then(|c| claims.get(c))
            .and_then(Value::as_str)
            .map(str::to_string);
        let per_minute = claims
            .get("rate_limit_per_minute")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .map(str::to_string);
        let identity = Identity {
            id: format!("jwt:{sub}"),
            kind: Kind::Jwt,
            roles,
            tenant,
            limits: per_minute.map(|n| IdentityLimits {
                rate_limit_per_minute: Some(n),
            }),
            key_prefix: None,
        };
        Ok((identity, jti, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(
            JwtConfig {
                source: JwtKeySource::Hs256Secret(SECRET.into()),
                issuer: "https://issuer.test".into(),
                audience: "keel".into(),
                leeway_secs: 5,
                roles_claim: "roles".into(),
                tenant_claim: Some("org".into()),
            },
            Arc::new(Denylist::new(None)),
        )
        .unwrap()
    }

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({"sub": "alice", "iss": "https://issuer.test", "aud": "keel", "exp": now_unix() + 600, "roles": ["operator", "client"], "org": "acme"})
    }

    #[test]
    fn valid_token_maps_roles_and_tenant_and_is_cached() {
        let v = verifier();
        let t = token(claims());
        let id = v.verify(&t).unwrap();
        assert_eq!(id.id, "jwt:alice");
        assert_eq!(id.roles, Roles::BOTH);
        assert_eq!(id.tenant.as_deref(), Some("acme"));
        assert_eq!(v.status().cached_tokens, 1);
        assert_eq!(v.verify(&t).unwrap(), id);
    }

    #[test]
    fn reasons() {
        let v = verifier();
        let mut c = claims();
        c["exp"] = json!(now_unix() - 60);
        assert_eq!(v.verify(&token(c)).unwrap_err(), AuthError::Expired);
        let mut c = claims();
        c["nbf"] = json!(now_unix() + 600);
        assert_eq!(v.verify(&token(c)).unwrap_err(), AuthError::NotYetValid);
        let mut c = claims();
        c["iss"] = json!("other");
        assert_eq!(v.verify(&token(c)).unwrap_err(), AuthError::WrongIssuer);
        let mut c = claims();
        c["aud"] = json!("other");
        assert_eq!(v.verify(&token(c)).unwrap_err(), AuthError::WrongAudience);
        assert_eq!(v.verify("a.b.c").unwrap_err(), AuthError::Malformed);
        // alg none: header {"alg":"none"} and an empty signature.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(v.verify(none).unwrap_err(), AuthError::AlgorithmNotAllowed);
    }

    #[tokio::test]
    async fn revoked_jti_is_refused_even_when_cached() {
        let deny = Arc::new(Denylist::new(None));
        let v = JwtVerifier::new(verifier().config.clone(), deny.clone()).unwrap();
        let mut c = claims();
        c["jti"] = json!("t-1");
        let t = token(c);
        assert!(v.verify(&t).is_ok());
        deny.revoke("t-1", now_unix() + 600).await.unwrap();
        assert_eq!(v.verify(&t).unwrap_err(), AuthError::TokenRevoked);
    }

    #[test]
    fn base64url() {
        assert_eq!(
            base64_url_decode("eyJhbGciOiJub25lIn0").unwrap(),
            br#"{"alg":"none"}"#
        );
    }
}
