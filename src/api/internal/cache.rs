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
use crate::cache::{CacheStats, InvalidationReport};
use crate::job::Operation;
use axum::extract::{FromRequest, Query, Request, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

/// The operation description of `POST /internal/cache/invalidate`.
const INVALIDATE_DESCRIPTION: &str = "Removes every entry of one operation, or the entries whose \
    `{operation}:{hash}` key matches a glob. Send exactly one of the two fields as a \
    JSON body — or, as the reference's clients do, as a query parameter with no body: \
    `?pattern=summarize` (the reference's substring match: `*summarize*`; an empty \
    pattern matches every entry; `operation_context` is accepted and ignored) or \
    `?operation=summarize`.";

/// Body of `GET /internal/cache/status`: the reference's `{redis, memory,
/// performance}` layout (each an object with a `status`, never `null`)
/// plus keel's own fields. Typed so the operator document derives from it.
#[derive(Serialize, ToSchema)]
pub struct CacheStatus {
    /// `CACHE_ENABLED`.
    pub enabled: bool,
    /// False when a configured Redis tier is disconnected.
    pub healthy: bool,
    /// The memory tier.
    pub memory: CacheMemoryStatus,
    /// The Redis tier (`status: not_configured` without Redis).
    pub redis: CacheRedisStatus,
    /// Hit counters, with the reference's names.
    pub performance: CachePerformance,
    /// hits / (hits + misses), 0–1.
    pub hit_rate: f64,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// The memory tier in [`CacheStatus`].
#[derive(Serialize, ToSchema)]
pub struct CacheMemoryStatus {
    /// `connected`, or `not_configured` with `CACHE_ENABLED=false`.
    pub status: &'static str,
    /// Entries held.
    pub entries: u64,
    /// Estimated bytes held.
    pub bytes: u64,
    /// Entries held (the reference's name).
    pub memory_cache_entries: u64,
    /// The entry bound (`CACHE_MEMORY_MAX_ENTRIES`).
    pub memory_cache_size_limit: u64,
    /// `"entries/limit"`.
    pub memory_cache_utilization: String,
}

/// The Redis tier in [`CacheStatus`]; every field is present (`null` when
/// unknown) so the reference's clients can index it.
#[derive(Serialize, ToSchema)]
pub struct CacheRedisStatus {
    /// `connected`, `disconnected` or `not_configured` (no `REDIS_URL`).
    pub status: &'static str,
    /// URL without password; `null` when not configured.
    #[schema(required = true)]
    pub url: Option<String>,
    /// Cache keys (bounded count), `null` when Redis did not answer.
    #[schema(required = true)]
    pub keys: Option<u64>,
    /// PING round trip, ms; `null` when Redis did not answer.
    #[schema(required = true)]
    pub ping_ms: Option<f64>,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// The hit counters in [`CacheStatus`], with the reference's names.
#[derive(Serialize, ToSchema)]
pub struct CachePerformance {
    /// `connected`, or `not_configured` with `CACHE_ENABLED=false`.
    pub status: &'static str,
    /// Hit rate in percent, 0–100 (the reference's scale).
    pub cache_hit_rate: f64,
    /// Gets so far.
    pub total_cache_operations: u64,
    /// Gets answered by either tier.
    pub cache_hits: u64,
    /// Gets answered by neither.
    pub cache_misses: u64,
}

/// Body of an invalidation or clear: the reference's message (which its
/// clients display) and what was removed.
#[derive(Serialize, ToSchema)]
pub struct InvalidationResult {
    /// Human-readable outcome.
    pub message: String,
    /// What was removed.
    pub report: InvalidationReport,
}

/// `GET /internal/cache/status`: tiers and their health at a glance, in the
/// reference's `{redis, memory, performance}` layout plus keel's own fields.
#[utoipa::path(
    get,
    path = "/internal/cache/status",
    tag = "cache",
    operation_id = "cache_status",
    summary = "Cache status",
    description = "Tiers and their health at a glance.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Cache status", body = CacheStatus),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn status(State(state): State<AppState>, _: OperatorKey) -> Json<CacheStatus> {
    let stats = state.engine.cache().stats().await;
    let redis = match &stats.redis {
        None => CacheRedisStatus {
            status: "not_configured",
            url: None,
            keys: None,
            ping_ms: None,
            last_error: None,
        },
        Some(r) => CacheRedisStatus {
            status: r.status,
            url: Some(r.link.url.clone()),
            keys: r.keys,
            ping_ms: r.ping_ms,
            last_error: r.link.last_error.clone(),
        },
    };
    let m = &stats.memory;
    let operations = stats.hits + stats.misses;
    let tier_status = if stats.enabled {
        "connected"
    } else {
        "not_configured"
    };
    Json(CacheStatus {
        enabled: stats.enabled,
        healthy: stats.redis.as_ref().is_none_or(|r| r.status == "connected"),
        memory: CacheMemoryStatus {
            status: tier_status,
            entries: m.entries,
            bytes: m.bytes,
            memory_cache_entries: m.entries,
            memory_cache_size_limit: m.max_entries,
            memory_cache_utilization: format!("{}/{}", m.entries, m.max_entries),
        },
        redis,
        performance: CachePerformance {
            status: tier_status,
            cache_hit_rate: stats.hit_rate * 100.0,
            total_cache_operations: operations,
            cache_hits: stats.hits,
            cache_misses: stats.misses,
        },
        hit_rate: stats.hit_rate,
        timestamp: crate::time::now_rfc3339(),
    })
}

/// `GET /internal/cache/metrics`: every counter of both tiers.
#[utoipa::path(
    get,
    path = "/internal/cache/metrics",
    tag = "cache",
    operation_id = "cache_metrics",
    summary = "Cache metrics",
    description = "Every counter of both tiers.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Cache counters", body = CacheStats),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn metrics(State(state): State<AppState>, _: OperatorKey) -> Json<CacheStats> {
    Json(state.engine.cache().stats().await)
}

/// The values of `operation` in [`InvalidateRequest`] and [`InvalidateQuery`].
fn operation_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(crate::api::openapi::operation_names()))
        .description(Some("Remove every entry of this operation."))
        .build()
}

