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
use crate::resilience::breaker::{BreakerCommand, BreakerSnapshot, BreakerState};
use crate::resilience::config::{self as rconfig, CustomConfig, ResilienceConfig};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa::openapi::path::{Parameter, ParameterIn};

/// Where an operator action applied (`?scope=` asks for one; the answer
/// says which it got).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every instance sharing this Redis.
    Cluster,
    /// The instance that answered.
    Instance,
}

impl Scope {
    /// The wire names, the values `?scope=` accepts.
    const NAMES: [&str; 2] = ["cluster", "instance"];

    fn of(cluster: bool) -> Scope {
        if cluster {
            Scope::Cluster
        } else {
            Scope::Instance
        }
    }
}

/// Body of `GET /internal/resilience/health`.
#[derive(Serialize, ToSchema)]
pub struct ResilienceHealth {
    /// The resilience part of the verdict: actors run, no breaker finding.
    pub healthy: bool,
    /// The shared verdict.
    pub status: crate::health::Status,
    /// Every finding, worst first.
    pub reasons: Vec<crate::health::Reason>,
    /// The findings per component.
    pub checks: crate::health::Checks,
    /// Detail.
    pub details: ResilienceHealthDetails,
}

/// `details` of `ResilienceHealth`.
#[derive(Serialize, ToSchema)]
pub struct ResilienceHealthDetails {
    /// Same as the outer `healthy`.
    pub healthy: bool,
    /// Open or forced-open breakers.
    pub open_circuit_breakers: Vec<String>,
    /// Half-open breakers.
    pub half_open_circuit_breakers: Vec<String>,
    /// Breakers in total.
    pub total_circuit_breakers: usize,
    /// Always 5.
    pub total_operations: usize,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `GET /internal/resilience/health`: `status` and `reasons` are the shared
/// verdict ([`crate::health::evaluate`]); `healthy` is the resilience part of
/// it (actors run, no breaker finding).
#[utoipa::path(
    get,
    path = "/internal/resilience/health",
    tag = "resilience",
    operation_id = "resilience_health",
    summary = "Resilience health",
    description = "Healthy when no breaker is open and the actors run.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Resilience health", body = ResilienceHealth),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn health(State(state): State<AppState>, _: OperatorKey) -> Json<ResilienceHealth> {
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
    Json(ResilienceHealth {
        healthy,
        status: report.status,
        reasons: report.reasons,
        checks: report.checks,
        details: ResilienceHealthDetails {
            healthy,
            open_circuit_breakers: open,
            half_open_circuit_breakers: half_open,
            total_circuit_breakers: breakers.len(),
            total_operations: Operation::ALL.len(),
            timestamp: crate::time::now_rfc3339(),
        },
    })
}

/// Body of `GET /internal/resilience/config`.
#[derive(Serialize, ToSchema)]
pub struct ResilienceConfigView {
    /// The preset in force.
    pub preset_name: String,
    /// Legacy variables contributed to the configuration.
    pub is_legacy_config: bool,
    /// The effective configuration with the source of each value.
    #[schema(value_type = Object)]
    pub configuration: Arc<ResilienceConfig>,
    /// The last runtime switch, `null` if none.
    #[schema(required = true)]
    pub last_change: Option<crate::engine::ConfigChange>,
}

