//! Rate limiting at the HTTP edge: every `/v1` request is checked against
//! the caller's limits before it is validated or run, and every limited
//! response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset`; a refused one is a 429 with `Retry-After` and the
//! common error body. A batch costs as many units as it has items, so its
//! handler checks with that cost itself (see [`check`]).

use super::AppState;
use super::error::ApiError;
use crate::rate_limit::{Decision, RateLimiter, client_identity};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The batch route, whose cost is its item count.
pub const BATCH_ROUTE: &str = "/v1/text_processing/batch_process";

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Adds the `X-RateLimit-*` headers of `decision` (when it came from a limiter).
pub fn add_headers(headers: &mut HeaderMap, decision: &Decision) {
    if !decision.is_limited() {
        return;
    }
    headers.insert(&LIMIT, HeaderValue::from(decision.limit));
    headers.insert(&REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(&RESET, HeaderValue::from(decision.reset_secs));
}

/// The identity limits apply to: [`crate::identity::Identity::owner`] when
/// valid credentials were sent (`key:<fingerprint>` for a static key, as
/// before; `client_key:<id>`, `jwt:<sub>` or `tenant:<t>` otherwise), else
/// the client address; with the identity's own per-minute limit, if any.
fn identity(state: &AppState, request: &mut http::request::Parts) -> ClientIdentity {
    let resolved = super::auth::authenticate_cached(
        state,
        &request.headers,
        &mut request.extensions,
        crate::identity::Surface::Public,
    )
    .ok()
    .flatten()
    .filter(|i| i.kind != crate::identity::Kind::Anonymous);
    let peer = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let per_minute = resolved.as_ref().and_then(|i| i.rate_limit_per_minute());
    let key = match resolved {
        Some(i) => match i.id.strip_prefix("key:") {
            Some(fingerprint) if i.tenant.is_none() => client_identity(
                Some(fingerprint),
                peer,
                &request.headers,
                state.engine.settings().rate_limit.trust_proxy_headers,
            ),
            _ => i.owner(),
        },
        None => client_identity(
            None,
            peer,
            &request.headers,
            state.engine.settings().rate_limit.trust_proxy_headers,
        ),
    };
    ClientIdentity { key, per_minute }
}

/// The identity a request is limited as; the middleware attaches it to
/// every `/v1` request so handlers with their own cost can use it.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// What the counters key on (never a secret).
    pub key: String,
    /// The identity's own per-minute limit, replacing the configured one.
    pub per_minute: Option<u32>,
}

/// Checks `cost` units for `identity` on `route`.
pub async fn check(
    state: &AppState,
    identity: &ClientIdentity,
    route: &str,
    cost: u32,
) -> Result<Decision, ApiError> {
    let decision = state
        .engine
        .rate_limiter()
        .check_with(&identity.key, route, cost, identity.per_minute)
        .await;
    if decision.allowed {
        Ok(decision)
    } else {
        Err(ApiError::RateLimited(decision))
    }
}

/// Middleware on the `/v1` routes (cost 1; the batch route checks its own
/// cost). [`super::router`] installs it only when the limiter is enabled.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    if RateLimiter::is_exempt(&route) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let identity = identity(&state, &mut parts);
    let mut request = Request::from_parts(parts, body);
    if route == BATCH_ROUTE {
        request.extensions_mut().insert(identity);
        return next.run(request).await;
    }
    match check(&state, &identity, &route, 1).await {
        Ok(decision) => {
            let mut response = next.run(request).await;
            add_headers(response.headers_mut(), &decision);
            response
        }
        Err(e) => e.into_response(),
    }
}
