//! The async jobs endpoints: `POST /v1/jobs`, `GET /v1/jobs/{id}` (with
//! `?wait=`), `GET /v1/jobs`, `DELETE /v1/jobs/{id}`, and the operator routes
//! under `/internal/jobs`.
//!
//! A submission is validated exactly like `/process` (the `/process` fields
//! go through [`ProcessRequest::validate_with`] and the objects-only reader), so a job that can only fail is
//! refused with 422 at once. Jobs are scoped to the submitting identity:
//! anyone else gets 404, never a hint that the id exists.

use super::AppState;
use super::auth::{OperatorKey, RequireKey};
use super::error::ApiError;
use super::extract::JsonBody;
use super::json::Json;
use super::text::ProcessRequest;
use crate::engine::WeakEngine;
use crate::jobs::runner::{RunFailure, Runner};
use crate::jobs::{
    JobStatus, JobView, JobsError, ListFilter, NewJob, SubmitResult, canonical_hash,
};
use crate::providers::ErrorClass;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// Runs a job's stored request through [`super::text::run_request`], the
/// `/process` pipeline: the [`Runner`] [`AppState`] attaches to the jobs
/// subsystem. It holds the engine weakly, since the engine owns the jobs
/// subsystem that holds it.
pub struct ProcessRunner(WeakEngine);

impl ProcessRunner {
    /// The runner for `engine`.
    pub fn new(engine: &crate::engine::Engine) -> ProcessRunner {
        ProcessRunner(engine.downgrade())
    }
}

impl Runner for ProcessRunner {
    fn start(
        &self,
        request: Value,
    ) -> Option<BoxFuture<'static, Result<Option<Value>, RunFailure>>> {
        let engine = self.0.upgrade()?;
        Some(Box::pin(async move {
            let outcome = match super::strict_json::from_value::<ProcessRequest>(request) {
                Ok(request) => super::text::run_request(&engine, request, None).await,
                Err(e) => Err(ApiError::validation(format!("invalid stored request: {e}"))),
            };
            match outcome {
                Ok(response) => Ok(serde_json::to_value(&response).ok()),
                Err(ApiError::Upstream(e)) if e.class() == ErrorClass::Transient => {
                    Err(RunFailure::Unavailable {
                        reason: e.to_string(),
                        retry_after: e.retry_after,
                    })
                }
                Err(e) => Err(RunFailure::Failed {
                    message: e.to_string(),
                    code: e.code().to_string(),
                }),
            }
        }))
    }
}

/// Largest `metadata`, serialised.
const MAX_METADATA_BYTES: usize = 1024;
/// Longest `ttl_seconds`.
const MAX_TTL_SECONDS: u64 = 86_400;
/// Default and largest page of `GET /v1/jobs`.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

fn jobs_error(state: &AppState, e: JobsError) -> ApiError {
    match e {
        JobsError::StoreUnavailable(m) => {
            let cooloff = state.engine.settings().redis.cooloff;
            ApiError::Coded {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "JOB_STORE_UNAVAILABLE",
                message: format!("the job store is unavailable; retry shortly ({m})"),
                retry_after: Some(cooloff.max(Duration::from_secs(1))),
            }
        }
        JobsError::QueueFull(_) => ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "QUEUE_FULL",
            message: e.to_string(),
            retry_after: Some(Duration::from_secs(5)),
        },
        JobsError::IdempotencyConflict => ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "IDEMPOTENCY_CONFLICT",
            message: e.to_string(),
            retry_after: None,
        },
        JobsError::NotFound(_) => ApiError::NotFound(e.to_string()),
        JobsError::AlreadyFinal(..) => ApiError::Conflict(e.to_string()),
        JobsError::Busy(_) => ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "SERVICE_UNAVAILABLE",
            message: e.to_string(),
            retry_after: Some(Duration::from_secs(1)),
        },
    }
}

