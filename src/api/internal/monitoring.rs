//! Monitoring routes: component health with system figures, and the JSON
//! metrics summary.

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::json::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use sysinfo::{Disks, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

/// System figures via sysinfo, gathered on the blocking pool (they read
/// /proc). A figure the platform cannot give is `null`.
fn system_figures() -> Value {
    let mut sys = match System::new_with_specifics(RefreshKind::nothing()) {
        Ok(sys) => sys,
        Err(e) => return json!({ "error": e.to_string() }),
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
    json!({
        "cpu_count": sys.cpus().len(),
        "load_average": load.map(|l| json!({ "one": l.one, "five": l.five, "fifteen": l.fifteen })),
        "memory_total_bytes": sys.total_memory(),
        "memory_used_bytes": sys.used_memory(),
        "disk_total_bytes": disk_total,
        "disk_available_bytes": disk_free,
        "process_rss_bytes": process.map(|p| p.memory()),
        "process_cpu_percent": process.map(|p| p.cpu_usage()),
    })
}

/// `GET /internal/monitoring/health`: the shared health verdict
/// ([`crate::health::evaluate`]) with component detail and system figures.
pub async fn health(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<Value>, ApiError> {
    let engine = &state.engine;
    let system = tokio::task::spawn_blocking(system_figures)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut providers = Vec::new();
    for kind in engine.providers().kinds() {
        providers.push(json!({
            "name": kind,
            "actor": engine.describe_provider(kind).await,
        }));
    }
    let breakers: Vec<Value> = engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| json!({"name": b.name(), "state": b.state()}))
        .collect();
    let report = crate::health::evaluate(engine, &state.identity);
    Ok(Json(json!({
        "status": report.status,
        "reasons": report.reasons,
        "checks": report.checks,
        "timestamp": crate::time::now_rfc3339(),
        "uptime_seconds": engine.uptime().as_secs(),
        "components": {
            "actors": {
                "healthy": report.checks.actors.status == crate::health::Status::Healthy,
                "restarts": engine.metrics().all_restarts().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            },
            "providers": providers,
            "circuit_breakers": breakers,
            "resilience_preset": engine.resilience().config().preset,
            "cache": engine.cache().stats().await,
            "rate_limiter": engine.rate_limiter().stats(),
            "identity": {
                "client_key_store": state.identity.keys.backend(),
                "jti_denylist_store": state.identity.denylist.backend(),
                "revoked_jtis": state.identity.denylist.len(),
                "jwt": state.identity.jwt.as_ref().map(|j| j.status()),
                "task_restarts": state.identity.task_restarts.load(std::sync::atomic::Ordering::Relaxed),
            },
        },
        "system": system,
    })))
}

/// `GET /internal/metrics/summary`: per route and per operation traffic.
pub async fn summary(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<Value>, ApiError> {
    let engine = &state.engine;
    let snapshot = engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let uptime_min = (engine.uptime().as_secs_f64() / 60.0).max(1.0 / 60.0);
    let routes: Vec<Value> = engine
        .metrics()
        .routes()
        .into_iter()
        .map(|(route, s)| {
            let requests = s.requests.load(Relaxed);
            let errors = s.client_errors.load(Relaxed) + s.server_errors.load(Relaxed);
            json!({
                "route": route,
                "requests": requests,
                "client_errors": s.client_errors.load(Relaxed),
                "server_errors": s.server_errors.load(Relaxed),
                "success_rate": if requests == 0 { 1.0 } else { 1.0 - errors as f64 / requests as f64 },
                "error_rate": if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
                "requests_per_minute_avg": requests as f64 / uptime_min,
                "latency": s.latency.summary(),
            })
        })
        .collect();
    Ok(Json(json!({
        "timestamp": crate::time::now_rfc3339(),
        "uptime_seconds": engine.uptime().as_secs(),
        "requests_per_minute": snapshot.requests_per_minute,
        "routes": routes,
        "operations": snapshot.operations,
        "providers": snapshot.providers,
        "resilience": &engine.metrics().resilience,
        "actor_restarts": snapshot.actor_restarts,
    })))
}

/// `GET /internal/metrics`: Prometheus / OpenMetrics text.
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

/// `GET /internal/metrics/history?minutes=15`: the aggregator's time series
/// (one sample every 5 s, the last 60 minutes at most) for the dashboard's
/// charts. `minutes` is a whole number from 1 to the retention (60);
/// anything else is a 422 naming the parameter and the allowed range.
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