/// Body of `POST /internal/cache/invalidate`: exactly one of `operation`
/// and `pattern` (both, or neither, is a 422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
#[schema(examples(json!({"pattern": "summarize:*"}), json!({"operation": "sentiment"})))]
pub struct InvalidateRequest {
    /// Remove every entry of this operation.
    #[serde(default)]
    #[schema(schema_with = operation_schema)]
    operation: Option<String>,
    /// Remove entries whose `{operation}:{hash}` key matches this glob
    /// (`*`, `summarize:*`).
    #[serde(default)]
    pattern: Option<String>,
}

async fn run(
    state: &AppState,
    what: Invalidation,
    who: &str,
) -> Result<Json<InvalidationResult>, ApiError> {
    let report = state
        .engine
        .invalidate_cache(what, who)
        .await
        .ok_or_else(|| ApiError::Internal("cache actor did not answer".into()))?
        .map_err(|e| ApiError::field("pattern", e.to_string()))?;
    Ok(Json(InvalidationResult {
        // The reference's wording, which its clients display.
        message: format!("Cache invalidated for pattern: {}", report.pattern),
        report,
    }))
}

/// The reference's query form of `POST /internal/cache/invalidate`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvalidateQuery {
    /// Query form: a substring (matched as `*pattern*`) or a glob; send no body.
    /// As the reference: `summarize` matches every summarize entry, an empty
    /// pattern every entry; `*` and `?` are globs.
    #[serde(default)]
    pattern: Option<String>,
    /// Query form: every entry of this operation; send no body.
    #[serde(default)]
    #[param(schema_with = operation_schema)]
    operation: Option<String>,
    /// Accepted and ignored (the reference's clients send it).
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
#[utoipa::path(
    post,
    path = "/internal/cache/invalidate",
    tag = "cache",
    operation_id = "cache_invalidate",
    summary = "Invalidate cache entries",
    description = INVALIDATE_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(InvalidateQuery),
    request_body(content = Option<InvalidateRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "What was removed", body = InvalidationResult),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 500), (status = 503),
    )
)]
pub async fn invalidate(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Query(query): Query<InvalidateQuery>,
    request: Request,
) -> Result<Json<InvalidationResult>, ApiError> {
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
#[utoipa::path(
    delete,
    path = "/internal/cache",
    tag = "cache",
    operation_id = "cache_clear",
    summary = "Clear the cache",
    description = "Clears both cache tiers (memory and Redis).",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "What was removed", body = InvalidationResult),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn clear(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<InvalidationResult>, ApiError> {
    state
        .identity
        .audit
        .record(&who, "cache.cleared", "all", json!({}));
    run(&state, Invalidation::All, &who.id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Property names and required names of a component schema.
    fn shape(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = &doc["components"]["schemas"][name];
        let props = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has properties"))
            .keys()
            .cloned()
            .collect();
        let required = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        (props, required)
    }

    /// The served keys are exactly the documented properties, all required.
    fn assert_exact(doc: &Value, name: &str, real: &Value) {
        let keys: BTreeSet<String> = real.as_object().expect("object").keys().cloned().collect();
        let (props, required) = shape(doc, name);
        assert_eq!(keys, props, "{name}: served keys vs documented properties");
        assert_eq!(keys, required, "{name}: every served key is required");
    }

    #[test]
    fn openapi_cache_schemas_are_the_served_json() {
        let doc = serde_json::to_value(crate::api::openapi::internal_doc()).unwrap();
        for redis in [
            CacheRedisStatus {
                status: "not_configured",
                url: None,
                keys: None,
                ping_ms: None,
                last_error: None,
            },
            CacheRedisStatus {
                status: "connected",
                url: Some("redis://localhost".into()),
                keys: Some(3),
                ping_ms: Some(0.2),
                last_error: Some("e".into()),
            },
        ] {
            let status = json!(CacheStatus {
                enabled: true,
                healthy: true,
                memory: CacheMemoryStatus {
                    status: "connected",
                    entries: 1,
                    bytes: 2,
                    memory_cache_entries: 1,
                    memory_cache_size_limit: 10,
                    memory_cache_utilization: "1/10".into(),
                },
                redis,
                performance: CachePerformance {
                    status: "connected",
                    cache_hit_rate: 50.0,
                    total_cache_operations: 2,
                    cache_hits: 1,
                    cache_misses: 1,
                },
                hit_rate: 0.5,
                timestamp: crate::time::now_rfc3339(),
            });
            assert_exact(&doc, "CacheStatus", &status);
            assert_exact(&doc, "CacheMemoryStatus", &status["memory"]);
            assert_exact(&doc, "CacheRedisStatus", &status["redis"]);
            assert_exact(&doc, "CachePerformance", &status["performance"]);
        }
        let result = json!(InvalidationResult {
            message: "Cache invalidated for pattern: *".into(),
            report: InvalidationReport {
                pattern: "*".into(),
                memory_removed: 1,
                redis_removed: None,
                redis_error: None,
            },
        });
        assert_exact(&doc, "InvalidationResult", &result);
        assert_exact(&doc, "InvalidationReport", &result["report"]);
        // The request schema keeps the rules the handler enforces.
        let request = &doc["components"]["schemas"]["InvalidateRequest"];
        assert_eq!(request["minProperties"], 1);
        assert_eq!(request["maxProperties"], 1);
        assert_eq!(request["additionalProperties"], false);
        let operations = request["properties"]["operation"]["enum"].clone();
        assert_eq!(operations, json!(crate::api::openapi::operation_names()));
    }
}