/// The `Idempotency-Key` header: 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let ok = !raw.is_empty()
        && raw.len() <= 255
        && raw.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
    if !ok {
        return Err(ApiError::BadRequest(
            "invalid Idempotency-Key header: expected 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(raw.to_str().ok().map(str::to_string))
}

/// `POST /v1/jobs`.
pub async fn submit(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let idem = idempotency_key(&headers)?;
    let Value::Object(mut fields) = body else {
        return Err(ApiError::validation(
            "the request body must be a JSON object",
        ));
    };
    let request_hash = canonical_hash(&Value::Object(fields.clone()));
    let jobs = state.engine.jobs();
    let callback_url = match fields.remove("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => {
            crate::jobs::webhook::check_target(&url, jobs.config())
                .await
                .map_err(|m| ApiError::field("callback_url", m))?;
            Some(url)
        }
        Some(_) => {
            return Err(ApiError::field(
                "callback_url",
                "callback_url must be a string",
            ));
        }
    };
    let metadata = match fields.remove("metadata") {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => {
            let size = m.to_string().len();
            if size > MAX_METADATA_BYTES {
                return Err(ApiError::Validation {
                    message: format!(
                        "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON, got {size}"
                    ),
                    details: Some(
                        json!({"field": "metadata", "max": MAX_METADATA_BYTES, "length": size}),
                    ),
                });
            }
            Some(m)
        }
        Some(_) => {
            return Err(ApiError::field(
                "metadata",
                "metadata must be a JSON object",
            ));
        }
    };
    let ttl = match fields.remove("ttl_seconds") {
        None | Some(Value::Null) => jobs.config().default_ttl,
        Some(v) => match v.as_u64() {
            Some(s) if (1..=MAX_TTL_SECONDS).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(ApiError::Validation {
                    message: format!("ttl_seconds must be an integer from 1 to {MAX_TTL_SECONDS}"),
                    details: Some(
                        json!({"field": "ttl_seconds", "min": 1, "max": MAX_TTL_SECONDS}),
                    ),
                });
            }
        },
    };
    let request = Value::Object(fields);
    // Exactly the /process validation: refuse now what could only fail later.
    // Read with the objects-only rule of every body (as /process and batch items).
    let parsed: ProcessRequest = super::strict_json::from_value(request.clone()).map_err(|e| {
        ApiError::validation(format!(
            "Failed to deserialize the JSON body into the target type: {e}"
        ))
    })?;
    let validated = parsed.validate_with(state.engine.settings().strict_options)?;
    let job = NewJob {
        owner: identity.owner(),
        operation: validated.job.operation.as_str().to_string(),
        request,
        metadata,
        callback_url,
        ttl,
        idempotency_key: idem,
        request_hash,
        traceparent: crate::telemetry::current_traceparent(),
    };
    match jobs.submit(job).await.map_err(|e| jobs_error(&state, e))? {
        SubmitResult::Created(accepted) => {
            let mut response = (StatusCode::ACCEPTED, Json(&accepted)).into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", accepted.job_id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        SubmitResult::Existing(accepted) => {
            let mut response = (StatusCode::OK, Json(&accepted)).into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", accepted.job_id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
    }
}

/// `GET /v1/jobs/{id}` (`?wait=N`, 0–60 seconds).
pub async fn get(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobView>, ApiError> {
    let wait = match query.get("wait") {
        None => Duration::ZERO,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=60.0).contains(&s) => Duration::from_secs_f64(s),
            _ => {
                return Err(ApiError::Validation {
                    message: "wait must be a number of seconds from 0 to 60".into(),
                    details: Some(json!({"field": "wait", "min": 0, "max": 60})),
                });
            }
        },
    };
    let record = state
        .engine
        .jobs()
        .wait(&identity.owner(), &id, wait)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    Ok(Json(JobView::from(&record)))
}

/// `GET /v1/jobs?status=&operation=&limit=&cursor=`.
pub async fn list(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.get("status").map(|s| s.trim()) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<JobStatus>().map_err(|_| ApiError::Validation {
            message: format!("unknown status '{s}'"),
            details: Some(json!({"field": "status", "allowed": JobStatus::ALL})),
        })?),
    };
    let operation = match query.get("operation").map(|s| s.trim()) {
        None | Some("") => None,
        Some(op) => {
            let parsed: crate::job::Operation =
                op.parse()
                    .map_err(|e: crate::job::UnknownOperation| ApiError::Validation {
                        message: e.to_string(),
                        details: Some(
                            json!({"field": "operation", "allowed": crate::job::Operation::ALL}),
                        ),
                    })?;
            Some(parsed.as_str().to_string())
        }
    };
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::Validation {
                    message: format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                    details: Some(json!({"field": "limit", "min": 1, "max": MAX_LIMIT})),
                });
            }
        },
    };
    let filter = ListFilter {
        status,
        operation,
        limit,
        cursor: query.get("cursor").filter(|c| !c.is_empty()).cloned(),
    };
    let (records, next) = state
        .engine
        .jobs()
        .list(&identity.owner(), &filter)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    let views: Vec<JobView> = records.iter().map(JobView::from).collect();
    Ok(Json(json!({"jobs": views, "next_cursor": next})))
}

/// `DELETE /v1/jobs/{id}`.
pub async fn cancel(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let record = state
        .engine
        .jobs()
        .cancel(&identity.owner(), &id)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    Ok(Json(JobView::from(&record)))
}

/// `GET /internal/jobs/stats`.
pub async fn stats(State(state): State<AppState>, _: OperatorKey) -> Json<crate::jobs::JobsStats> {
    Json(state.engine.jobs().stats().await)
}

/// A dead-lettered job as operators see it (with its owner and request).
fn operator_view(r: &crate::jobs::JobRecord) -> Value {
    let mut v = json!(JobView::from(r));
    if let Value::Object(m) = &mut v {
        m.insert("owner".into(), json!(r.owner));
        m.insert("consumer".into(), json!(r.consumer));
    }
    v
}

/// `GET /internal/jobs/dead`.
pub async fn dead(State(state): State<AppState>, _: OperatorKey) -> Result<Json<Value>, ApiError> {
    let jobs = state
        .engine
        .jobs()
        .dead(100)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    let views: Vec<Value> = jobs.iter().map(operator_view).collect();
    Ok(Json(json!({"count": views.len(), "jobs": views})))
}

/// `POST /internal/jobs/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state
        .engine
        .jobs()
        .retry(&id)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    tracing::info!(job_id = %id, by = %who.id, "job retried by an operator");
    state
        .identity
        .audit
        .record(&who, "job.retried", &id, json!({}));
    Ok(Json(operator_view(&record)))
}

async fn set_paused(
    state: &AppState,
    who: &crate::identity::Identity,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    state
        .engine
        .jobs()
        .set_paused(paused)
        .await
        .map_err(|e| jobs_error(state, e))?;
    tracing::info!(by = %who.id, paused, "job consumption switched");
    state.identity.audit.record(
        who,
        if paused {
            "jobs.paused"
        } else {
            "jobs.resumed"
        },
        "jobs",
        json!({}),
    );
    Ok(Json(
        json!({"paused": paused, "timestamp": crate::time::now_rfc3339()}),
    ))
}

/// `POST /internal/jobs/pause`: every instance stops taking deliveries.
pub async fn pause(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &who, true).await
}

/// `POST /internal/jobs/resume`.
pub async fn resume(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &who, false).await
}
