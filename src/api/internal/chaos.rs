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
use crate::chaos::{ChaosError, Experiment, ExperimentRequest};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// Body of `GET /internal/chaos`: active and recently ended experiments.
#[derive(Serialize, ToSchema)]
pub struct ChaosList {
    /// `CHAOS_ENABLED`.
    pub enabled: bool,
    /// Whether an experiment is active.
    pub active: bool,
    /// `cluster` when experiments are shared through Redis, else `instance`.
    pub scope: &'static str,
    /// The active experiments.
    pub experiments: Vec<Experiment>,
    /// Recently ended experiments.
    pub recent: Vec<Experiment>,
}

/// Body of `DELETE /internal/chaos`: what was aborted.
#[derive(Serialize, ToSchema)]
pub struct ChaosAborted {
    /// How many experiments were aborted.
    pub aborted: usize,
    /// The aborted experiments.
    pub experiments: Vec<Experiment>,
}

/// The operation description of `POST /internal/chaos`.
const START_DESCRIPTION: &str = "Starts a fault-injection experiment (game day): calls to `provider` \
    (and `operation`, when given) fail with `fault` at `probability` for \
    `duration_seconds`, injected at the provider-call boundary so breakers, retries, \
    fallback and metrics react as to a real fault. Refused (403 `CHAOS_DISABLED`) \
    unless `CHAOS_ENABLED=true`. Expires by itself. With `REDIS_URL` set it applies to \
    every instance within about 250 ms (`scope: cluster`; an abort on any instance \
    ends it everywhere), otherwise, or when Redis cannot be written, to this \
    instance (`scope: instance`). Audited (`chaos.started`).";

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
#[utoipa::path(
    post,
    path = "/internal/chaos",
    tag = "resilience",
    operation_id = "start_chaos",
    summary = "Start a chaos experiment",
    description = START_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    request_body(content = ExperimentRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The experiment (id, created_by, starts_at, ends_at)", body = Experiment),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 503),
    )
)]
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
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

/// `GET /internal/chaos`: active and recently ended experiments.
#[utoipa::path(
    get,
    path = "/internal/chaos",
    tag = "resilience",
    operation_id = "list_chaos",
    summary = "List chaos experiments",
    description = "Active and recently ended chaos experiments, with `enabled` and \
        `active`. Answers even when `CHAOS_ENABLED` is off.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Experiments", body = ChaosList),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn list(State(state): State<AppState>, OperatorKey(_): OperatorKey) -> Json<ChaosList> {
    let chaos = state.engine.chaos();
    Json(ChaosList {
        enabled: chaos.enabled(),
        active: chaos.is_active(),
        scope: if chaos.shared() {
            "cluster"
        } else {
            "instance"
        },
        experiments: chaos.active(),
        recent: chaos.recent(),
    })
}

/// `DELETE /internal/chaos/{id}`: aborts one experiment (404 when no
/// active one has this id).
#[utoipa::path(
    delete,
    path = "/internal/chaos/{id}",
    tag = "resilience",
    operation_id = "abort_chaos",
    summary = "Abort a chaos experiment",
    description = "Aborts one active chaos experiment. Audited (`chaos.aborted`).",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("id" = String, Path, description = "The experiment's id (`chaos_…`)")),
    responses(
        (status = 200, description = "The aborted experiment", body = Experiment),
        (status = 401), (status = 403), (status = 404), (status = 503),
    )
)]
pub async fn abort(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<Experiment>, ApiError> {
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
            Ok(Json(e))
        }
        None => Err(ApiError::NotFound(format!(
            "no active chaos experiment {id:?}"
        ))),
    }
}

/// `DELETE /internal/chaos`: aborts every active experiment.
#[utoipa::path(
    delete,
    path = "/internal/chaos",
    tag = "resilience",
    operation_id = "abort_all_chaos",
    summary = "Abort all chaos experiments",
    description = "Aborts every active chaos experiment. Audited (`chaos.aborted`).",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "The aborted experiments", body = ChaosAborted),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn abort_all(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<ChaosAborted>, ApiError> {
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
    Ok(Json(ChaosAborted {
        aborted: aborted.len(),
        experiments: aborted,
    }))
}