/// `GET /internal/resilience/config`: the effective configuration, where
/// each value came from, and the last runtime change.
#[utoipa::path(
    get,
    path = "/internal/resilience/config",
    tag = "resilience",
    operation_id = "resilience_config",
    summary = "Current resilience configuration",
    description = "The effective configuration, where each value came from, and the last \
        runtime change.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Configuration", body = ResilienceConfigView),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn get_config(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Json<ResilienceConfigView> {
    let config = state.engine.resilience().config();
    Json(ResilienceConfigView {
        preset_name: config.preset.clone(),
        is_legacy_config: !config.legacy_vars.is_empty(),
        configuration: config,
        last_change: state.engine.last_config_change(),
    })
}

/// Body of `PUT /internal/resilience/config`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"preset": "production"})))]
pub struct ConfigChangeRequest {
    /// The preset to switch to (default: keep the current one).
    #[serde(default)]
    preset: Option<String>,
    /// A custom configuration (the `RESILIENCE_CUSTOM_CONFIG` schema):
    /// a non-empty object of known fields only (`{}`, an array or an
    /// unknown field is a 422); `null` or absent removes the current one.
    #[serde(default)]
    #[schema(value_type = Option<CustomConfig>)]
    custom_config: Option<Value>,
}

/// Body of a `PUT /internal/resilience/config` answer.
#[derive(Serialize, ToSchema)]
pub struct ConfigChangeResult {
    /// Human-readable outcome.
    pub message: String,
    /// `cluster` (published to every instance) or `instance`.
    pub scope: Scope,
    /// Digest of the configuration now in force; instances running the
    /// same policies report the same version in `GET /internal/cluster`.
    pub config_version: String,
    /// With `scope: cluster`: which instances acknowledged the version
    /// within a second (`applied`) and which did not (`pending`); null
    /// with `scope: instance`.
    #[schema(required = true)]
    pub instances: Option<crate::cluster::Acknowledgments>,
    /// The new effective configuration.
    #[schema(value_type = Object)]
    pub configuration: ResilienceConfig,
    /// The audit record of this switch.
    #[schema(required = true)]
    pub change: Option<crate::engine::ConfigChange>,
}

/// The `?scope=` query of operator actions, as [`cluster_wide`] reads it.
struct ScopeParam;

impl utoipa::IntoParams for ScopeParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![crate::api::openapi::enum_param(
            "scope",
            ParameterIn::Query,
            "`cluster` (default: every instance, when breakers are shared and Redis \
             answers) or `instance` (this one only)",
            Scope::NAMES,
        )]
    }
}

/// The operation description of `PUT /internal/resilience/config`.
const PUT_CONFIG_DESCRIPTION: &str = "Validates, then switches the runtime configuration \
    (preset and/or custom configuration); new calls use it at once. With `REDIS_URL` set \
    and `BREAKER_SHARING` on, every instance switches too (`scope: cluster`; compare \
    `instances.applied` in the answer, `config_version` in `GET /internal/cluster`) unless \
    `?scope=instance` is asked for. Audited with the operator key's fingerprint.";

/// `PUT /internal/resilience/config`: validates, then switches the runtime
/// configuration; new calls use it at once.
#[utoipa::path(
    put,
    path = "/internal/resilience/config",
    tag = "resilience",
    operation_id = "resilience_config_put",
    summary = "Switch the resilience configuration",
    description = PUT_CONFIG_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(ScopeParam),
    request_body(content = ConfigChangeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new configuration", body = ConfigChangeResult),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 500), (status = 503),
    )
)]
pub async fn put_config(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Query(scope): Query<ScopeQuery>,
    JsonBody(change): JsonBody<ConfigChangeRequest>,
) -> Result<Json<ConfigChangeResult>, ApiError> {
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
    Ok(Json(ConfigChangeResult {
        message: format!(
            "resilience configuration switched to preset '{}'",
            config.preset
        ),
        scope: Scope::of(acknowledged.is_some()),
        config_version: version,
        instances: acknowledged,
        configuration: config,
        change: state.engine.last_config_change(),
    }))
}

/// Body of `GET /internal/resilience/metrics`.
#[derive(Serialize, ToSchema)]
pub struct ResilienceMetrics {
    /// Per operation figures.
    pub operations: Vec<crate::actors::metrics::OperationSnapshot>,
    /// Per provider figures.
    pub providers: Vec<crate::actors::metrics::ProviderSnapshot>,
    /// Breaker name → snapshot.
    pub circuit_breakers: BTreeMap<String, BreakerSnapshot>,
    /// Resilience counters (the registry's, serialised as they stand).
    #[serde(serialize_with = "resilience_counters")]
    #[schema(value_type = crate::metrics::ResilienceCounters)]
    pub summary: Arc<crate::metrics::Metrics>,
}

fn resilience_counters<S: serde::Serializer>(
    metrics: &Arc<crate::metrics::Metrics>,
    s: S,
) -> Result<S::Ok, S::Error> {
    metrics.resilience.serialize(s)
}

