//! `GET /internal/cluster`: the instances sharing this Redis, what each runs
//! (version, preset, configuration version, breaker states) and where one
//! disagrees with the rest (see [`crate::cluster`]).

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::json::Json;
use crate::cluster::{ClusterView, InstanceInfo};
use axum::extract::State;

/// The operation description of `GET /internal/cluster`.
const CLUSTER_DESCRIPTION: &str = "The instances sharing this Redis (heartbeat within 5 s): id, \
    version, preset, configuration version and every breaker's state, where they \
    disagree with the majority, this instance's sync counters and the propagation \
    delay of remote transitions (p50/p99/max). Without `REDIS_URL`, or with \
    `BREAKER_SHARING=off`, this instance alone with `sharing` saying why.";

/// `GET /internal/cluster`. Without Redis (or with `BREAKER_SHARING=off`)
/// it lists this instance alone, with `sharing` saying why.
#[utoipa::path(
    get,
    path = "/internal/cluster",
    tag = "resilience",
    operation_id = "cluster",
    summary = "Instances of the cluster",
    description = CLUSTER_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "The cluster", body = ClusterView),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn cluster(State(state): State<AppState>, _: OperatorKey) -> Json<ClusterView> {
    let Some(cluster) = state.engine.cluster() else {
        let sharing = if state.engine.settings().redis_url.is_some() {
            "off"
        } else {
            "not_configured"
        };
        let me = standalone(&state);
        return Json(ClusterView {
            instance_id: me.id.clone(),
            sharing: sharing.into(),
            redis_error: None,
            instances: vec![me],
            agreed: true,
            disagreements: Vec::new(),
            events: None,
            propagation: None,
        });
    };
    let (instances, error) = match cluster.instances().await {
        Ok(all) => (all, None),
        Err(e) => (vec![cluster.heartbeat()], Some(e.to_string())),
    };
    let disagreements = crate::cluster::disagreements(&instances);
    Json(ClusterView {
        instance_id: cluster.instance_id().to_string(),
        sharing: if cluster.is_live() { "live" } else { "local" }.into(),
        redis_error: error,
        instances,
        agreed: disagreements.is_empty(),
        disagreements,
        events: Some(cluster.event_counts()),
        propagation: Some(cluster.propagation()),
    })
}

/// This instance's entry when nothing is shared.
fn standalone(state: &AppState) -> InstanceInfo {
    let config = state.engine.resilience().config();
    InstanceInfo {
        id: state.engine.settings().jobs.instance_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: crate::time::rfc3339(
            chrono::Utc::now()
                - chrono::Duration::from_std(state.engine.uptime()).unwrap_or_default(),
        ),
        heartbeat_ms: crate::time::unix_ms(),
        preset: config.preset.clone(),
        config_version: crate::cluster::config_version(&config),
        sharing: "local".into(),
        breakers: state
            .engine
            .resilience()
            .breakers()
            .iter()
            .map(|b| (b.name().to_string(), b.state()))
            .collect(),
    }
}
