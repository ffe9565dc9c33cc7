//! Service endpoints that need no key: `/`, `/v1/health`, liveness and
//! readiness, and the reference API's legacy redirects.

use super::AppState;
use super::auth::RequireKey;
use super::json::Json;
use crate::resilience::breaker::BreakerState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The actor tree's health (in `/v1/health` and the operator health).
#[derive(Serialize, ToSchema)]
pub struct ActorsHealth {
    /// Every actor runs.
    pub healthy: bool,
    /// Supervised restarts per actor name.
    pub restarts: BTreeMap<String, u64>,
}

/// A breaker's name and state.
#[derive(Serialize, ToSchema)]
pub struct NamedState {
    /// `provider:operation`.
    pub name: String,
    /// Its state.
    pub state: BreakerState,
}

/// `GET /`: what this server is and where things are.
pub async fn root() -> Json<Value> {
    Json(json!({
        "message": "keel: resilient AI text processing",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "internal_docs": "/internal/docs",
        "endpoints": {
            "health": "/v1/health",
            "liveness": "/v1/health/live",
            "readiness": "/v1/health/ready",
            "auth_status": "/v1/auth/status",
            "operations": "/v1/text_processing/operations",
            "process": "/v1/text_processing/process",
            "batch_process": "/v1/text_processing/batch_process",
            "batch_status": "/v1/text_processing/batch_status/{batch_id}"
        }
    }))
}

/// `GET /v1/health`: overall status with per-component detail. The status
/// and its `reasons` / `checks` come from [`crate::health::evaluate`], the
/// model every health surface shares.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let engine = &state.engine;
    let report = crate::health::evaluate(engine, &state.identity);
    let chain = engine.providers().chain();
    let providers: Vec<Value> = chain
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            json!({
                "name": slot.provider.kind(),
                "model": slot.provider.model(),
                "role": if i == 0 { "primary" } else { "fallback" },
                "actor_alive": slot.actor.as_ref().is_some_and(|a| a.get_status() == ractor::ActorStatus::Running),
                "actor_generation": slot.generation,
            })
        })
        .collect();
    // Breakers that are not letting traffic through normally.
    let tripped: Vec<Value> = engine
        .resilience()
        .breakers()
        .iter()
        .filter_map(|b| {
            let state = b.state();
            matches!(
                state,
                BreakerState::Open | BreakerState::HalfOpen | BreakerState::ForcedOpen
            )
            .then(|| json!({"name": b.name(), "state": state}))
        })
        .collect();
    let cache_redis = engine.cache().redis_status();
    let limiter_redis = engine.rate_limiter().stats().redis;
    let cache_healthy = cache_redis
        .as_ref()
        .is_none_or(|s| s.status != "unavailable");
    Json(json!({
        "status": report.status,
        "timestamp": crate::time::now_rfc3339(),
        "version": env!("CARGO_PKG_VERSION"),
        "ai_model_available": !chain.is_empty(),
        "resilience_healthy": report.resilience_healthy(),
        "cache_healthy": cache_healthy,
        "jobs_durable": engine.jobs().is_durable(),
        "chaos_active": engine.chaos().is_active(),
        "degraded_reasons": report.messages(),
        "reasons": report.reasons,
        "checks": report.checks,
        "components": {
            "actors": {
                "healthy": report.checks.actors.status == crate::health::Status::Healthy,
                "restarts": engine.metrics().all_restarts().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            },
            "providers": providers,
            "circuit_breakers": {
                "total": engine.resilience().breakers().len(),
                "not_closed": tripped,
            },
            "resilience_preset": engine.resilience().config().preset,
            "redis": {
                "configured": engine.settings().redis_url.is_some(),
                "cache": cache_redis,
                "rate_limiter": limiter_redis,
            },
        },
        "uptime_seconds": engine.uptime().as_secs(),
    }))
}

/// `GET /v1/health/live`: 200 while the process answers and the engine is
/// alive; 503 once the engine is dead (its supervisor gave up on a child
/// that kept failing), so an orchestrator restarts the process.
pub async fn live(State(state): State<AppState>) -> Response {
    match state.engine.failure() {
        None => Json(json!({"status": "alive"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "dead", "reason": why})),
        )
            .into_response(),
    }
}

/// `GET /v1/health/ready`: 200 when actors run and the server is not draining.
pub async fn ready(State(state): State<AppState>) -> Response {
    let engine = &state.engine;
    let (status, reason) = if engine.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Some("draining"))
    } else if !engine.actors_alive() {
        (StatusCode::SERVICE_UNAVAILABLE, Some("actors not running"))
    } else {
        (StatusCode::OK, None)
    };
    let body = Json(json!({
        "status": if reason.is_none() { "ready" } else { "not_ready" },
        "reason": reason,
    }));
    let mut response = (status, body).into_response();
    if reason.is_some() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `GET /v1/auth/status`: who the key says you are.
pub async fn auth_status(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
) -> Json<Value> {
    let open = identity.kind == crate::identity::Kind::Anonymous
        && state.identity.is_open(crate::identity::Surface::Public);
    Json(json!({
        "authenticated": true,
        // With no keys the reference reports the key "development".
        "api_key_prefix": identity.key_prefix.clone().or_else(|| open.then(|| "developm...".to_string())),
        // keel's addition: who the credential resolved to (never the secret).
        "identity": &identity,
        "message": if open {
            "Authentication disabled: no API keys configured (development mode)"
        } else {
            "Authentication successful"
        },
    }))
}

/// Permanent redirect from a legacy unversioned path to its `/v1` home.
pub fn legacy_redirect(to: &'static str) -> Response {
    let mut r = (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
    r.headers_mut().insert(
        HeaderName::from_static("x-api-version"),
        HeaderValue::from_static("v1"),
    );
    r
}