/// `GET /internal/resilience/metrics`.
#[utoipa::path(
    get,
    path = "/internal/resilience/metrics",
    tag = "resilience",
    operation_id = "resilience_metrics",
    summary = "Resilience metrics",
    description = "Per operation and per provider figures, every breaker's snapshot, and \
        the resilience summary.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Resilience metrics", body = ResilienceMetrics),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<ResilienceMetrics>, ApiError> {
    let snapshot = state
        .engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let breakers = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| (b.name().to_string(), b.snapshot()))
        .collect();
    Ok(Json(ResilienceMetrics {
        operations: snapshot.operations,
        providers: snapshot.providers,
        circuit_breakers: breakers,
        summary: state.engine.metrics().clone(),
    }))
}

fn parse_operation(name: &str) -> Result<Operation, ApiError> {
    name.parse()
        .map_err(|e: crate::job::UnknownOperation| ApiError::NotFound(e.to_string()))
}

/// Body of `GET /internal/resilience/metrics/{operation}`.
#[derive(Serialize, ToSchema)]
pub struct OperationMetrics {
    /// The operation.
    pub operation: Operation,
    /// Its figures, `null` before its first job.
    #[schema(required = true)]
    pub metrics: Option<crate::actors::metrics::OperationSnapshot>,
    /// The retry and breaker policy in force.
    #[schema(value_type = Object)]
    pub policy: rconfig::OperationPolicy,
    /// Its breakers (one per provider).
    pub circuit_breakers: Vec<BreakerEntry>,
}

/// A breaker in `OperationMetrics`.
#[derive(Serialize, ToSchema)]
pub struct BreakerEntry {
    /// `provider:operation`.
    pub name: String,
    /// Its snapshot.
    pub snapshot: BreakerSnapshot,
}

/// `GET /internal/resilience/metrics/{operation}`.
#[utoipa::path(
    get,
    path = "/internal/resilience/metrics/{operation}",
    tag = "resilience",
    operation_id = "resilience_operation_metrics",
    summary = "Metrics of one operation",
    description = "One operation's figures, policy and breakers. Unknown operation: 404.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("operation" = Operation, Path, description = "The operation")),
    responses(
        (status = 200, description = "Operation metrics", body = OperationMetrics),
        (status = 401), (status = 403), (status = 404), (status = 500), (status = 503),
    )
)]
pub async fn operation_metrics(
    State(state): State<AppState>,
    _: OperatorKey,
    Path(operation): Path<String>,
) -> Result<Json<OperationMetrics>, ApiError> {
    let op = parse_operation(&operation)?;
    let snapshot = state
        .engine
        .metrics_snapshot()
        .await
        .ok_or_else(|| ApiError::Internal("metrics aggregator unavailable".into()))?;
    let metrics = snapshot.operations.into_iter().find(|o| o.operation == op);
    let breakers = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .filter(|b| b.name().ends_with(&format!(":{}", op.as_str())))
        .map(|b| BreakerEntry {
            name: b.name().to_string(),
            snapshot: b.snapshot(),
        })
        .collect();
    Ok(Json(OperationMetrics {
        operation: op,
        metrics,
        policy: *state.engine.resilience().config().policy(op),
        circuit_breakers: breakers,
    }))
}

/// A message with a timestamp.
#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    /// Human-readable outcome.
    pub message: &'static str,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `POST /internal/resilience/metrics/reset`.
