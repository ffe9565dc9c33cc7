//! Authentication at the HTTP edge: which [`Identity`] a request is, and
//! whether it may use the surface it calls.
//!
//! Credentials come as `Authorization: Bearer <key or JWT>` or `X-API-Key:
//! <key>`; [`crate::identity::Authenticator`] resolves them (static keys in
//! constant time, client keys, JWTs). The resolved identity is put in the
//! request's extensions, so the rate limiter and the handler share one
//! resolution. `/v1` needs the `client` role and `/internal` the
//! `operator` role: no or bad credentials are a 401 (with
//! `WWW-Authenticate: Bearer` and a reason, never the token), a valid
//! identity without the role is a 403. With no key configured for a surface
//! (development/testing only), access is open as the anonymous identity.

use super::AppState;
use super::error::ApiError;
use crate::identity::{AuthError, OperatorMode, Role, Surface};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

pub use crate::identity::Identity;

/// A successful resolution cached in the request's extensions, per surface.
#[derive(Clone)]
pub struct Resolved {
    surface: Surface,
    identity: Option<Identity>,
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

/// The 401 for a refused credential: the reason, and a prefix only for
/// plain keys (a JWT is never echoed, not even its start).
fn refused(error: AuthError, presented: &str, method: &'static str) -> ApiError {
    let prefix = (!crate::identity::jwt::looks_like_jwt(presented))
        .then(|| presented.chars().take(8).collect());
    ApiError::unauthorized(error.message(), method, true, prefix)
}

/// Resolves the request's credentials for `surface`: `Ok(None)` when none
/// were sent (or the surface is open and they did not verify).
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    surface: Surface,
) -> Result<Option<Identity>, ApiError> {
    let Some((presented, method)) = presented_key(headers)? else {
        return Ok(None);
    };
    match state.identity.resolve(surface, presented) {
        Ok(identity) => Ok(Some(identity)),
        Err(_) if state.identity.is_open(surface) => Ok(Some(Identity::anonymous(
            state.identity.open_roles(surface),
        ))),
        Err(error) => Err(refused(error, presented, method)),
    }
}

/// [`authenticate`], reusing (and storing) the resolution in `extensions`.
pub fn authenticate_cached(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &mut http::Extensions,
    surface: Surface,
) -> Result<Option<Identity>, ApiError> {
    if let Some(r) = extensions.get::<Resolved>()
        && r.surface == surface
    {
        return Ok(r.identity.clone());
    }
    let identity = authenticate(state, headers, surface)?;
    extensions.insert(Resolved {
        surface,
        identity: identity.clone(),
    });
    if let Some(i) = &identity {
        extensions.insert(i.clone());
    }
    Ok(identity)
}

/// The identity for a surface, with its role checked; open access passes as anonymous.
fn require(parts: &mut Parts, state: &AppState, surface: Surface) -> Result<Identity, ApiError> {
    let environment = state.engine.settings().environment;
    let (role, what) = match surface {
        Surface::Public => (
            Role::Client,
            "API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        ),
        Surface::Operator => (
            Role::Operator,
            "operator key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        ),
    };
    let identity = match authenticate_cached(state, &parts.headers, &mut parts.extensions, surface)
        .map_err(|e| e.in_environment(environment))?
    {
        Some(identity) => identity,
        None if state.identity.is_open(surface) => {
            Identity::anonymous(state.identity.open_roles(surface))
        }
        None => {
            return Err(
                ApiError::unauthorized(what, BEARER, false, None).in_environment(environment)
            );
        }
    };
    if !identity.roles.has(role) {
        return Err(ApiError::Forbidden(match role {
            Role::Client => "this identity lacks the client role that /v1 needs",
            Role::Operator => "this identity lacks the operator role that /internal needs",
        }));
    }
    Ok(identity)
}

/// Extractor for `/v1` routes that require a key (open access passes as anonymous).
pub struct RequireKey(pub Identity);

impl FromRequestParts<AppState> for RequireKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        require(parts, state, Surface::Public).map(RequireKey)
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
            authenticate_cached(
                state,
                &parts.headers,
                &mut parts.extensions,
                Surface::Public,
            )
            .map_err(|e| e.in_environment(environment))?,
        ))
    }
}

/// Extractor for operator routes; carries who is acting (for the audit trail).
pub struct OperatorKey(pub Identity);

impl FromRequestParts<AppState> for OperatorKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.identity.operator_mode() == OperatorMode::Refused {
            return Err(ApiError::Forbidden(
                "the operator API is disabled: set INTERNAL_API_KEY (or turn on JWT for operator tokens)",
            ));
        }
        require(parts, state, Surface::Operator).map(OperatorKey)
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
    fn both_header_styles_are_read() {
        assert_eq!(
            presented_key(&headers("authorization", "bearer k1")).unwrap(),
            Some(("k1", BEARER))
        );
        assert_eq!(
            presented_key(&headers("x-api-key", " k2 ")).unwrap(),
            Some(("k2", X_API_KEY))
        );
        assert!(presented_key(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn malformed_headers_are_errors() {
        for (name, value) in [
            ("authorization", "InvalidFormat"),
            ("authorization", "Basic U2VjcmV0"),
            ("authorization", "Bearer "),
            ("x-api-key", " "),
        ] {
            assert!(
                presented_key(&headers(name, value)).is_err(),
                "{name}: {value}"
            );
        }
    }
}
