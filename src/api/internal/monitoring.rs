//! Monitoring routes: component health with system figures, and the JSON
//! metrics summary.

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::json::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use sysinfo::{Disks, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};
use utoipa::ToSchema;

/// Body of `GET /internal/monitoring/health`: the shared health verdict
/// with component detail and system figures.
#[derive(Serialize, ToSchema)]
pub struct MonitoringHealth {
    /// The verdict (the model every health surface shares).
    pub status: crate::health::Status,
    /// Every finding, worst first.
    pub reasons: Vec<crate::health::Reason>,
    /// The findings per component.
    pub checks: crate::health::Checks,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Per-component detail.
    pub components: MonitoringComponents,
    /// Host and process figures; `{"error": …}` when the platform cannot be read.
    pub system: SystemReport,
}

/// `components` of `MonitoringHealth`.
#[derive(Serialize, ToSchema)]
pub struct MonitoringComponents {
    /// The actor tree.
    pub actors: crate::api::health::ActorsHealth,
    /// Every configured provider with its actor's description (`null` when
    /// the actor did not answer).
    pub providers: Vec<ProviderActor>,
    /// Every breaker's state.
    pub circuit_breakers: Vec<crate::api::health::NamedState>,
    /// The resilience preset in force.
    pub resilience_preset: String,
    /// As `GET /internal/cache/metrics`.
    pub cache: crate::cache::CacheStats,
    /// As `GET /internal/rate-limits`.
    pub rate_limiter: crate::rate_limit::RateLimitStats,
    /// The identity stores and the JWT key set.
    pub identity: IdentityHealth,
}

/// A provider and its actor, in `MonitoringComponents`.
#[derive(Serialize, ToSchema)]
pub struct ProviderActor {
    /// The provider.
    pub name: crate::providers::ProviderKind,
    /// Its actor's description; `null` when the actor did not answer.
    #[schema(required = true)]
    pub actor: Option<crate::actors::provider::ProviderInfo>,
}

/// The identity part of `MonitoringComponents`.
#[derive(Serialize, ToSchema)]
pub struct IdentityHealth {
    /// `redis` or `memory`.
    pub client_key_store: &'static str,
    /// `redis` or `memory`.
    pub jti_denylist_store: &'static str,
    /// Revoked `jti`s held by this instance.
    pub revoked_jtis: usize,
    /// The JWT key set's state; `null` when JWT is off.
    #[schema(required = true)]
    pub jwt: Option<crate::identity::jwt::JwksStatus>,
    /// Restarts of the identity background tasks.
    pub task_restarts: u64,
}

/// `system` of `MonitoringHealth`: the figures, or why there are none.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SystemReport {
    /// The figures.
    Figures(SystemFigures),
    /// The platform could not be read.
    Unavailable {
        /// Why.
        error: String,
    },
}

/// Host and process figures; a figure the platform cannot give is `null`.
#[derive(Serialize, ToSchema)]
pub struct SystemFigures {
    /// Logical CPUs.
    pub cpu_count: usize,
    /// 1, 5 and 15 minute load averages.
    #[schema(required = true)]
    pub load_average: Option<LoadAverage>,
    /// Host memory, bytes.
    pub memory_total_bytes: u64,
    /// Host memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Every disk's size, bytes.
    pub disk_total_bytes: u64,
    /// Every disk's free space, bytes.
    pub disk_available_bytes: u64,
    /// This process's resident memory, bytes.
    #[schema(required = true)]
    pub process_rss_bytes: Option<u64>,
    /// This process's CPU use, percent of one CPU.
    #[schema(required = true)]
    pub process_cpu_percent: Option<f32>,
}

/// Load averages.
#[derive(Serialize, ToSchema)]
pub struct LoadAverage {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
}

/// System figures via sysinfo, gathered on the blocking pool (they read
/// /proc). A figure the platform cannot give is `null`.
fn system_figures() -> SystemReport {
    let mut sys = match System::new_with_specifics(RefreshKind::nothing()) {
        Ok(sys) => sys,
        Err(e) => {
            return SystemReport::Unavailable {
                error: e.to_string(),
            };
        }
    };
    sys.refresh_memory();
    sys.refresh_cpu_usage();
    let pid = sysinfo::get_current_pid().ok();
    if let Some(pid) = pid {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
    }
    let process = pid.and_then(|p| sys.process(p));
    let (disk_total, disk_free) = Disks::new_with_refreshed_list()
        .map(|disks| {
            disks.iter().fold((0u64, 0u64), |(t, f), d| {
                (t + d.total_space(), f + d.available_space())
            })
        })
        .unwrap_or((0, 0));
    let load = System::load_average().ok();
    SystemReport::Figures(SystemFigures {
        cpu_count: sys.cpus().len(),
        load_average: load.map(|l| LoadAverage {
            one: l.one,
            five: l.five,
            fifteen: l.fifteen,
        }),
        memory_total_bytes: sys.total_memory(),
        memory_used_bytes: sys.used_memory(),
        disk_total_bytes: disk_total,
        disk_available_bytes: disk_free,
        process_rss_bytes: process.map(|p| p.memory()),
        process_cpu_percent: process.map(|p| p.cpu_usage()),
    })
}

