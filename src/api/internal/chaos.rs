//! Game days: `/internal/chaos` starts, lists and aborts fault-injection
//! experiments (see [`crate::chaos`]). Starting and aborting need
//! `CHAOS_ENABLED=true` (403 `CHAOS_DISABLED` otherwise); listing always
//! answers, so the dashboard can show its banner. Every start and abort is
//! recorded in the audit trail (`chaos.started`, `chaos.aborted`).

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::chaos::{ChaosError, ExperimentRequest};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn api_error(e: ChaosError) -> ApiError {
    match e {
        ChaosError::Disabled => ApiError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "CHAOS_DISABLED",
            message: e.to_string(),
            retry_after: None,
        },
        ChaosError::Invalid { field, .. } => ApiError::field(field, e.to_string()),
    }
}

/// `POST /internal/chaos`: starts an experiment (201).
pub async fn start(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    JsonBody(body): JsonBody<ExperimentRequest>,
) -> Result<Response, ApiError> {
    let configured: Vec<_> = state.engine.providers().kinds().collect();
    let e = state
        .engine
        .chaos()
        .start(body, &who.id, &configured)
        .await
        .map_err(api_error)?;
    state.identity.audit.record(
        &who,
        "chaos.started",
        &e.id,
        json!({"provider": e.provider, "operation": e.operation, "fault": e.fault,
               "probability": e.probability, "duration_seconds": e.duration_seconds,
               "note": e.note}),
    );
    Ok((StatusCode::CREATED, Json(json!(e))).into_response())
}

/// `GET /internal/chaos`: active and recently ended experiments.
pub async fn list(State(state): State<AppState>, OperatorKey(_): OperatorKey) -> Json<Value> {
    let chaos = state.engine.chaos();
    Json(json!({
        "enabled": chaos.enabled(),
        "active": chaos.is_active(),
        "scope": if chaos.shared() { "cluster" } else { "instance" },
        "experiments": chaos.active(),
        "recent": chaos.recent(),
    }))
}

/// `DELETE /internal/chaos/{id}`: aborts one experiment (404 when no
/// active one has this id).
pub async fn abort(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state
        .engine
        .chaos()
        .abort(&id, &who.id)
        .await
        .map_err(api_error)?
    {
        Some(e) => {
            state.identity.audit.record(
                &who,
                "chaos.aborted",
                &e.id,
                json!({"injected": e.injected}),
            );
            Ok(Json(json!(e)))
        }
        None => Err(ApiError::NotFound(format!(
            "no active chaos experiment {id:?}"
        ))),
    }
}

/// `DELETE /internal/chaos`: aborts every active experiment.
pub async fn abort_all(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    let aborted = state
        .engine
        .chaos()
        .abort_all(&who.id)
        .await
        .map_err(api_error)?;
    for e in &aborted {
        state.identity.audit.record(
            &who,
            "chaos.aborted",
            &e.id,
            json!({"injected": e.injected}),
        );
    }
    Ok(Json(
        json!({"aborted": aborted.len(), "experiments": aborted}),
    ))
}