#[utoipa::path(
    post,
    path = "/internal/resilience/metrics/reset",
    tag = "resilience",
    operation_id = "resilience_metrics_reset",
    summary = "Reset metrics",
    description = "Resets the metrics counters.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Reset", body = MessageResponse),
        (status = 401), (status = 403), (status = 500), (status = 503),
    )
)]
pub async fn reset_metrics(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<MessageResponse>, ApiError> {
    if !state.engine.reset_metrics().await {
        return Err(ApiError::Internal("metrics aggregator unavailable".into()));
    }
    tracing::info!(by = %who.id, "metrics reset");
    state
        .identity
        .audit
        .record(&who, "metrics.reset", "resilience", json!({}));
    Ok(Json(MessageResponse {
        message: "metrics reset",
        timestamp: crate::time::now_rfc3339(),
    }))
}

/// A breaker snapshot with its name.
#[derive(Serialize, ToSchema)]
pub struct NamedBreakerSnapshot {
    /// `provider:operation`.
    pub name: String,
    /// The snapshot's fields.
    #[serde(flatten)]
    pub snapshot: BreakerSnapshot,
}

impl NamedBreakerSnapshot {
    fn of(breaker: &crate::resilience::breaker::CircuitBreaker) -> NamedBreakerSnapshot {
        NamedBreakerSnapshot {
            name: breaker.name().to_string(),
            snapshot: breaker.snapshot(),
        }
    }
}

/// Body of `GET /internal/resilience/circuit-breakers`.
#[derive(Serialize, ToSchema)]
pub struct BreakerList {
    /// Every breaker.
    pub circuit_breakers: Vec<NamedBreakerSnapshot>,
}

/// `GET /internal/resilience/circuit-breakers`.
#[utoipa::path(
    get,
    path = "/internal/resilience/circuit-breakers",
    tag = "circuit breakers",
    operation_id = "breakers",
    summary = "List circuit breakers",
    description = "Every breaker (one per provider and operation) with counters and \
        recent transitions.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Breakers", body = BreakerList),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn list_breakers(State(state): State<AppState>, _: OperatorKey) -> Json<BreakerList> {
    Json(BreakerList {
        circuit_breakers: state
            .engine
            .resilience()
            .breakers()
            .iter()
            .map(|b| NamedBreakerSnapshot::of(b))
            .collect(),
    })
}

fn breaker_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Circuit breaker '{name}' not found (names are provider:operation, e.g. openai:summarize)"
    ))
}

/// The description of a breaker's `{name}` in the path.
const BREAKER_NAME: &str = "Breaker name, `provider:operation`, e.g. `openai:summarize`";

/// `GET /internal/resilience/circuit-breakers/{name}`.
#[utoipa::path(
    get,
    path = "/internal/resilience/circuit-breakers/{name}",
    tag = "circuit breakers",
    operation_id = "breaker",
    summary = "One circuit breaker",
    description = "One breaker. Unknown name: 404.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("name" = String, Path, description = BREAKER_NAME)),
    responses(
        (status = 200, description = "The breaker", body = NamedBreakerSnapshot),
        (status = 401), (status = 403), (status = 404), (status = 503),
    )
)]
pub async fn get_breaker(
    State(state): State<AppState>,
    _: OperatorKey,
    Path(name): Path<String>,
) -> Result<Json<NamedBreakerSnapshot>, ApiError> {
    let b = state
        .engine
        .resilience()
        .find_breaker(&name)
        .ok_or_else(|| breaker_not_found(&name))?;
    Ok(Json(NamedBreakerSnapshot::of(&b)))
}

/// The `{action}`s of `POST /internal/resilience/circuit-breakers/{name}/{action}`.
const BREAKER_ACTIONS: [(&str, BreakerCommand); 5] = [
    ("reset", BreakerCommand::Reset),
    ("force-open", BreakerCommand::ForceOpen),
    ("force-closed", BreakerCommand::ForceClosed),
    ("disable", BreakerCommand::Disable),
    ("metrics-only", BreakerCommand::MetricsOnly),
];

/// The path of a breaker action: the breaker and one of [`BREAKER_ACTIONS`].
struct BreakerActionPath;

impl utoipa::IntoParams for BreakerActionPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let name = utoipa::openapi::path::ParameterBuilder::new()
            .name("name")
            .parameter_in(ParameterIn::Path)
            .required(utoipa::openapi::Required::True)
            .description(Some(BREAKER_NAME))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .build();
        vec![
            name,
            crate::api::openapi::enum_param(
                "action",
                ParameterIn::Path,
                "What to do",
                BREAKER_ACTIONS.map(|(name, _)| name),
            ),
        ]
    }
}

/// Body of a breaker action's answer.
#[derive(Serialize, ToSchema)]
pub struct BreakerActionResult {
    /// Human-readable outcome.
    pub message: String,
    /// `cluster` (sent to every instance) or `instance` (applied here
    /// only: asked for, or the cluster picture is not live).
    pub scope: Scope,
    /// The breaker.
    pub name: String,
    /// Its state after the action.
    pub new_state: BreakerState,
    /// Its snapshot after the action.
    pub breaker: BreakerSnapshot,
}

