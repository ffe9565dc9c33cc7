//! Service endpoints that need no key: `/`, `/v1/health`, liveness and
//! readiness, and the reference API's legacy redirects.

use super::AppState;
use super::auth::{Identity, RequireKey};
use super::error::ErrorBody;
use super::json::Json;
use crate::providers::ProviderKind;
use crate::redis_link::RedisStatus;
use crate::resilience::breaker::BreakerState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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

/// Body of `GET /`.
#[derive(Serialize, ToSchema)]
pub struct RootResponse {
    /// Service name and tagline.
    pub message: &'static str,
    /// keel's version.
    pub version: &'static str,
    /// Always `v1`.
    pub api_version: &'static str,
    /// Where the Swagger UI is.
    pub docs: &'static str,
    /// Where the OpenAPI document is.
    pub openapi: &'static str,
    /// Where the operator API's Swagger UI is (when enabled).
    pub internal_docs: &'static str,
    /// Endpoint name → path.
    pub endpoints: BTreeMap<&'static str, &'static str>,
}

/// `GET /`: what this server is and where things are.
#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    operation_id = "root",
    summary = "What this server is",
    description = "Name, version and the endpoint map. Not rate limited.",
    responses(
        (status = 200, description = "Service information", body = RootResponse),
        (status = 503),
    )
)]
pub async fn root() -> Json<RootResponse> {
    Json(RootResponse {
        message: "keel: resilient AI text processing",
        version: env!("CARGO_PKG_VERSION"),
        api_version: "v1",
        docs: "/docs",
        openapi: "/openapi.json",
        internal_docs: "/internal/docs",
        endpoints: [
            ("health", "/v1/health"),
            ("liveness", "/v1/health/live"),
            ("readiness", "/v1/health/ready"),
            ("auth_status", "/v1/auth/status"),
            ("operations", "/v1/text_processing/operations"),
            ("process", "/v1/text_processing/process"),
            ("batch_process", "/v1/text_processing/batch_process"),
            (
                "batch_status",
                "/v1/text_processing/batch_status/{batch_id}",
            ),
        ]
        .into_iter()
        .collect(),
    })
}

/// A provider's role in the chain.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderRole {
    /// Tried first.
    Primary,
    /// Tried when those before it fail.
    Fallback,
}

/// One provider of the chain, in `HealthComponents`.
#[derive(Serialize, ToSchema)]
pub struct ProviderHealth {
    /// The provider.
    pub name: ProviderKind,
    /// Its model.
    pub model: String,
    /// Primary or fallback.
    pub role: ProviderRole,
    /// Its actor runs.
    pub actor_alive: bool,
    /// Restarts of its actor so far.
    pub actor_generation: u64,
    /// Its upstream's latest health probe, published by its actor.
    pub upstream: crate::providers::UpstreamHealthView,
}

/// Breakers summary, in `HealthComponents`.
#[derive(Serialize, ToSchema)]
pub struct BreakersHealth {
    /// Breakers in total.
    pub total: usize,
    /// Breakers open, half-open or forced open.
    pub not_closed: Vec<NamedState>,
}

/// Redis summary, in `HealthComponents`.
#[derive(Serialize, ToSchema)]
pub struct RedisHealth {
    /// `REDIS_URL` is set.
    pub configured: bool,
    /// The cache's link, `null` without Redis.
    #[schema(required = true)]
    pub cache: Option<RedisStatus>,
    /// The rate limiter's link, `null` without Redis.
    #[schema(required = true)]
    pub rate_limiter: Option<RedisStatus>,
}

/// `components` of `HealthResponse`.
#[derive(Serialize, ToSchema)]
pub struct HealthComponents {
    /// The actor tree.
    pub actors: ActorsHealth,
    /// The provider chain, primary first.
    pub providers: Vec<ProviderHealth>,
    /// Breakers not letting traffic through normally.
    pub circuit_breakers: BreakersHealth,
    /// The resilience preset in force.
    pub resilience_preset: String,
    /// Redis, when configured.
    pub redis: RedisHealth,
}

/// Body of `GET /v1/health`.
#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// Overall status.
    pub status: crate::health::Status,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// keel's version.
    pub version: &'static str,
    /// At least one provider is configured.
    pub ai_model_available: bool,
    /// Actors run and every breaker is closed.
    pub resilience_healthy: bool,
    /// The cache's Redis tier (if any) is reachable.
    pub cache_healthy: bool,
    /// Jobs are kept in Redis (they survive a restart).
    pub jobs_durable: bool,
    /// A chaos experiment is injecting faults.
    pub chaos_active: bool,
    /// Why the status is not `healthy`, in sentences.
    pub degraded_reasons: Vec<String>,
    /// Every finding, worst first.
    pub reasons: Vec<crate::health::Reason>,
    /// The findings per component.
    pub checks: crate::health::Checks,
    /// Per-component detail.
    pub components: HealthComponents,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// The health report every health route shows (`/v1/health`, and the