/// `GET /internal/monitoring/health`: the shared health verdict
/// ([`crate::health::evaluate`]) with component detail and system figures.
#[utoipa::path(
    get,
    path = "/internal/monitoring/health",
    tag = "monitoring",
    operation_id = "monitoring_health",
    summary = "Detailed health",
    description = "Component health with system figures (CPU, memory, disk, load).",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Health report", body = MonitoringHealth),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<MonitoringHealth>, ApiError> {
    let engine = &state.engine;
    let system = tokio::task::spawn_blocking(system_figures)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut providers = Vec::new();
    for kind in engine.providers().kinds() {
        providers.push(ProviderActor {
            name: kind,
            actor: engine.describe_provider(kind).await,
        });
    }
    let breakers = engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| crate::api::health::NamedState {
            name: b.name().to_string(),
            state: b.state(),
        })
        .collect();
    let report = crate::health::evaluate(engine, &state.identity);
    Ok(Json(MonitoringHealth {
        status: report.status,
        reasons: report.reasons,
        timestamp: crate::time::now_rfc3339(),
        uptime_seconds: engine.uptime().as_secs(),
        components: MonitoringComponents {
            actors: crate::api::health::ActorsHealth {
                healthy: report.checks.actors.status == crate::health::Status::Healthy,
                restarts: engine.metrics().all_restarts().into_iter().collect(),
            },
            providers,
            circuit_breakers: breakers,
            resilience_preset: engine.resilience().config().preset.clone(),
            cache: engine.cache().stats().await,
            rate_limiter: engine.rate_limiter().stats(),
            identity: IdentityHealth {
                client_key_store: state.identity.keys.backend(),
                jti_denylist_store: state.identity.denylist.backend(),
                revoked_jtis: state.identity.denylist.len(),
                jwt: state.identity.jwt.as_ref().map(|j| j.status()),
                task_restarts: state.identity.task_restarts.load(Relaxed),
            },
        },
        checks: report.checks,
        system,
    }))
}

/// One route's traffic in `MetricsSummary`.
#[derive(Serialize, ToSchema)]
pub struct RouteSummary {
    /// The matched route.
    pub route: String,
    /// Requests served.
    pub requests: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// 1 − error_rate.
    pub success_rate: f64,
    /// Errors / requests.
    pub error_rate: f64,
    /// Average since start.
    pub requests_per_minute_avg: f64,
    /// Latency percentiles.
    pub latency: crate::metrics::LatencySummary,
}

/// Body of `GET /internal/metrics/summary`.
#[derive(Serialize, ToSchema)]
pub struct MetricsSummary {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Jobs started in the last minute.
    pub requests_per_minute: f64,
    /// Per route: requests, errors, rates, latency.
    pub routes: Vec<RouteSummary>,
    /// Per operation figures.
    pub operations: Vec<crate::actors::metrics::OperationSnapshot>,
    /// Per provider figures.
    pub providers: Vec<crate::actors::metrics::ProviderSnapshot>,
    /// Resilience counters (the registry's, serialised as they stand).
    #[serde(serialize_with = "resilience_counters")]
    #[schema(value_type = crate::metrics::ResilienceCounters)]
    pub resilience: std::sync::Arc<crate::metrics::Metrics>,
    /// `[actor name, restarts]` pairs.
    #[schema(value_type = Vec<(String, u64)>)]
    pub actor_restarts: Vec<(String, u64)>,
}

fn resilience_counters<S: serde::Serializer>(
    metrics: &std::sync::Arc<crate::metrics::Metrics>,
    s: S,
) -> Result<S::Ok, S::Error> {
    metrics.resilience.serialize(s)
}

/// `GET /internal/metrics/summary`: per route and per operation traffic.
#[utoipa::path(
    get,
    path = "/internal/metrics/summary",
    tag = "monitoring",
    operation_id = "metrics_summary",
    summary = "Metrics summary (JSON)",
    description = "Per route and per operation traffic, latency, error rates, provider \
        figures and actor restarts.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Summary", body = MetricsSummary),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<MetricsSummary>, ApiError> {
    let engine = &state.engine;
    let snapshot = engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let uptime_min = (engine.uptime().as_secs_f64() / 60.0).max(1.0 / 60.0);
    let routes = engine
        .metrics()
        .routes()
        .into_iter()
        .map(|(route, s)| {
            let requests = s.requests.load(Relaxed);
            let errors = s.client_errors.load(Relaxed) + s.server_errors.load(Relaxed);
            RouteSummary {
                route,
                requests,
                client_errors: s.client_errors.load(Relaxed),
                server_errors: s.server_errors.load(Relaxed),
                success_rate: if requests == 0 {
                    1.0
                } else {
                    1.0 - errors as f64 / requests as f64
                },
                error_rate: if requests == 0 {
                    0.0
                } else {
                    errors as f64 / requests as f64
                },
                requests_per_minute_avg: requests as f64 / uptime_min,
                latency: s.latency.summary(),
            }
        })
        .collect();
    Ok(Json(MetricsSummary {
        timestamp: crate::time::now_rfc3339(),
        uptime_seconds: engine.uptime().as_secs(),
        requests_per_minute: snapshot.requests_per_minute,
        routes,
        operations: snapshot.operations,
        providers: snapshot.providers,
        resilience: engine.metrics().clone(),
        actor_restarts: snapshot.actor_restarts,
    }))
}

