//! Resilience routes: health, effective configuration (and switching it at
//! runtime), metrics, circuit breakers with manual control, presets,
//! recommendations and validation.

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::env::ProcessEnv;
use crate::job::Operation;
use crate::resilience::breaker::{BreakerCommand, BreakerState};
use crate::resilience::config::{self as rconfig, CustomConfig};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /internal/resilience/health`: `status` and `reasons` are the shared
/// verdict ([`crate::health::evaluate`]); `healthy` is the resilience part of
/// it (actors run, no breaker finding).
pub async fn health(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let report = crate::health::evaluate(&state.engine, &state.identity);
    let breakers = state.engine.resilience().breakers();
    let names_in = |states: &[BreakerState]| -> Vec<String> {
        breakers
            .iter()
            .filter(|b| states.contains(&b.state()))
            .map(|b| b.name().to_string())
            .collect()
    };
    let open = names_in(&[BreakerState::Open, BreakerState::ForcedOpen]);
    let half_open = names_in(&[BreakerState::HalfOpen]);
    let healthy = report.resilience_healthy();
    Json(json!({
        "healthy": healthy,
        "status": report.status,
        "reasons": report.reasons,
        "checks": report.checks,
        "details": {
            "healthy": healthy,
            "open_circuit_breakers": open,
            "half_open_circuit_breakers": half_open,
            "total_circuit_breakers": breakers.len(),
            "total_operations": Operation::ALL.len(),
            "timestamp": crate::time::now_rfc3339(),
        }
    }))
}

/// `GET /internal/resilience/config`: the effective configuration, where
/// each value came from, and the last runtime change.
pub async fn get_config(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let config = state.engine.resilience().config();
    Json(json!({
        "preset_name": config.preset,
        "is_legacy_config": !config.legacy_vars.is_empty(),
        "configuration": &*config,
        "last_change": state.engine.last_config_change(),
    }))
}

/// Body of `PUT /internal/resilience/config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigChangeRequest {
    /// The preset to switch to (default: keep the current one).
    #[serde(default)]
    preset: Option<String>,
    /// A custom configuration (same schema as `RESILIENCE_CUSTOM_CONFIG`);
    /// `null` or absent removes the current one.
    #[serde(default)]
    custom_config: Option<Value>,
}

/// `PUT /internal/resilience/config`: validates, then switches the runtime
/// configuration; new calls use it at once.
pub async fn put_config(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Query(scope): Query<ScopeQuery>,
    JsonBody(change): JsonBody<ConfigChangeRequest>,
) -> Result<Json<Value>, ApiError> {
    let cluster_wide = cluster_wide(&scope, &state)?;
    let current = state.engine.resilience().config();
    let preset = change.preset.unwrap_or_else(|| current.preset.clone());
    let custom = match &change.custom_config {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            CustomConfig::from_value(v).map_err(|e| ApiError::Validation {
                message: e.to_string(),
                details: Some(json!(rconfig::validate_custom_value(v))),
            })?,
        ),
    };
    let config = rconfig::resolve(&preset, custom.as_ref(), &ProcessEnv)
        .map_err(|e| ApiError::field("preset", e.to_string()))?;
    let applied = state.engine.reconfigure_by(config.clone(), &who.id).await;
    if !applied {
        return Err(ApiError::Internal("breaker registry did not answer".into()));
    }
    state.identity.audit.record(
        &who,
        "config.switched",
        &config.preset,
        json!({"preset": config.preset, "custom_config": change.custom_config.is_some()}),
    );
    let version = crate::cluster::config_version(&config);
    let mut acknowledged = None;
    if cluster_wide && let Some(cluster) = state.engine.cluster() {
        let shared = cluster
            .publish_config(crate::cluster::ConfigRecord {
                preset: config.preset.clone(),
                custom_config: change.custom_config.clone(),
                version: version.clone(),
                by: who.id.clone(),
                from: cluster.instance_id().to_string(),
            })
            .await;
        if shared {
            acknowledged = Some(
                cluster
                    .acknowledgments(&version, std::time::Duration::from_secs(1))
                    .await,
            );
        }
    }
    Ok(Json(json!({
        "message": format!("resilience configuration switched to preset '{}'", config.preset),
        "scope": if acknowledged.is_some() { "cluster" } else { "instance" },
        "config_version": version,
        "instances": acknowledged,
        "configuration": config,
        "change": state.engine.last_config_change(),
    })))
}