/// reference's domain view derived from it).
pub fn report(state: &AppState) -> HealthResponse {
    let engine = &state.engine;
    let report = crate::health::evaluate(engine, &state.identity);
    let chain = engine.providers().chain();
    let providers = chain
        .iter()
        .enumerate()
        .map(|(i, slot)| ProviderHealth {
            name: slot.provider.kind(),
            model: slot.provider.model().to_string(),
            role: if i == 0 {
                ProviderRole::Primary
            } else {
                ProviderRole::Fallback
            },
            actor_alive: slot
                .actor
                .as_ref()
                .is_some_and(|a| a.get_status() == ractor::ActorStatus::Running),
            actor_generation: slot.generation,
            upstream: slot.health.view(),
        })
        .collect();
    // Breakers that are not letting traffic through normally.
    let tripped = engine
        .resilience()
        .breakers()
        .iter()
        .filter_map(|b| {
            let state = b.state();
            matches!(
                state,
                BreakerState::Open | BreakerState::HalfOpen | BreakerState::ForcedOpen
            )
            .then(|| NamedState {
                name: b.name().to_string(),
                state,
            })
        })
        .collect();
    let cache_redis = engine.cache().redis_status();
    let limiter_redis = engine.rate_limiter().stats().redis;
    let cache_healthy = cache_redis
        .as_ref()
        .is_none_or(|s| s.status != "unavailable");
    HealthResponse {
        status: report.status,
        timestamp: crate::time::now_rfc3339(),
        version: env!("CARGO_PKG_VERSION"),
        // A model answers when some provider in the chain is not known to
        // be unreachable (`local`, when in the chain, always is).
        ai_model_available: chain
            .iter()
            .any(|slot| slot.health.reachability() != crate::providers::Reachability::Unreachable),
        resilience_healthy: report.resilience_healthy(),
        cache_healthy,
        jobs_durable: engine.jobs().is_durable(),
        chaos_active: engine.chaos().is_active(),
        degraded_reasons: report.messages(),
        components: HealthComponents {
            actors: ActorsHealth {
                healthy: report.checks.actors.status == crate::health::Status::Healthy,
                restarts: engine.metrics().all_restarts().into_iter().collect(),
            },
            providers,
            circuit_breakers: BreakersHealth {
                total: engine.resilience().breakers().len(),
                not_closed: tripped,
            },
            resilience_preset: engine.resilience().config().preset.clone(),
            redis: RedisHealth {
                configured: engine.settings().redis_url.is_some(),
                cache: cache_redis,
                rate_limiter: limiter_redis,
            },
        },
        reasons: report.reasons,
        checks: report.checks,
        uptime_seconds: engine.uptime().as_secs(),
    }
}

/// `GET /v1/health`: overall status with per-component detail. The status
/// and its `reasons` / `checks` come from [`crate::health::evaluate`], the
/// model every health surface shares.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "service",
    operation_id = "health",
    summary = "Service health",
    description = "Overall status (`healthy`, `degraded`, `unhealthy`) with per-component \
        detail: actors, providers, circuit breakers, Redis. Always 200: read `status`. \
        Not rate limited.",
    responses(
        (status = 200, description = "Health report", body = HealthResponse),
        (status = 503),
    )
)]
pub async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(report(&state))
}

/// Body of `GET /v1/health/live`.
#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"status": "alive"})))]
pub struct LiveResponse {
    /// `alive`, or `dead` (with a 503) once the engine gave up.
    pub status: &'static str,
    /// Why the engine is dead; absent while alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// The schema of a 503 from `/v1/health/live`; never built.
/// The engine is dead (liveness body), or keel is at capacity (error body).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NotAlive<'a> {
    /// The engine is dead.
    Dead(LiveResponse),
    /// At capacity.
    Error(ErrorBody<'a>),
}

/// `GET /v1/health/live`: 200 while the process answers and the engine is
/// alive; 503 once the engine is dead (its supervisor gave up on a child
/// that kept failing), so an orchestrator restarts the process.
#[utoipa::path(
    get,
    path = "/v1/health/live",
    tag = "service",
    operation_id = "live",
    summary = "Liveness probe",
    description = "200 while the process answers; 503 once the engine is dead (its \
        supervisor gave up on a child that kept failing), so an orchestrator restarts the \
        process. Not rate limited.",
    responses(
        (status = 200, description = "Alive", body = LiveResponse),
        (status = 503, description = "The engine is dead (liveness body), or keel is at \
            capacity (error body)", body = inline(NotAlive)),
    )
)]
pub async fn live(State(state): State<AppState>) -> Response {
    match state.engine.failure() {
        None => Json(LiveResponse {
            status: "alive",
            reason: None,
        })
        .into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(LiveResponse {
                status: "dead",
                reason: Some(why),
            }),
        )
            .into_response(),
    }
}

