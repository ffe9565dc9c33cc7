//! Cache routes: status, metrics, invalidation by operation or pattern, and
//! clear-all. Invalidations run through the cache actor.

use crate::actors::cache::Invalidation;
use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::job::Operation;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /internal/cache/status`: tiers and their health at a glance.
pub async fn status(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let stats = state.engine.cache().stats().await;
    let redis_status = stats.redis.as_ref().map(|r| r.link.status);
    Json(json!({
        "enabled": stats.enabled,
        "healthy": redis_status.is_none_or(|s| s != "unavailable"),
        "memory": {
            "entries": stats.memory.entries,
            "bytes": stats.memory.bytes,
        },
        "redis": stats.redis.as_ref().map(|r| json!({
            "status": r.link.status,
            "url": r.link.url,
            "keys": r.keys,
            "ping_ms": r.ping_ms,
            "last_error": r.link.last_error,
        })),
        "hit_rate": stats.hit_rate,
        "timestamp": crate::time::now_rfc3339(),
    }))
}

/// `GET /internal/cache/metrics`: every counter of both tiers.
pub async fn metrics(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    Json(json!(state.engine.cache().stats().await))
}

/// Body of `POST /internal/cache/invalidate`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// Remove every entry of this operation.
    #[serde(default)]
    operation: Option<String>,
    /// Remove entries whose `{operation}:{hash}` matches this glob (`*`, `summarize:*`).
    #[serde(default)]
    pattern: Option<String>,
}

async fn run(state: &AppState, what: Invalidation, who: &str) -> Result<Json<Value>, ApiError> {
    let report = state
        .engine
        .invalidate_cache(what, who)
        .await
        .ok_or_else(|| ApiError::Internal("cache actor did not answer".into()))?
        .map_err(|e| ApiError::field("pattern", e.to_string()))?;
    Ok(Json(json!({
        "message": format!("cache invalidated for pattern: {}", report.pattern),
        "report": report,
    })))
}

/// `POST /internal/cache/invalidate`.
pub async fn invalidate(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    JsonBody(request): JsonBody<InvalidateRequest>,
) -> Result<Json<Value>, ApiError> {
    let what = match (request.operation, request.pattern) {
        (Some(op), None) => Invalidation::Operation(
            op.parse::<Operation>()
                .map_err(|e| ApiError::field("operation", e.to_string()))?,
        ),
        (None, Some(p)) => Invalidation::Pattern(p),
        _ => {
            return Err(ApiError::validation(
                "send exactly one of {\"operation\": \"summarize\"} or {\"pattern\": \"summarize:*\"}",
            ));
        }
    };
    run(&state, what, &who.id).await
}

/// `DELETE /internal/cache`: clear both tiers.
pub async fn clear(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    run(&state, Invalidation::All, &who.id).await
}
