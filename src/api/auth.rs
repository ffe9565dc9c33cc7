//! API-key authentication for the public API.
//!
//! Keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are
//! kept only as SHA-256 digests and compared in constant time against every
//! configured key (no early exit, no length leak). With no key configured,
//! access is open — allowed only in development/testing, where start-up warns
//! loudly; staging and production refuse to start without keys.

use super::AppState;
use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accepted keys, as digests.
#[derive(Clone, Default)]
pub struct KeyRing {
    digests: Vec<[u8; 32]>,
}

/// Who is calling: a key's fingerprint, or the open-access identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable, non-secret id of the caller (used to scope batches and limits).
    pub id: String,
    /// First characters of the key followed by "...", when a key was used.
    pub key_prefix: Option<String>,
}

impl Identity {
    fn anonymous() -> Identity {
        Identity {
            id: "anonymous".into(),
            key_prefix: None,
        }
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyRing {
    /// Builds the ring from plain keys.
    pub fn new(keys: &[String]) -> KeyRing {
        KeyRing {
            digests: keys.iter().map(|k| digest(k)).collect(),
        }
    }

    /// True when no key is configured (open access).
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys; time does not depend on which.
    pub fn accepts(&self, presented: &str) -> bool {
        let d = digest(presented);
        let mut found = subtle::Choice::from(0u8);
        for k in &self.digests {
            found |= k.ct_eq(&d);
        }
        bool::from(found)
    }

    /// Authenticates a request. `Ok(None)` means no credentials were sent.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Identity>, ApiError> {
        let Some((presented, method)) = presented_key(headers)? else {
            return Ok(None);
        };
        if self.is_open() {
            return Ok(Some(Identity::anonymous()));
        }
        if !self.accepts(presented) {
            return Err(ApiError::unauthorized(
                "Invalid API key",
                method,
                true,
                Some(presented.chars().take(8).collect()),
            ));
        }
        let fingerprint: String = digest(presented)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Identity {
            id: format!("key:{fingerprint}"),
            key_prefix: Some(format!(
                "{}...",
                presented.chars().take(8).collect::<String>()
            )),
        }))
    }
}

/// How the reference names the `Authorization: Bearer` method.
const BEARER: &str = "bearer_token";
/// How keel names the `X-API-Key` method.
const X_API_KEY: &str = "x_api_key";

/// The key the client sent, if any, and how. A malformed `Authorization`
/// header is an error, not "no key": the client meant to authenticate.
fn presented_key(headers: &HeaderMap) -> Result<Option<(&str, &'static str)>, ApiError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            ApiError::unauthorized("Invalid Authorization header", BEARER, true, None)
        })?;
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let key = parts.next().map(str::trim).unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized(
                "Invalid Authorization header: expected 'Bearer <api key>'",
                BEARER,
                true,
                None,
            ));
        }
        if key.is_empty() {
            // The reference's clients match on this wording.
            return Err(ApiError::unauthorized(
                "API key required: the Bearer token is empty",
                BEARER,
                false,
                None,
            ));
        }
        return Ok(Some((key, BEARER)));
    }
    if let Some(value) = headers.get("x-api-key") {
        let key = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("Invalid X-API-Key header", X_API_KEY, true, None))?
            .trim();
        if key.is_empty() {
            return Err(ApiError::unauthorized(
                "API key required: the X-API-Key header is empty",
                X_API_KEY,
                false,
                None,
            ));
        }
        return Ok(Some((key, X_API_KEY)));
    }
    Ok(None)
}

/// Extractor for routes that require a key (open access passes as anonymous).
pub struct RequireKey(pub Identity);

impl FromRequestParts<AppState> for RequireKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let environment = state.engine.settings().environment;
        match state
            .keys
            .check(&parts.headers)
            .map_err(|e| e.in_environment(environment))?
        {
            Some(identity) => Ok(RequireKey(identity)),
            None if state.keys.is_open() => Ok(RequireKey(Identity::anonymous())),
            None => Err(ApiError::unauthorized(
                "API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                BEARER,
                false,
                None,
            )
            .in_environment(environment)),
        }
    }
}

/// Extractor for routes where a key is optional — but a key that is sent
/// must be valid.
pub struct OptionalKey(pub Option<Identity>);

impl FromRequestParts<AppState> for OptionalKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let environment = state.engine.settings().environment;
        Ok(OptionalKey(
            state
                .keys
                .check(&parts.headers)
                .map_err(|e| e.in_environment(environment))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn both_header_styles_and_several_keys_work() {
        let ring = KeyRing::new(&["alpha-key-1".into(), "beta-key-2".into()]);
        let a = ring
            .check(&headers("authorization", "Bearer alpha-key-1"))
            .unwrap()
            .unwrap();
        let b = ring
            .check(&headers("x-api-key", "beta-key-2"))
            .unwrap()
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.key_prefix.as_deref(), Some("alpha-ke..."));
        assert!(
            ring.check(&headers("authorization", "bearer beta-key-2"))
                .is_ok()
        );
        assert!(ring.check(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn wrong_keys_and_formats_are_rejected() {
        let ring = KeyRing::new(&["Secret".into()]);
        for (name, value) in [
            ("authorization", "Bearer secret"),
            ("authorization", "InvalidFormat"),
            ("authorization", "Basic U2VjcmV0"),
            ("authorization", "Bearer "),
            ("x-api-key", "nope"),
        ] {
            assert!(
                ring.check(&headers(name, value)).is_err(),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn open_ring_accepts_anything_as_anonymous() {
        let ring = KeyRing::new(&[]);
        assert!(ring.is_open());
        let id = ring
            .check(&headers("x-api-key", "whatever"))
            .unwrap()
            .unwrap();
        assert_eq!(id.id, "anonymous");
    }
}

/// How the operator API authenticates.
#[derive(Clone)]
pub enum InternalAuth {
    /// `INTERNAL_API_KEY` is set: only it is accepted.
    OwnKey(KeyRing),
    /// Development/testing without `INTERNAL_API_KEY`: the public keys (or
    /// open access when there are none).
    PublicKeys(KeyRing),
    /// Staging/production without `INTERNAL_API_KEY`: refused.
    Refused,
}

impl InternalAuth {
    /// The mode for a configuration.
    pub fn from_settings(settings: &crate::config::Settings) -> InternalAuth {
        match (
            &settings.internal_api_key,
            settings.environment.requires_auth(),
        ) {
            (Some(key), _) => InternalAuth::OwnKey(KeyRing::new(std::slice::from_ref(key))),
            (None, false) => InternalAuth::PublicKeys(KeyRing::new(&settings.api_keys)),
            (None, true) => InternalAuth::Refused,
        }
    }
}

/// Extractor for operator routes; carries who is acting (for audit logs).
pub struct OperatorKey(pub Identity);

impl FromRequestParts<AppState> for OperatorKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ring = match &state.internal_auth {
            InternalAuth::OwnKey(ring) | InternalAuth::PublicKeys(ring) => ring,
            InternalAuth::Refused => {
                return Err(ApiError::Forbidden(
                    "the operator API is disabled: set INTERNAL_API_KEY",
                ));
            }
        };
        let environment = state.engine.settings().environment;
        match ring
            .check(&parts.headers)
            .map_err(|e| e.in_environment(environment))?
        {
            Some(identity) => Ok(OperatorKey(identity)),
            None if ring.is_open() => Ok(OperatorKey(Identity::anonymous())),
            None => Err(ApiError::unauthorized(
                "operator key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                BEARER,
                false,
                None,
            )
            .in_environment(environment)),
        }
    }
}
