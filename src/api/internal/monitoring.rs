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
    let report = crate::health::evaluate(engine);
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
    let body = crate::exposition::render(&state.engine)
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
pub async fn rate_limits(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    Json(json!(state.engine.rate_limiter().stats()))
}