/// `GET /internal/metrics`: Prometheus / OpenMetrics text.
#[utoipa::path(
    get,
    path = "/internal/metrics",
    tag = "monitoring",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Prometheus / OpenMetrics text exposition.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn prometheus(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let body = crate::exposition::render_with(&state.engine, Some(state.identity.clone()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::exposition::CONTENT_TYPE,
        )],
        body,
    )
        .into_response())
}

/// `GET /internal/rate-limits`: limits in force, counters and Redis state.
#[utoipa::path(
    get,
    path = "/internal/rate-limits",
    tag = "rate limits",
    operation_id = "rate_limits",
    summary = "Rate limiter status",
    description = "Limits in force, counters and the Redis link's state.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Rate limiter state", body = crate::rate_limit::RateLimitStats),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn rate_limits(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Json<crate::rate_limit::RateLimitStats> {
    Json(state.engine.rate_limiter().stats())
}

/// How far back `GET /internal/metrics/history` looks when `minutes` is not
/// given.
const DEFAULT_HISTORY_MINUTES: u64 = 15;

/// The query of `GET /internal/metrics/history`, as [`history_minutes`]
/// reads it (the handler takes the raw query so that an unknown name is a
/// 422 rather than ignored).
struct HistoryQuery;

impl utoipa::IntoParams for HistoryQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let retention = crate::actors::metrics_history::RETENTION.as_secs() / 60;
        vec![crate::api::openapi::integer_query(
            "minutes",
            "How far back to look, whole minutes",
            1,
            retention as i64,
            DEFAULT_HISTORY_MINUTES as i64,
        )]
    }
}

/// The operation description of `GET /internal/metrics/history`.
const HISTORY_DESCRIPTION: &str = "The metrics time series behind the dashboard's charts: one \
    sample every 5 s (requests/s, error and degraded rates overall and per operation, p50 \
    and p99 latency per operation, breakers by state per provider), oldest first, kept in \
    memory for 60 minutes. Samples start 5 s after start-up.";

/// `GET /internal/metrics/history?minutes=15`: the aggregator's time series
/// (one sample every 5 s, the last 60 minutes at most) for the dashboard's
/// charts. `minutes` is a whole number from 1 to the retention (60);
/// anything else is a 422 naming the parameter and the allowed range.
#[utoipa::path(
    get,
    path = "/internal/metrics/history",
    tag = "monitoring",
    operation_id = "metrics_history",
    summary = "Metrics time series (JSON)",
    description = HISTORY_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "Samples", body = crate::actors::metrics_history::HistoryView),
        (status = 401), (status = 403), (status = 422), (status = 500), (status = 503),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    _: OperatorKey,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<crate::actors::metrics_history::HistoryView>, ApiError> {
    let minutes = history_minutes(query.as_deref())?;
    state
        .engine
        .metrics_history(std::time::Duration::from_secs(minutes * 60))
        .await
        .map(Json)
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))
}

/// Reads `minutes` from the query string (other parameters are refused so a
/// typo such as `?minute=5` is not silently ignored).
fn history_minutes(query: Option<&str>) -> Result<u64, ApiError> {
    let retention = crate::actors::metrics_history::RETENTION.as_secs() / 60;
    let allowed = format!("a whole number of minutes from 1 to {retention}");
    let mut minutes = DEFAULT_HISTORY_MINUTES;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "minutes" {
            return Err(ApiError::Validation {
                message: format!("unknown query parameter {name:?}: allowed: minutes"),
                details: Some(json!({ "field": name, "in": "query", "allowed": ["minutes"] })),
            });
        }
        minutes = value
            .parse::<u64>()
            .ok()
            .filter(|m| (1..=retention).contains(m))
            .ok_or_else(|| ApiError::Validation {
                message: format!("minutes={value:?} is not valid: allowed: {allowed}"),
                details: Some(json!({ "field": "minutes", "in": "query", "allowed": allowed })),
            })?;
    }
    Ok(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_minutes_defaults_and_bounds() {
        assert_eq!(history_minutes(None).ok(), Some(DEFAULT_HISTORY_MINUTES));
        assert_eq!(
            history_minutes(Some("")).ok(),
            Some(DEFAULT_HISTORY_MINUTES)
        );
        assert_eq!(history_minutes(Some("minutes=1")).ok(), Some(1));
        assert_eq!(history_minutes(Some("minutes=60")).ok(), Some(60));
        for bad in [
            "minutes=0",
            "minutes=61",
            "minutes=abc",
            "minutes=",
            "minute=5",
        ] {
            let err = history_minutes(Some(bad)).err();
            assert!(
                matches!(err, Some(ApiError::Validation { .. })),
                "{bad} must be refused"
            );
        }
    }
}
