//! `GET /internal/cluster`: the instances sharing this Redis, what each runs
//! (version, preset, configuration version, breaker states) and where one
//! disagrees with the rest (see [`crate::cluster`]).

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::json::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;

/// `GET /internal/cluster`. Without Redis (or with `BREAKER_SHARING=off`)
/// it lists this instance alone, with `sharing` saying why.
pub async fn cluster(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let Some(cluster) = state.engine.cluster() else {
        let sharing = if state.engine.settings().redis_url.is_some() {
            "off"
        } else {
            "not_configured"
        };
        let me = standalone(&state);
        return Json(json!({
            "instance_id": me["id"],
            "sharing": sharing,
            "instances": [me],
            "disagreements": [],
            "agreed": true,
        }));
    };
    let (instances, error) = match cluster.instances().await {
        Ok(all) => (all, None),
        Err(e) => (vec![cluster.heartbeat()], Some(e.to_string())),
    };
    let disagreements = crate::cluster::disagreements(&instances);
    let stats = cluster.stats();
    Json(json!({
        "instance_id": cluster.instance_id(),
        "sharing": if cluster.is_live() { "live" } else { "local" },
        "redis_error": error,
        "instances": instances,
        "agreed": disagreements.is_empty(),
        "disagreements": disagreements,
        "events": {
            "published": stats.published.load(Relaxed),
            "applied": stats.applied.load(Relaxed),
            "dropped": stats.dropped.load(Relaxed),
            "failed": stats.failed.load(Relaxed),
            "probe_leases_won": stats.leases_won.load(Relaxed),
        },
        "propagation": cluster.propagation(),
    }))
}

/// This instance's entry when nothing is shared.
fn standalone(state: &AppState) -> Value {
    let config = state.engine.resilience().config();
    let breakers: serde_json::Map<String, Value> = state
        .engine
        .resilience()
        .breakers()
        .iter()
        .map(|b| (b.name().to_string(), json!(b.state())))
        .collect();
    json!({
        "id": state.engine.settings().jobs.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
        "heartbeat_ms": crate::time::unix_ms(),
        "preset": config.preset,
        "config_version": crate::cluster::config_version(&config),
        "sharing": "local",
        "breakers": breakers,
    })
}
