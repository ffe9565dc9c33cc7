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
    Accepted, JobStatus, JobView, JobsError, ListFilter, NewJob, SubmitResult, canonical_hash,
};
use crate::providers::ErrorClass;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

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

/// The job's own fields of a submission, which `submit` takes out of the
/// body before reading the rest as a `/process` body.
const CALLBACK_URL: &str = "callback_url";
const METADATA: &str = "metadata";
const TTL_SECONDS: &str = "ttl_seconds";

// The schema of the body `submit` reads: it takes the object apart field by
// field (to hash the raw body for idempotency and to name the field of a
// bad value) and reads the rest as a `ProcessRequest`, so there is no one
// type to derive it from; the test `job_request_names_what_submit_reads`
// keeps its fields to the ones `submit` takes out and their limits to the
// ones it enforces.
/// Body of `POST /v1/jobs`: the `/process` body plus the job's own fields.
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)]
#[schema(examples(json!({
    "text": "The city of Riverton launched a solar energy program this spring. The program will install panels on two hundred public buildings. Officials expect the panels to cut the city energy costs by a third.",
    "operation": "summarize",
    "options": {"max_length": 25},
    "metadata": {"ticket": "T-1042"},
    "ttl_seconds": 600
})))]
pub struct JobRequest {
    /// The `/process` fields, validated exactly as `/process` does.
    #[serde(flatten)]
    request: ProcessRequest,
    /// Where to POST the final job (signed `Keel-Signature`); `http` or
    /// `https`. In staging/production a private, loopback or link-local
    /// target is a 422 unless `JOB_WEBHOOK_ALLOW_PRIVATE=true`, and
    /// callbacks need `JOB_WEBHOOK_SECRET`.
    #[schema(format = "uri")]
    callback_url: Option<String>,
    /// The client's own JSON object (at most 1024 bytes serialised), echoed back.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// How long keel may keep trying, in seconds (default `JOB_DEFAULT_TTL_SECONDS`).
    #[schema(minimum = 1, maximum = 86400, default = 3600)]
    ttl_seconds: Option<u64>,
}

/// The `Idempotency-Key` header, as [`idempotency_key`] reads it.
struct IdempotencyKey;

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1–255 visible ASCII characters; a repeat returns the existing job",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}

/// The operation description of `POST /v1/jobs`.
const SUBMIT_DESCRIPTION: &str = "Hands keel a job and answers at once with its id; keel \
    runs it on whichever instance is alive, through the same pipeline as `/process` (cache, \
    breakers, retries, fallback). The body is the `/process` body plus optional \
    `callback_url`, `metadata` (≤ 1 KB, echoed back) and `ttl_seconds` (how long keel may \
    keep trying, 1–86400, default `JOB_DEFAULT_TTL_SECONDS`). Validated exactly like \
    `/process`: a job that can only fail is a 422 now. Answers 202 with \
    `Location: /v1/jobs/{job_id}`. With `Idempotency-Key`, the same key and body from the \
    same caller within 24 h answers 200 with the existing job; a different body is 409 \
    `IDEMPOTENCY_CONFLICT`. 503 `QUEUE_FULL` when the queue holds `JOB_QUEUE_MAX` jobs, 503 \
    `JOB_STORE_UNAVAILABLE` when a durable store cannot persist it (never accepted and then \
    lost); both with `Retry-After`. Costs one rate-limit unit.";

/// `POST /v1/jobs`.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "submit_job",
    summary = "Submit an async job",
    description = SUBMIT_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(IdempotencyKey),
    request_body(content = JobRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted (see `Location`)", body = Accepted, headers(
            ("Location" = String, description = "`/v1/jobs/{job_id}`: where to poll the job"),
        )),
        (status = 200, description = "An idempotent repeat: the existing job", body = Accepted,
            headers(
                ("Location" = String, description = "`/v1/jobs/{job_id}`: where to poll the job"),
            )),
        (status = 400), (status = 401), (status = 409), (status = 413), (status = 415),
        (status = 422), (status = 429), (status = 503),
    )
)]
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
    let callback_url = match fields.remove(CALLBACK_URL) {
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
    let metadata = match fields.remove(METADATA) {
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
    let ttl = match fields.remove(TTL_SECONDS) {
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

/// Longest `?wait=` of `GET /v1/jobs/{id}`, seconds.
const MAX_WAIT_SECONDS: f64 = 60.0;

/// The `?wait=` query of `GET /v1/jobs/{id}`, as [`get`] reads it.
struct WaitQuery;

impl utoipa::IntoParams for WaitQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("wait")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "Seconds to wait for a final state (fractions allowed)",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .minimum(Some(0.0))
                        .maximum(Some(MAX_WAIT_SECONDS))
                        .default(Some(0.0.into())),
                ))
                .build(),
        ]
    }
}

