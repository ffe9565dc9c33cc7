//! Cache routes: status, metrics, invalidation by operation or pattern, and
//! clear-all. Invalidations run through the cache actor.
//!
//! Shapes follow what the reference project's clients read: every tier in
//! `status` is an object with a `status` (`connected`, `disconnected` or
//! `not_configured`), never `null`, and invalidation also takes the
//! reference's query form (`?pattern=…`, no body).

use crate::actors::cache::Invalidation;
use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::job::Operation;
use axum::extract::{FromRequest, Query, Request, State};
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /internal/cache/status`: tiers and their health at a glance, in the
/// reference's `{redis, memory, performance}` layout plus keel's own fields.
pub async fn status(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let stats = state.engine.cache().stats().await;
    let redis = match &stats.redis {
        None => json!({
            "status": "not_configured",
            "url": null,
            "keys": null,
            "ping_ms": null,
            "last_error": null,
        }),
        Some(r) => json!({
            "status": r.status,
            "url": r.link.url,
            "keys": r.keys,
            "ping_ms": r.ping_ms,
            "last_error": r.link.last_error,
        }),
    };
    let m = &stats.memory;
    let operations = stats.hits + stats.misses;
    Json(json!({
        "enabled": stats.enabled,
        "healthy": stats.redis.as_ref().is_none_or(|r| r.status == "connected"),
        "memory": {
            "status": if stats.enabled { "connected" } else { "not_configured" },
            "entries": m.entries,
            "bytes": m.bytes,
            "memory_cache_entries": m.entries,
            "memory_cache_size_limit": m.max_entries,
            "memory_cache_utilization": format!("{}/{}", m.entries, m.max_entries),
        },
        "redis": redis,
        "performance": {
            "status": if stats.enabled { "connected" } else { "not_configured" },
            "cache_hit_rate": stats.hit_rate * 100.0,
            "total_cache_operations": operations,
            "cache_hits": stats.hits,
            "cache_misses": stats.misses,
        },
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
        // The reference's wording, which its clients display.
        "message": format!("Cache invalidated for pattern: {}", report.pattern),
        "report": report,
    })))
}

/// The reference's query form of `POST /internal/cache/invalidate`.
#[derive(Debug, Deserialize)]
pub struct InvalidateQuery {
    /// As the reference: a substring of the key (`summarize` matches every
    /// summarize entry, an empty pattern every entry); `*` and `?` are globs.
    #[serde(default)]
    pattern: Option<String>,
    /// Same as the body's `operation`.
    #[serde(default)]
    operation: Option<String>,
    /// Accepted and ignored, as the reference's clients send it.
    #[serde(default, rename = "operation_context")]
    _operation_context: Option<String>,
}

/// The reference matched `*{pattern}*`; a pattern with glob characters is
/// taken as written.
fn reference_pattern(pattern: &str) -> String {
    if pattern.contains(['*', '?']) {
        pattern.to_string()
    } else {
        format!("*{pattern}*")
    }
}

/// `POST /internal/cache/invalidate`: a JSON body, or the query form
/// (`?pattern=…` or `?operation=…`) with no body.
pub async fn invalidate(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Query(query): Query<InvalidateQuery>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let from_query = query.pattern.is_some() || query.operation.is_some();
    let request = if from_query
        && !request
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        InvalidateRequest {
            operation: query.operation,
            pattern: query.pattern.as_deref().map(reference_pattern),
        }
    } else {
        let JsonBody(body) = JsonBody::<InvalidateRequest>::from_request(request, &state).await?;
        body
    };
    let what = match (request.operation, request.pattern) {
        (Some(op), None) => Invalidation::Operation(
            op.parse::<Operation>()
                .map_err(|e| ApiError::field("operation", e.to_string()))?,
        ),
        (None, Some(p)) => Invalidation::Pattern(p),
        _ => {
            return Err(ApiError::validation(
                "send exactly one of {\"operation\": \"summarize\"} or {\"pattern\": \"summarize:*\"} \
                 (as a JSON body, or as ?operation= / ?pattern= with no body)",
            ));
        }
    };
    state
        .identity
        .audit
        .record(&who, "cache.invalidated", &format!("{what:?}"), json!({}));
    run(&state, what, &who.id).await
}

/// `DELETE /internal/cache`: clear both tiers.
pub async fn clear(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    state
        .identity
        .audit
        .record(&who, "cache.cleared", "all", json!({}));
    run(&state, Invalidation::All, &who.id).await
}
