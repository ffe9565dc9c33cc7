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
use crate::jobs::{
    JobStatus, JobView, JobsError, ListFilter, NewJob, SubmitResult, canonical_hash,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use utoipa::ToSchema;

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
#[utoipa::path(
    get,
    path = "/internal/jobs/stats",
    tag = "jobs",
    operation_id = "job_stats",
    summary = "Job statistics",
    description = "The async jobs at a glance: store (`memory` or `redis`) and whether \
        it answers, paused or not, queued / delayed / running counts, final outcomes by \
        status, the oldest queued job's age, every consumer with its pending deliveries \
        and last-seen age, the dead-letter size, and this instance's queue-wait and \
        run-time percentiles.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Job statistics", body = crate::jobs::JobsStats),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn stats(State(state): State<AppState>, _: OperatorKey) -> Json<crate::jobs::JobsStats> {
    Json(state.engine.jobs().stats().await)
}

/// A job as operators see it: the client's view plus owner and consumer.
#[derive(Serialize, ToSchema)]
pub struct OperatorJobView {
    /// The client's view of the job.
    #[serde(flatten)]
    pub job: JobView,
    /// The identity that submitted it.
    pub owner: String,
    /// The consumer (instance) that last ran it, if any.
    #[schema(required = true)]
    pub consumer: Option<String>,
}

impl From<&crate::jobs::JobRecord> for OperatorJobView {
    fn from(r: &crate::jobs::JobRecord) -> OperatorJobView {
        OperatorJobView {
            job: JobView::from(r),
            owner: r.owner.clone(),
            consumer: r.consumer.clone(),
        }
    }
}

/// Body of `GET /internal/jobs/dead`.
#[derive(Serialize, ToSchema)]
pub struct DeadJobs {
    /// Jobs listed.
    pub count: usize,
    /// The dead-lettered jobs.
    pub jobs: Vec<OperatorJobView>,
}

/// `GET /internal/jobs/dead`.
#[utoipa::path(
    get,
    path = "/internal/jobs/dead",
    tag = "jobs",
    operation_id = "dead_jobs",
    summary = "Dead-lettered jobs",
    description = "Dead-lettered jobs (delivered `JOB_MAX_DELIVERIES` times without an \
        outcome: `failed` with `JOB_POISONED`), newest first, at most 100, with their \
        owner and last consumer.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Dead-lettered jobs", body = DeadJobs),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn dead(
    State(state): State<AppState>,
    _: OperatorKey,
) -> Result<Json<DeadJobs>, ApiError> {
    let jobs = state
        .engine
        .jobs()
        .dead(100)
        .await
        .map_err(|e| jobs_error(&state, e))?;
    let views: Vec<OperatorJobView> = jobs.iter().map(OperatorJobView::from).collect();
    Ok(Json(DeadJobs {
        count: views.len(),
        jobs: views,
    }))
}

/// `POST /internal/jobs/{id}/retry`.
#[utoipa::path(
    post,
    path = "/internal/jobs/{job_id}/retry",
    tag = "jobs",
    operation_id = "retry_job",
    summary = "Retry a job",
    description = "Runs a failed (e.g. dead-lettered) or expired job again: it is queued \
        again with its count of unfinished deliveries reset and a fresh time to live. A job \
        still queued or running is a 409.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("job_id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job, queued again", body = OperatorJobView),
        (status = 401), (status = 403), (status = 404), (status = 409), (status = 503),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<OperatorJobView>, ApiError> {
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
    Ok(Json(OperatorJobView::from(&record)))
}

/// Body of `POST /internal/jobs/pause` and `/resume`.
#[derive(Serialize, ToSchema)]
pub struct JobsPaused {
    /// True after a pause, false after a resume.
    pub paused: bool,
    /// When the switch was made (RFC 3339).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

async fn set_paused(
    state: &AppState,
    who: &crate::identity::Identity,
    paused: bool,
) -> Result<Json<JobsPaused>, ApiError> {
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
    Ok(Json(JobsPaused {
        paused,
        timestamp: crate::time::now_rfc3339(),
    }))
}

/// `POST /internal/jobs/pause`: every instance stops taking deliveries.
#[utoipa::path(
    post,
    path = "/internal/jobs/pause",
    tag = "jobs",
    operation_id = "pause_jobs",
    summary = "Pause job consumption",
    description = "Stops job consumption on every instance (with Redis; this one with \
        the memory store), e.g. during an incident. Running jobs finish; submissions \
        are still accepted and wait.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Paused", body = JobsPaused),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<JobsPaused>, ApiError> {
    set_paused(&state, &who, true).await
}

/// `POST /internal/jobs/resume`.
#[utoipa::path(
    post,
    path = "/internal/jobs/resume",
    tag = "jobs",
    operation_id = "resume_jobs",
    summary = "Resume job consumption",
    description = "Restarts job consumption everywhere after a pause.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Resumed", body = JobsPaused),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
) -> Result<Json<JobsPaused>, ApiError> {
    set_paused(&state, &who, false).await
}