/// `GET /v1/jobs/{id}` (`?wait=N`, 0–60 seconds).
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    tag = "jobs",
    operation_id = "get_job",
    summary = "Get a job",
    description = "A job: `status` is `queued`, `running`, `succeeded`, `failed`, \
        `cancelled` or `expired`; `result` (once succeeded) is exactly the `/process` \
        success body; `error` (once failed or expired) is `{error, error_code, \
        retryable}`; `webhook` records the callback's outcome. Only the caller that \
        created the job sees it (anyone else: 404). `?wait=N` holds the request until \
        the job is final or N seconds pass (answering within milliseconds of the job \
        finishing); the body then says where the job is either way.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("job_id" = String, Path, description = "The job id from the submission"), WaitQuery),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 401), (status = 404), (status = 422), (status = 429), (status = 503),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobView>, ApiError> {
    let wait = match query.get("wait") {
        None => Duration::ZERO,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(&s) => {
                Duration::from_secs_f64(s)
            }
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

/// The query of `GET /v1/jobs`, as [`list`] reads it.
struct ListQuery;

impl utoipa::IntoParams for ListQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        use crate::api::openapi::{enum_param, integer_query};
        vec![
            enum_param(
                "status",
                ParameterIn::Query,
                "Only jobs in this status",
                JobStatus::ALL.map(JobStatus::as_str),
            ),
            enum_param(
                "operation",
                ParameterIn::Query,
                "Only jobs of this operation",
                crate::job::Operation::ALL.map(crate::job::Operation::as_str),
            ),
            integer_query(
                "limit",
                "Page size",
                1,
                MAX_LIMIT as i64,
                DEFAULT_LIMIT as i64,
            ),
            ParameterBuilder::new()
                .name("cursor")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some("The previous page's `next_cursor`"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}

/// Body of `GET /v1/jobs`: a page of the caller's jobs.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs?status=&operation=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    summary = "List your jobs",
    description = "The caller's jobs, newest first, `limit` per page; pass `next_cursor` \
        back as `cursor` for the next page (`null` on the last).",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 401), (status = 422), (status = 429), (status = 503),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, ApiError> {
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
    Ok(Json(JobList {
        jobs: records.iter().map(JobView::from).collect(),
        next_cursor: next,
    }))
}

/// `DELETE /v1/jobs/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{job_id}",
    tag = "jobs",
    operation_id = "cancel_job",
    summary = "Cancel a job",
    description = "Cancels a job: a queued job is `cancelled` at once; a running one is \
        stopped on whichever instance runs it (its provider call dropped) within a \
        second. Answers the job as it now is. A job already final is a 409.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("job_id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The cancelled job", body = JobView),
        (status = 401), (status = 404), (status = 409), (status = 429), (status = 503),
    )
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn job_request_names_what_submit_reads() {
        let doc = serde_json::to_value(crate::api::openapi::public_doc()).unwrap();
        let schema = &doc["components"]["schemas"]["JobRequest"]["allOf"];
        assert_eq!(
            schema[0]["$ref"], "#/components/schemas/ProcessRequest",
            "the rest of the body is the /process body"
        );
        let own: BTreeSet<&str> = schema[1]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(own, BTreeSet::from([CALLBACK_URL, METADATA, TTL_SECONDS]));
        let ttl = &schema[1]["properties"][TTL_SECONDS];
        assert_eq!(ttl["maximum"], json!(MAX_TTL_SECONDS));
        assert_eq!(ttl["minimum"], json!(1));
        // The documented example reads as the schema type says.
        let example = doc["components"]["schemas"]["JobRequest"]["examples"][0].clone();
        let _: JobRequest = serde_json::from_value(example).expect("the example is a JobRequest");
        // The list query's page size is the one `list` enforces.
        let list = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
        let limit = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], json!(MAX_LIMIT));
        assert_eq!(limit["schema"]["default"], json!(DEFAULT_LIMIT));
    }
}