/// The operation description of a breaker action.
const BREAKER_ACTION_DESCRIPTION: &str = "Manual control: `reset` (closed, counters \
    cleared), `force-open` (reject every call), `force-closed` (permit every call), \
    `disable` (permit, record nothing), `metrics-only` (record, never open). With \
    `REDIS_URL` set and `BREAKER_SHARING` on, the action reaches every instance within \
    about 100 ms (`scope: cluster`) unless `?scope=instance` is asked for or Redis is \
    unreachable. Audited. Unknown breaker or action: 404; unknown scope: 422.";

/// `POST /internal/resilience/circuit-breakers/{name}/{action}` with action
/// `reset`, `force-open`, `force-closed`, `disable` or `metrics-only`.
#[utoipa::path(
    post,
    path = "/internal/resilience/circuit-breakers/{name}/{action}",
    tag = "circuit breakers",
    operation_id = "breaker_action",
    summary = "Control a circuit breaker",
    description = BREAKER_ACTION_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(BreakerActionPath, ScopeParam),
    responses(
        (status = 200, description = "Applied", body = BreakerActionResult),
        (status = 401), (status = 403), (status = 404), (status = 500), (status = 503),
    )
)]
pub async fn breaker_action(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path((name, action)): Path<(String, String)>,
    Query(scope): Query<ScopeQuery>,
) -> Result<Json<BreakerActionResult>, ApiError> {
    let cluster = cluster_wide(&scope, &state)?;
    let Some(command) = BREAKER_ACTIONS
        .iter()
        .find(|(known, _)| *known == action)
        .map(|(_, command)| *command)
    else {
        return Err(ApiError::NotFound(format!(
            "unknown action '{action}' (allowed: reset, force-open, force-closed, disable, metrics-only)"
        )));
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
    Ok(Json(BreakerActionResult {
        message: format!("circuit breaker '{name}': {action} applied"),
        scope: Scope::of(cluster),
        name,
        new_state: snapshot.state,
        breaker: snapshot,
    }))
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

/// Body of `GET /internal/resilience/config/presets`.
#[derive(Serialize, ToSchema)]
pub struct PresetList {
    /// The presets.
    pub presets: Vec<rconfig::Preset>,
}

/// `GET /internal/resilience/config/presets`.
#[utoipa::path(
    get,
    path = "/internal/resilience/config/presets",
    tag = "presets",
    operation_id = "presets",
    summary = "List presets",
    description = "The shipped presets.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Presets", body = PresetList),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn list_presets(_: OperatorKey) -> Json<PresetList> {
    Json(PresetList {
        presets: rconfig::presets(),
    })
}

/// Body of `GET /internal/resilience/config/presets/{name}`.
#[derive(Serialize, ToSchema)]
pub struct PresetDetail {
    /// The preset.
    pub preset: rconfig::Preset,
    /// The configuration it resolves to (without environment overrides).
    #[schema(value_type = Object)]
    pub resolved: ResilienceConfig,
}

/// The `{name}` of a preset: one of the shipped presets.
struct PresetPath;

impl utoipa::IntoParams for PresetPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![crate::api::openapi::enum_param(
            "name",
            ParameterIn::Path,
            "Preset name",
            rconfig::PRESET_NAMES,
        )]
    }
}

/// `GET /internal/resilience/config/presets/{name}`.
#[utoipa::path(
    get,
    path = "/internal/resilience/config/presets/{name}",
    tag = "presets",
    operation_id = "preset",
    summary = "One preset",
    description = "One preset and the configuration it resolves to. Unknown name: 404.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(PresetPath),
    responses(
        (status = 200, description = "The preset", body = PresetDetail),
        (status = 401), (status = 403), (status = 404), (status = 500), (status = 503),
    )
)]
pub async fn get_preset(
    _: OperatorKey,
    Path(name): Path<String>,
) -> Result<Json<PresetDetail>, ApiError> {
    let preset = rconfig::preset(&name).map_err(|_| {
        ApiError::NotFound(format!(
            "Unknown preset '{name}'. Available presets: [simple, development, production]"
        ))
    })?;
    let resolved = rconfig::resolve(&preset.name, None, &crate::env::MapEnv::default())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(PresetDetail { preset, resolved }))
}