/// `GET /internal/resilience/metrics`.
pub async fn metrics(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state
        .engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let breakers: serde_json::Map<String, Value> = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| (b.name().to_string(), json!(b.snapshot())))
        .collect();
    Ok(Json(json!({
        "operations": snapshot.operations,
        "providers": snapshot.providers,
        "circuit_breakers": breakers,
        "summary": &state.engine.metrics().resilience,
    })))
}

fn parse_operation(name: &str) -> Result<Operation, ApiError> {
    name.parse()
        .map_err(|e: crate::job::UnknownOperation| ApiError::NotFound(e.to_string()))
}

/// `GET /internal/resilience/metrics/{operation}`.
pub async fn operation_metrics(
    State(state): State<AppState>,
    _: OperatorKey,
    Path(operation): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let op = parse_operation(&operation)?;
    let snapshot = state
        .engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let metrics = snapshot.operations.into_iter().find(|o| o.operation == op);
    let breakers: Vec<Value> = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .filter(|b| b.name().ends_with(&format!(":{}", op.as_str())))
        .map(|b| json!({"name": b.name(), "snapshot": b.snapshot()}))
        .collect();
    Ok(Json(json!({
        "operation": op,
        "metrics": metrics,
        "policy": state.engine.resilience().config().policy(op),
        "circuit_breakers": breakers,
    })))
}

/// `POST /internal/resilience/metrics/reset`.
pub async fn reset_metrics(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    if !state.engine.reset_metrics().await {
        return Err(ApiError::Internal("metrics aggregator unavailable".into()));
    }
    tracing::info!(by = %who.id, "metrics reset");
    state
        .identity
        .audit
        .record(&who, "metrics.reset", "resilience", json!({}));
    Ok(Json(
        json!({"message": "metrics reset", "timestamp": crate::time::now_rfc3339()}),
    ))
}

/// `GET /internal/resilience/circuit-breakers`.
pub async fn list_breakers(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let breakers: Vec<Value> = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| {
            let mut v = json!(b.snapshot());
            v["name"] = json!(b.name());
            v
        })
        .collect();
    Json(json!({ "circuit_breakers": breakers }))
}

fn breaker_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Circuit breaker '{name}' not found (names are provider:operation, e.g. openai:summarize)"
    ))
}

/// `GET /internal/resilience/circuit-breakers/{name}`.
pub async fn get_breaker(
    State(state): State<AppState>,
    _: OperatorKey,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let b = state
        .engine
        .resilience()
        .find_breaker(&name)
        .ok_or_else(|| breaker_not_found(&name))?;
    let mut v = json!(b.snapshot());
    v["name"] = json!(b.name());
    Ok(Json(v))
}