/// Body of `GET /v1/health/ready`.
#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"status": "ready", "reason": null})))]
pub struct ReadyResponse {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `draining` or `actors not running` when not ready, else `null`.
    #[schema(required = true)]
    pub reason: Option<&'static str>,
}

// The schema of a 503 from `/v1/health/ready`; never built.
/// Not ready (readiness body), or keel is at capacity (error body).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NotReady<'a> {
    /// Draining or actors down.
    NotReady(ReadyResponse),
    /// At capacity.
    Error(ErrorBody<'a>),
}

/// `GET /v1/health/ready`: 200 when actors run and the server is not draining.
#[utoipa::path(
    get,
    path = "/v1/health/ready",
    tag = "service",
    operation_id = "ready",
    summary = "Readiness probe",
    description = "200 when the actors run and the server is not draining; 503 with \
        `Retry-After: 1` otherwise. Not rate limited.",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "Not ready (readiness body: draining or actors down), \
            or at capacity (error body)", body = inline(NotReady)),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let engine = &state.engine;
    let (status, reason) = if engine.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Some("draining"))
    } else if !engine.actors_alive() {
        (StatusCode::SERVICE_UNAVAILABLE, Some("actors not running"))
    } else {
        (StatusCode::OK, None)
    };
    let body = Json(ReadyResponse {
        status: if reason.is_none() {
            "ready"
        } else {
            "not_ready"
        },
        reason,
    });
    let mut response = (status, body).into_response();
    if reason.is_some() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Body of `GET /v1/auth/status`.
#[derive(Serialize, ToSchema)]
#[schema(examples(json!({
    "authenticated": true,
    "api_key_prefix": "sk-live-...",
    "message": "Authentication successful",
    "identity": {"id": "key:2c69bc9111c27110", "kind": "static_key", "roles": ["client"],
                 "tenant": null, "limits": null}
})))]
pub struct AuthStatus {
    /// Always `true` (a bad key is a 401).
    pub authenticated: bool,
    /// First 8 characters of the key and `...`; `developm...` with open
    /// access (the reference reports the key as `development`).
    #[schema(required = true)]
    pub api_key_prefix: Option<String>,
    /// Who the credential resolved to (never the secret).
    pub identity: Identity,
    /// Human-readable outcome.
    pub message: &'static str,
}

/// `GET /v1/auth/status`: who the key says you are.
#[utoipa::path(
    get,
    path = "/v1/auth/status",
    tag = "auth",
    operation_id = "auth_status",
    summary = "Check an API key",
    description = "Checks the key and answers who it says you are. With no keys \
        configured (development) every caller is anonymous.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Authenticated", body = AuthStatus),
        (status = 401), (status = 429), (status = 503),
    )
)]
pub async fn auth_status(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
) -> Json<AuthStatus> {
    let open = identity.kind == crate::identity::Kind::Anonymous
        && state.identity.is_open(crate::identity::Surface::Public);
    Json(AuthStatus {
        authenticated: true,
        // With no keys the reference reports the key "development".
        api_key_prefix: identity
            .key_prefix
            .clone()
            .or_else(|| open.then(|| "developm...".to_string())),
        // keel's addition: who the credential resolved to (never the secret).
        identity,
        message: if open {
            "Authentication disabled: no API keys configured (development mode)"
        } else {
            "Authentication successful"
        },
    })
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

/// `GET /health`: the reference's unversioned path.
#[utoipa::path(
    get,
    path = "/health",
    tag = "legacy",
    operation_id = "legacy_health",
    summary = "Redirect to /v1/health",
    description = "Legacy path of the reference API: permanent redirect to `/v1/health`.",
    responses(
        (status = 301, description = "Moved permanently", headers(
            ("Location" = String, description = "`/v1/health`"),
            ("X-API-Version" = String, description = "`v1`"),
        )),
        (status = 503),
    )
)]
#[deprecated = "the reference's unversioned path; use /v1/health"]
pub async fn legacy_health() -> Response {
    legacy_redirect("/v1/health")
}

/// `GET /auth/status`: the reference's unversioned path.
#[utoipa::path(
    get,
    path = "/auth/status",
    tag = "legacy",
    operation_id = "legacy_auth_status",
    summary = "Redirect to /v1/auth/status",
    description = "Legacy path of the reference API: permanent redirect to \
        `/v1/auth/status`.",
    responses(
        (status = 301, description = "Moved permanently", headers(
            ("Location" = String, description = "`/v1/auth/status`"),
            ("X-API-Version" = String, description = "`v1`"),
        )),
        (status = 503),
    )
)]
#[deprecated = "the reference's unversioned path; use /v1/auth/status"]
pub async fn legacy_auth_status() -> Response {
    legacy_redirect("/v1/auth/status")
}
