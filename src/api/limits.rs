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

/// The identity limits apply to: the key's fingerprint when a valid key was
/// sent, else the client address.
fn identity(state: &AppState, request: &Request) -> String {
    let fingerprint = state
        .keys
        .check(request.headers())
        .ok()
        .flatten()
        .and_then(|i| i.id.strip_prefix("key:").map(str::to_string));
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    client_identity(
        fingerprint.as_deref(),
        peer,
        request.headers(),
        state.engine.settings().rate_limit.trust_proxy_headers,
    )
}

/// The identity a request is limited as; the middleware attaches it to
/// every `/v1` request so handlers with their own cost can use it.
#[derive(Debug, Clone)]
pub struct ClientIdentity(pub String);

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
        .check(&identity.0, route, cost)
        .await;
    if decision.allowed {
        Ok(decision)
    } else {
        Err(ApiError::RateLimited(decision))
    }
}

/// Middleware on the `/v1` routes (cost 1; the batch route checks its own
/// cost). [`super::router`] installs it only when the limiter is enabled.
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    if RateLimiter::is_exempt(&route) {
        return next.run(request).await;
    }
    let identity = ClientIdentity(identity(&state, &request));
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