/// A preset's key values, in `PresetsSummary`.
#[derive(Serialize, ToSchema)]
pub struct PresetSummary {
    /// Total attempts.
    pub retry_attempts: u32,
    /// Breaker threshold.
    pub circuit_breaker_threshold: u32,
    /// Breaker recovery seconds.
    pub recovery_timeout: u32,
    /// Default strategy.
    pub default_strategy: rconfig::Strategy,
    /// Operation → strategy overrides.
    #[schema(value_type = BTreeMap<String, rconfig::Strategy>)]
    pub operation_overrides: rconfig::OperationOverrides,
    /// Environments it suits.
    pub environment_contexts: Vec<String>,
    /// What it is for.
    pub description: String,
}

/// Body of `GET /internal/resilience/config/presets-summary`: preset name →
/// summary.
#[derive(Serialize, ToSchema)]
pub struct PresetsSummary(pub BTreeMap<String, PresetSummary>);

/// `GET /internal/resilience/config/presets-summary`.
#[utoipa::path(
    get,
    path = "/internal/resilience/config/presets-summary",
    tag = "presets",
    operation_id = "presets_summary",
    summary = "Presets summary",
    description = "Every preset's key values, by name.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Summary", body = PresetsSummary),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn presets_summary(_: OperatorKey) -> Json<PresetsSummary> {
    let summary = rconfig::presets()
        .into_iter()
        .map(|p| {
            (
                p.name,
                PresetSummary {
                    retry_attempts: p.retry_attempts,
                    circuit_breaker_threshold: p.circuit_breaker_threshold,
                    recovery_timeout: p.recovery_timeout,
                    default_strategy: p.default_strategy,
                    operation_overrides: p.operation_overrides,
                    environment_contexts: p.environment_contexts,
                    description: p.description,
                },
            )
        })
        .collect();
    Json(PresetsSummary(summary))
}

/// `GET /internal/resilience/config/recommend-preset/{environment}`.
#[utoipa::path(
    get,
    path = "/internal/resilience/config/recommend-preset/{environment}",
    tag = "presets",
    operation_id = "recommend_preset",
    summary = "Recommend a preset for an environment",
    description = "The preset that suits a deployment environment name (e.g. `prod`, \
        `staging`, `dev`), with a confidence and the reasoning.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("environment" = String, Path, description = "An environment name")),
    responses(
        (status = 200, description = "Recommendation", body = rconfig::Recommendation),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn recommend(
    _: OperatorKey,
    Path(environment): Path<String>,
) -> Json<rconfig::Recommendation> {
    Json(rconfig::recommend(&environment))
}

/// `GET /internal/resilience/config/recommend-preset-auto`.
#[utoipa::path(
    get,
    path = "/internal/resilience/config/recommend-preset-auto",
    tag = "presets",
    operation_id = "recommend_preset_auto",
    summary = "Recommend a preset for this process",
    description = "Like `recommend-preset`, with the environment detected from the \
        process environment.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Recommendation", body = rconfig::Recommendation),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn recommend_auto(_: OperatorKey) -> Json<rconfig::Recommendation> {
    Json(rconfig::recommend_auto(&ProcessEnv))
}

/// Body of `POST /internal/resilience/config/validate`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(examples(json!({"configuration": {"retry_attempts": 3, "circuit_breaker_threshold": 5}})))]
pub struct ValidateRequest {
    /// The custom configuration to check.
    #[schema(value_type = Object)]
    configuration: Value,
}

/// `POST /internal/resilience/config/validate`: always 200 with
/// `{is_valid, errors, warnings, suggestions}`.
#[utoipa::path(
    post,
    path = "/internal/resilience/config/validate",
    tag = "presets",
    operation_id = "validate_config",
    summary = "Validate a custom configuration",
    description = "Checks a custom configuration (the `RESILIENCE_CUSTOM_CONFIG` schema). \
        Always 200 for a well-formed request: read `is_valid`.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    request_body(content = ValidateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Validation report", body = rconfig::ValidationReport),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 503),
    )
)]
pub async fn validate(
    _: OperatorKey,
    JsonBody(request): JsonBody<ValidateRequest>,
) -> Json<rconfig::ValidationReport> {
    Json(rconfig::validate_custom_value(&request.configuration))
}