/// `POST /internal/resilience/circuit-breakers/{name}/{action}` with action
/// `reset`, `force-open`, `force-closed`, `disable` or `metrics-only`.
pub async fn breaker_action(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path((name, action)): Path<(String, String)>,
    Query(scope): Query<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    let cluster = cluster_wide(&scope, &state)?;
    let command = match action.as_str() {
        "reset" => BreakerCommand::Reset,
        "force-open" => BreakerCommand::ForceOpen,
        "force-closed" => BreakerCommand::ForceClosed,
        "disable" => BreakerCommand::Disable,
        "metrics-only" => BreakerCommand::MetricsOnly,
        other => {
            return Err(ApiError::NotFound(format!(
                "unknown action '{other}' (allowed: reset, force-open, force-closed, disable, metrics-only)"
            )));
        }
    };
    if state.engine.resilience().find_breaker(&name).is_none() {
        return Err(breaker_not_found(&name));
    }
    let snapshot = state
        .engine
        .breaker_command(&name, command, &who.id, cluster)
        .await
        .ok_or_else(|| ApiError::Internal("breaker registry did not answer".into()))?;
    tracing::info!(breaker = %name, %action, by = %who.id, "operator breaker command");
    state.identity.audit.record(
        &who,
        &format!("breaker.{action}"),
        &name,
        json!({"new_state": snapshot.state}),
    );
    Ok(Json(json!({
        "message": format!("circuit breaker '{name}': {action} applied"),
        "scope": if cluster { "cluster" } else { "instance" },
        "name": name,
        "new_state": snapshot.state,
        "breaker": snapshot,
    })))
}

/// `?scope=cluster|instance` on operator actions: `cluster` (the default)
/// applies to every instance when breakers are shared and Redis answers;
/// otherwise the action applies here and the answer says `instance`.
/// (Read from a map, so a malformed query string still gets keel's JSON error.)
type ScopeQuery = std::collections::HashMap<String, String>;

/// True when the action should reach every instance (and can).
fn cluster_wide(query: &ScopeQuery, state: &AppState) -> Result<bool, ApiError> {
    let wanted = match query.get("scope").map(String::as_str) {
        None | Some("cluster") => true,
        Some("instance") => false,
        Some(other) => {
            return Err(ApiError::field(
                "scope",
                format!("unknown scope '{other}' (allowed: cluster, instance)"),
            ));
        }
    };
    Ok(wanted && state.engine.cluster().is_some_and(|c| c.is_live()))
}

/// `GET /internal/resilience/config/presets`.
pub async fn list_presets(_: OperatorKey) -> Json<Value> {
    Json(json!({ "presets": rconfig::presets() }))
}

/// `GET /internal/resilience/config/presets/{name}`.
pub async fn get_preset(_: OperatorKey, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let preset = rconfig::preset(&name).map_err(|_| {
        ApiError::NotFound(format!(
            "Unknown preset '{name}'. Available presets: [simple, development, production]"
        ))
    })?;
    let resolved = rconfig::resolve(&preset.name, None, &crate::env::MapEnv::default())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({ "preset": preset, "resolved": resolved })))
}

/// `GET /internal/resilience/config/presets-summary`.
pub async fn presets_summary(_: OperatorKey) -> Json<Value> {
    let summary: serde_json::Map<String, Value> = rconfig::presets()
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                json!({
                    "retry_attempts": p.retry_attempts,
                    "circuit_breaker_threshold": p.circuit_breaker_threshold,
                    "recovery_timeout": p.recovery_timeout,
                    "default_strategy": p.default_strategy,
                    "operation_overrides": p.operation_overrides,
                    "environment_contexts": p.environment_contexts,
                    "description": p.description,
                }),
            )
        })
        .collect();
    Json(Value::Object(summary))
}

/// `GET /internal/resilience/config/recommend-preset/{environment}`.
pub async fn recommend(_: OperatorKey, Path(environment): Path<String>) -> Json<Value> {
    Json(json!(rconfig::recommend(&environment)))
}

/// `GET /internal/resilience/config/recommend-preset-auto`.
pub async fn recommend_auto(_: OperatorKey) -> Json<Value> {
    Json(json!(rconfig::recommend_auto(&ProcessEnv)))
}

/// Body of `POST /internal/resilience/config/validate`.
#[derive(Debug, Deserialize)]
pub struct ValidateRequest {
    /// The custom configuration to check.
    configuration: Value,
}

/// `POST /internal/resilience/config/validate`: always 200 with
/// `{is_valid, errors, warnings, suggestions}`.
pub async fn validate(_: OperatorKey, JsonBody(request): JsonBody<ValidateRequest>) -> Json<Value> {
    Json(json!(rconfig::validate_custom_value(
        &request.configuration
    )))
}
