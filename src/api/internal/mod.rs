//! The operator API under `/internal`: health with system figures, metrics,
//! resilience configuration and presets, circuit breakers with manual
//! control, and the dashboard page. Every route but the page itself needs
//! the operator key (see [`OperatorKey`]) and answers JSON, with the common
//! error body and 404 for unknown names.

mod cache;
mod chaos;
mod cluster;
mod identity;
mod monitoring;
mod resilience;

use super::AppState;
use super::auth::OperatorKey;
use crate::api::json::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every operator route (full paths), each registered with its handler's
/// `#[utoipa::path]`: serving a route and documenting it is one
/// registration, so none can be served undocumented. [`super::router`]
/// serves this router; the operator document takes its operations and
/// schemas from it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(index_slash))
        .routes(routes!(dashboard))
        .routes(routes!(monitoring::health))
        .routes(routes!(monitoring::prometheus))
        .routes(routes!(monitoring::summary))
        .routes(routes!(monitoring::history))
        .routes(routes!(resilience::health))
        .routes(routes!(resilience::get_config, resilience::put_config))
        .routes(routes!(resilience::metrics))
        .routes(routes!(resilience::reset_metrics))
        .routes(routes!(resilience::operation_metrics))
        .routes(routes!(resilience::list_breakers))
        .routes(routes!(resilience::get_breaker))
        .routes(routes!(resilience::breaker_action))
        .routes(routes!(resilience::list_presets))
        .routes(routes!(resilience::get_preset))
        .routes(routes!(resilience::presets_summary))
        .routes(routes!(resilience::recommend))
        .routes(routes!(resilience::recommend_auto))
        .routes(routes!(resilience::validate))
        .routes(routes!(crate::api::jobs::stats))
        .routes(routes!(crate::api::jobs::dead))
        .routes(routes!(crate::api::jobs::retry))
        .routes(routes!(crate::api::jobs::pause))
        .routes(routes!(crate::api::jobs::resume))
        .routes(routes!(identity::create_key, identity::list_keys))
        .routes(routes!(identity::revoke_key))
        .routes(routes!(identity::revoke_token))
        .routes(routes!(identity::audit))
        .routes(routes!(cache::clear))
        .routes(routes!(cache::status))
        .routes(routes!(cache::metrics))
        .routes(routes!(cache::invalidate))
        .routes(routes!(monitoring::rate_limits))
        .routes(routes!(cluster::cluster))
        .routes(routes!(chaos::start, chaos::list, chaos::abort_all))
        .routes(routes!(chaos::abort))
}

/// `GET /internal/dashboard`: the operator dashboard, one self-contained
/// page. It needs no key to load; it asks for the operator key and sends it
/// with every call it makes.
#[utoipa::path(
    get,
    path = "/internal/dashboard",
    tag = "dashboard",
    operation_id = "dashboard",
    summary = "Operator dashboard",
    description = "A self-contained HTML page (no external assets). The page itself needs \
        no key; it calls the operator routes with the key the operator enters.",
    responses(
        (status = 200, description = "The dashboard", body = String, content_type = "text/html"),
        (status = 503),
    )
)]
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// Body of `GET /internal` and `GET /internal/`: the endpoint map.
#[derive(Serialize, ToSchema)]
pub struct InternalIndex {
    /// `keel operator API`.
    pub message: &'static str,
    /// keel's version.
    pub version: &'static str,
    /// Group → `METHOD /path` lines.
    pub endpoints: BTreeMap<&'static str, &'static [&'static str]>,
}

/// The groups of `InternalIndex::endpoints`.
const ENDPOINTS: &[(&str, &[&str])] = &[
    // A list like every other group, as the OpenAPI document says.
    ("dashboard", &["GET /internal/dashboard"]),
    ("monitoring", &["GET /internal/monitoring/health"]),
    (
        "metrics",
        &[
            "GET /internal/metrics",
            "GET /internal/metrics/summary",
            "GET /internal/metrics/history",
        ],
    ),
    (
        "cache",
        &[
            "GET /internal/cache/status",
            "GET /internal/cache/metrics",
            "POST /internal/cache/invalidate",
            "DELETE /internal/cache",
        ],
    ),
    ("rate_limits", &["GET /internal/rate-limits"]),
    (
        "resilience",
        &[
            "GET /internal/resilience/health",
            "GET /internal/resilience/config",
            "PUT /internal/resilience/config",
            "GET /internal/resilience/metrics",
            "GET /internal/resilience/metrics/{operation}",
            "POST /internal/resilience/metrics/reset",
        ],
    ),
    (
        "circuit_breakers",
        &[
            "GET /internal/resilience/circuit-breakers",
            "GET /internal/resilience/circuit-breakers/{name}",
            "POST /internal/resilience/circuit-breakers/{name}/reset",
            "POST /internal/resilience/circuit-breakers/{name}/force-open",
            "POST /internal/resilience/circuit-breakers/{name}/force-closed",
            "POST /internal/resilience/circuit-breakers/{name}/disable",
            "POST /internal/resilience/circuit-breakers/{name}/metrics-only",
        ],
    ),
    (
        "presets",
        &[
            "GET /internal/resilience/config/presets",
            "GET /internal/resilience/config/presets/{name}",
            "GET /internal/resilience/config/presets-summary",
            "GET /internal/resilience/config/recommend-preset/{environment}",
            "GET /internal/resilience/config/recommend-preset-auto",
            "POST /internal/resilience/config/validate",
        ],
    ),
    (
        "identity",
        &[
            "POST /internal/keys",
            "GET /internal/keys",
            "DELETE /internal/keys/{id}",
            "POST /internal/tokens/revoke",
            "GET /internal/audit",
        ],
    ),
    (
        "chaos",
        &[
            "POST /internal/chaos",
            "GET /internal/chaos",
            "DELETE /internal/chaos",
            "DELETE /internal/chaos/{id}",
        ],
    ),
];

fn endpoint_map() -> Json<InternalIndex> {
    Json(InternalIndex {
        message: "keel operator API",
        version: env!("CARGO_PKG_VERSION"),
        endpoints: ENDPOINTS.iter().copied().collect(),
    })
}

/// `GET /internal`: the endpoint map.
#[utoipa::path(
    get,
    path = "/internal",
    tag = "operator",
    operation_id = "internal_index",
    summary = "Operator endpoint map",
    description = "The operator endpoint map.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Endpoint map", body = InternalIndex),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn index(_: OperatorKey) -> Json<InternalIndex> {
    endpoint_map()
}

/// `GET /internal/`: the endpoint map (operators type the slash too).
#[utoipa::path(
    get,
    path = "/internal/",
    tag = "operator",
    operation_id = "internal_index_slash",
    summary = "Operator endpoint map",
    description = "The operator endpoint map.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Endpoint map", body = InternalIndex),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn index_slash(_: OperatorKey) -> Json<InternalIndex> {
    endpoint_map()
}
