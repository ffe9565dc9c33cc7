//! The text-processing endpoints: `process`, `batch_process`, `batch_status`
//! and `operations`.
//!
//! Validation happens here, once: a [`ProcessRequest`] becomes a sanitized
//! [`Job`] or a 422 naming the field. Nothing is silently cut from the text:
//! it is trimmed and stripped of control characters, and suspected prompt
//! injection is flagged in `metadata`, never deleted.
//!
//! `options` is any JSON object, as in the reference API: the names an
//! operation uses are type- and range-checked (a whole-number float such as
//! `14.0` counts as an integer, as pydantic has it); any other name is
//! ignored and reported in `metadata.ignored_options` with a "did you mean"
//! suggestion, or — with `STRICT_OPTIONS=true` — refused with a 422 naming
//! the field, the allowed names and the suggestion.

use super::AppState;
use super::auth::{OptionalKey, RequireKey};
use super::error::{ApiError, code_for_status};
use super::extract::JsonBody;
use super::json::Json;
use super::limits::{self, ClientIdentity};
use crate::job::{Job, JobOptions, JobOutput, Operation, Sentiment};
use crate::outcome::JobResult;
use crate::providers::TokenUsage;
use crate::sanitize::sanitize_text;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Shortest accepted text, in characters after trimming.
pub const MIN_TEXT_CHARS: usize = 10;
/// Longest accepted text, in characters after trimming.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest accepted question, in characters after trimming.
pub const MAX_QUESTION_CHARS: usize = 1_000;
/// Longest accepted client batch id.
const MAX_BATCH_ID_CHARS: usize = 100;

/// Allowed option ranges: (name, min, max).
const OPTION_RANGES: [(&str, i64, i64); 3] = [
    ("max_length", 10, 1000),
    ("max_points", 1, 20),
    ("num_questions", 1, 20),
];

/// The body of `POST /v1/text_processing/process`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessRequest {
    /// The text to process.
    pub text: String,
    /// One of the five operation names.
    pub operation: String,
    /// Required for `qa` (or sent as `options.question`).
    #[serde(default)]
    pub question: Option<String>,
    /// Operation options: any JSON object (see the module docs).
    #[serde(default)]
    pub options: Option<Value>,
    /// Accepted for compatibility with the reference API; not used.
    #[serde(default)]
    pub user_metadata: Option<Value>,
}

/// An option name the operation does not use, reported in
/// `metadata.ignored_options` so a typo is visible without failing the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredOption {
    /// The name as sent.
    pub name: String,
    /// The allowed name it most likely meant, if any.
    pub suggestion: Option<&'static str>,
    /// Human-readable reason, e.g. "unknown option for summarize; did you mean 'max_length'?".
    pub message: String,
}

/// A validated request: the job plus what validation noticed.
#[derive(Debug, Clone)]
pub struct ValidatedRequest {
    /// The job to run.
    pub job: Job,
    /// Prompt-injection signals found in the text or question.
    pub injection_signals: Vec<&'static str>,
    /// Option names sent but not used by the operation (lenient mode).
    pub ignored_options: Vec<IgnoredOption>,
}

/// The option names each operation reads (`qa` takes its question there too,
/// like the reference's clients send it).
pub fn allowed_options(operation: Operation) -> &'static [&'static str] {
    match operation {
        Operation::Summarize => &["max_length"],
        Operation::Sentiment => &[],
        Operation::KeyPoints => &["max_points"],
        Operation::Questions => &["num_questions"],
        Operation::Qa => &["question"],
    }
}

/// The operation that reads option `name`, if any.
fn option_owner(name: &str) -> Option<Operation> {
    Operation::ALL
        .into_iter()
        .find(|op| allowed_options(*op).contains(&name))
}

/// The allowed name a misspelt one most likely meant: case-insensitive edit
/// distance of at most 2, or 3 for names of 8 characters and more.
fn suggest_option(name: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let limit = if lower.len() >= 8 { 3 } else { 2 };
    allowed
        .iter()
        .map(|a| (*a, crate::resilience::config::edit_distance(&lower, a)))
        .filter(|(_, d)| *d <= limit)
        .min_by_key(|(_, d)| *d)
        .map(|(a, _)| a)
}

/// An integer option: a JSON integer, or a float with no fractional part.
fn integer_option(name: &str, value: &Value) -> Result<Option<i64>, ApiError> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0)
                // Saturates far outside every range, which the range check reports.
                .map(|f| f as i64)
        }),
        _ => None,
    };
    n.map(Some).ok_or_else(|| ApiError::Validation {
        message: format!("options.{name} must be an integer, got {value}"),
        details: Some(json!({"field": format!("options.{name}"), "value": value})),
    })
}

fn option_in_range(
    name: &'static str,
    value: Option<i64>,
    default: usize,
) -> Result<usize, ApiError> {
    let Some(v) = value else {
        return Ok(default);
    };
    let (_, min, max) = OPTION_RANGES
        .iter()
        .find(|(n, _, _)| *n == name)
        .copied()
        .unwrap_or((name, 1, 1000));
    if v < min || v > max {
        return Err(ApiError::Validation {
            message: format!("options.{name} must be between {min} and {max}, got {v}"),
            details: Some(
                json!({"field": format!("options.{name}"), "min": min, "max": max, "value": v}),
            ),
        });
    }
    // In range, hence positive and small.
    Ok(v as usize)
}

/// Options after validation: the job's knobs, a question sent as
/// `options.question`, and the names that were ignored.
struct ParsedOptions {
    options: JobOptions,
    question: Option<String>,
    ignored: Vec<IgnoredOption>,
}

fn parse_options(
    operation: Operation,
    raw: Option<Value>,
    strict: bool,
) -> Result<ParsedOptions, ApiError> {
    let mut parsed = ParsedOptions {
        options: JobOptions::default(),
        question: None,
        ignored: Vec::new(),
    };
    let map = match raw {
        None | Some(Value::Null) => return Ok(parsed),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::Validation {
                message: format!("options must be a JSON object, got {other}"),
                details: Some(json!({"field": "options"})),
            });
        }
    };
    let allowed = allowed_options(operation);
    let defaults = JobOptions::default();
    for (name, value) in map {
        match name.as_str() {
            "max_length" if allowed.contains(&"max_length") => {
                let v = integer_option("max_length", &value)?;
                parsed.options.max_length = option_in_range("max_length", v, defaults.max_length)?;
            }
            "max_points" if allowed.contains(&"max_points") => {
                let v = integer_option("max_points", &value)?;
                parsed.options.max_points = option_in_range("max_points", v, defaults.max_points)?;
            }
            "num_questions" if allowed.contains(&"num_questions") => {
                let v = integer_option("num_questions", &value)?;
                parsed.options.num_questions =
                    option_in_range("num_questions", v, defaults.num_questions)?;
            }
            "question" if allowed.contains(&"question") => match value {
                Value::Null => {}
                Value::String(q) => parsed.question = Some(q),
                other => {
                    return Err(ApiError::Validation {
                        message: format!("options.question must be a string, got {other}"),
                        details: Some(json!({"field": "options.question"})),
                    });
                }
            },
            _ => {
                let suggestion = suggest_option(&name, allowed);
                let mut message = match option_owner(&name) {
                    Some(owner) => format!("option '{name}' belongs to {owner}, not {operation}"),
                    None => format!("unknown option '{name}' for {operation}"),
                };
                match suggestion {
                    Some(s) => message.push_str(&format!("; did you mean '{s}'?")),
                    None if allowed.is_empty() => {
                        message.push_str(&format!("; {operation} takes no options"))
                    }
                    None => message.push_str(&format!("; allowed: {}", allowed.join(", "))),
                }
                if strict {
                    return Err(ApiError::Validation {
                        message: format!("options.{message} (STRICT_OPTIONS=true)"),
                        details: Some(json!({
                            "field": format!("options.{name}"),
                            "allowed": allowed,
                            "suggestion": suggestion,
                        })),
                    });
                }
                parsed.ignored.push(IgnoredOption {
                    name,
                    suggestion,
                    message,
                });
            }
        }
    }
    Ok(parsed)
}

impl ProcessRequest {
    /// Checks every rule and builds the job, ignoring (and reporting) option
    /// names the operation does not use.
    pub fn validate(self) -> Result<ValidatedRequest, ApiError> {
        self.validate_with(false)
    }

    /// Checks every rule and builds the job; `strict_options` makes an
    /// option name the operation does not use a 422 (`STRICT_OPTIONS`).
    pub fn validate_with(self, strict_options: bool) -> Result<ValidatedRequest, ApiError> {
        let operation: Operation =
            self.operation
                .parse()
                .map_err(|e: crate::job::UnknownOperation| ApiError::Validation {
                    message: e.to_string(),
                    details: Some(json!({"field": "operation", "allowed": Operation::ALL})),
                })?;
        let cleaned = sanitize_text(&self.text);
        let chars = cleaned.text.chars().count();
        if chars == 0 {
            return Err(ApiError::field(
                "text",
                "text must not be empty or whitespace only",
            ));
        }
        if chars < MIN_TEXT_CHARS {
            return Err(ApiError::Validation {
                message: format!(
                    "text must be at least {MIN_TEXT_CHARS} characters after trimming, got {chars}"
                ),
                details: Some(json!({"field": "text", "min": MIN_TEXT_CHARS, "length": chars})),
            });
        }
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::Validation {
                message: format!("text must be at most {MAX_TEXT_CHARS} characters, got {chars}"),
                details: Some(json!({"field": "text", "max": MAX_TEXT_CHARS, "length": chars})),
            });
        }
        let mut signals = cleaned.injection_signals;
        let parsed = parse_options(operation, self.options, strict_options)?;
        let question = match (operation, self.question.or(parsed.question)) {
            (Operation::Qa, None) => {
                return Err(ApiError::field(
                    "question",
                    "operation 'qa' requires a question",
                ));
            }
            (Operation::Qa, Some(q)) => {
                let q = sanitize_text(&q);
                let n = q.text.chars().count();
                if n == 0 {
                    return Err(ApiError::field("question", "question must not be empty"));
                }
                if n > MAX_QUESTION_CHARS {
                    return Err(ApiError::Validation {
                        message: format!(
                            "question must be at most {MAX_QUESTION_CHARS} characters, got {n}"
                        ),
                        details: Some(
                            json!({"field": "question", "max": MAX_QUESTION_CHARS, "length": n}),
                        ),
                    });
                }
                for s in q.injection_signals {
                    if !signals.contains(&s) {
                        signals.push(s);
                    }
                }
                Some(q.text)
            }
            // Other operations ignore a question, as the reference API did.
            (_, _) => None,
        };
        Ok(ValidatedRequest {
            job: Job {
                operation,
                text: cleaned.text,
                question,
                options: parsed.options,
            },
            injection_signals: signals,
            ignored_options: parsed.ignored,
        })
    }
}

/// `metadata` of a successful response.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseMetadata {
    /// Words in the processed text.
    pub word_count: usize,
    /// The provider that answered.
    pub provider: crate::providers::ProviderKind,
    /// The model that answered.
    pub model: String,
    /// Provider calls made for this job.
    pub attempts: u32,
    /// True when a fallback answered.
    pub degraded: bool,
    /// Why the primary did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// True when the text looked like a prompt-injection attempt.
    pub prompt_injection_suspected: bool,
    /// Which injection patterns were seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub injection_signals: Vec<&'static str>,
    /// Token usage, when the upstream reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// qa: how sure the provider is of the answer, when it can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_confidence: Option<f64>,
    /// Option names sent but not used by the operation (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_options: Vec<IgnoredOption>,
}

/// The body of a successful `process` response. `result`, `sentiment`,
/// `key_points` and `questions` are always present (`null` where the
/// operation does not fill them), as the reference API sends them.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessResponse {
    /// The operation run.
    pub operation: Operation,
    /// Always true.
    pub success: bool,
    /// summarize and qa: the text answer; `null` otherwise.
    pub result: Option<String>,
    /// sentiment: the verdict; `null` otherwise.
    pub sentiment: Option<Sentiment>,
    /// key_points: the points; `null` otherwise.
    pub key_points: Option<Vec<String>>,
    /// questions: the questions; `null` otherwise.
    pub questions: Option<Vec<String>>,
    /// How the answer was produced.
    pub metadata: ResponseMetadata,
    /// Seconds spent on this job.
    pub processing_time: f64,
    /// When the answer was produced (RFC 3339).
    pub timestamp: String,
    /// True when served from cache.
    pub cache_hit: bool,
}

impl ProcessResponse {
    fn build(validated: &ValidatedRequest, result: JobResult, started: Instant) -> ProcessResponse {
        let job = &validated.job;
        let mut response = ProcessResponse {
            operation: job.operation,
            success: true,
            result: None,
            sentiment: None,
            key_points: None,
            questions: None,
            metadata: ResponseMetadata {
                word_count: crate::nlp::word_count(&job.text),
                provider: result.provider,
                model: result.model,
                attempts: result.attempts,
                degraded: result.degraded,
                degraded_reason: result.degraded_reason,
                prompt_injection_suspected: !validated.injection_signals.is_empty(),
                injection_signals: validated.injection_signals.clone(),
                usage: result.usage,
                answer_confidence: None,
                ignored_options: validated.ignored_options.clone(),
            },
            processing_time: started.elapsed().as_secs_f64(),
            timestamp: crate::time::now_rfc3339(),
            cache_hit: result.cache_hit,
        };
        match result.output {
            JobOutput::Summary { text } => response.result = Some(text),
            JobOutput::Sentiment(mut s) => {
                s.confidence = round_score(s.confidence);
                response.sentiment = Some(s);
            }
            JobOutput::KeyPoints { points } => response.key_points = Some(points),
            JobOutput::Questions { questions } => response.questions = Some(questions),
            JobOutput::Answer { text, confidence } => {
                response.result = Some(text);
                response.metadata.answer_confidence = confidence.map(round_score);
            }
        }
        response
    }
}

/// Scores leave keel with two decimals (`0.64`, not `0.6411312608421155`):
/// more digits promise a precision no provider has, and the README's
/// example outputs are then exactly what the API returns.
fn round_score(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Validates and runs one request.
async fn process_one(
    state: &AppState,
    request: ProcessRequest,
    deadline: Option<Duration>,
) -> Result<ProcessResponse, ApiError> {
    run_request(&state.engine, request, deadline).await
}

/// Validates and runs one `/process` request to its success body: the one
/// pipeline `/process`, batches and async jobs share.
pub async fn run_request(
    engine: &crate::engine::Engine,
    request: ProcessRequest,
    deadline: Option<Duration>,
) -> Result<ProcessResponse, ApiError> {
    let started = Instant::now();
    let validated = request.validate_with(engine.settings().strict_options)?;
    let result = engine.run_job(&validated.job, deadline).await?;
    let upstream_time = result.upstream_time;
    let response = ProcessResponse::build(&validated, result, started);
    engine
        .metrics()
        .overhead
        .record(started.elapsed().saturating_sub(upstream_time));
    Ok(response)
}

/// Longest `Request-Timeout` a client may ask for, in seconds.
const MAX_REQUEST_TIMEOUT_SECS: f64 = 600.0;

/// The client's `Request-Timeout` header (seconds, fractions allowed): it can
/// only shorten the operation's own deadline.
fn client_deadline(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = headers.get("request-timeout") else {
        return Ok(None);
    };
    let secs = raw
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_REQUEST_TIMEOUT_SECS)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid Request-Timeout header: expected seconds in (0, {MAX_REQUEST_TIMEOUT_SECS}]"
            ))
        })?;
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// `POST /v1/text_processing/process`.
pub async fn process(
    State(state): State<AppState>,
    RequireKey(_identity): RequireKey,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ProcessRequest>,
) -> Result<Json<ProcessResponse>, ApiError> {
    let deadline = client_deadline(&headers)?;
    Ok(Json(process_one(&state, request, deadline).await?))
}

/// The body of `POST /v1/text_processing/batch_process`. Items stay raw JSON
/// so one malformed item fails alone instead of failing the batch.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    /// 1..=MAX_BATCH_REQUESTS_PER_CALL process requests.
    pub requests: Vec<Value>,
    /// Optional client id; generated when absent.
    #[serde(default)]
    pub batch_id: Option<String>,
}

/// One item's outcome.
#[derive(Debug, Serialize)]
pub struct BatchItem {
    /// Position in `requests`.
    pub request_index: usize,
    /// `completed` or `failed`.
    pub status: &'static str,
    /// The answer, when completed (`null` when failed, as the reference sends it).
    pub response: Option<ProcessResponse>,
    /// The error message, when failed (`null` when completed).
    pub error: Option<String>,
    /// The error code, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

/// The body of a `batch_process` response.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// The batch id (client's or generated).
    pub batch_id: String,
    /// Items submitted.
    pub total_requests: usize,
    /// Items answered.
    pub completed: usize,
    /// Items failed.
    pub failed: usize,
    /// Per-item outcomes, in request order.
    pub results: Vec<BatchItem>,
    /// Seconds for the whole batch.
    pub total_processing_time: f64,
    /// When the batch finished (RFC 3339).
    pub timestamp: String,
}

fn check_batch_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.chars().count() <= MAX_BATCH_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "batch_id",
            format!(
                "batch_id must be 1 to {MAX_BATCH_ID_CHARS} characters of letters, digits, '-', '_', '.', ':'"
            ),
        ))
    }
}

/// `POST /v1/text_processing/batch_process`.
pub async fn batch_process(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    client: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let deadline = client_deadline(&headers)?;
    let max = state.engine.settings().max_batch_requests;
    if batch.requests.is_empty() {
        // Worded like pydantic's error, which the reference's clients match on.
        return Err(ApiError::Validation {
            message: "requests: List should have at least 1 item after validation, not 0".into(),
            details: Some(json!({"field": "requests", "min": 1, "count": 0})),
        });
    }
    if batch.requests.len() > max {
        return Err(ApiError::Validation {
            message: format!(
                "Batch size exceeds maximum limit of {max} requests (got {})",
                batch.requests.len()
            ),
            details: Some(json!({"field": "requests", "max": max, "count": batch.requests.len()})),
        });
    }
    // A batch costs one unit per item.
    let decision = match &client {
        Some(Extension(client)) => Some(
            limits::check(
                &state,
                client,
                limits::BATCH_ROUTE,
                batch.requests.len() as u32,
            )
            .await?,
        ),
        None => None,
    };
    let batch_id = match batch.batch_id {
        Some(id) => {
            check_batch_id(&id)?;
            id
        }
        None => format!("batch_{}", uuid::Uuid::new_v4().simple()),
    };
    let total = batch.requests.len();
    let record = state
        .engine
        .batches()
        .begin(&batch_id, &identity.owner(), total as u64)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;

    let concurrency = state.engine.settings().batch_concurrency;
    let results: Vec<BatchItem> = futures::stream::iter(batch.requests.into_iter().enumerate())
        .map(|(index, raw)| {
            let state = state.clone();
            let record = record.clone();
            async move {
                let outcome = match super::strict_json::from_value::<ProcessRequest>(raw) {
                    Ok(request) => process_one(&state, request, deadline).await,
                    Err(e) => Err(ApiError::validation(format!("invalid request item: {e}"))),
                };
                record.item_done(outcome.is_ok());
                match outcome {
                    Ok(response) => BatchItem {
                        request_index: index,
                        status: "completed",
                        response: Some(response),
                        error: None,
                        error_code: None,
                    },
                    Err(e) => BatchItem {
                        request_index: index,
                        status: "failed",
                        response: None,
                        error: Some(e.to_string()),
                        error_code: Some(code_for_item(&e)),
                    },
                }
            }
        })
        .buffered(concurrency)
        .collect()
        .await;

    let seconds = started.elapsed().as_secs_f64();
    record.finish(seconds);
    let completed = results.iter().filter(|r| r.status == "completed").count();
    let mut response = Json(BatchResponse {
        batch_id,
        total_requests: total,
        completed,
        failed: total - completed,
        results,
        total_processing_time: seconds,
        timestamp: crate::time::now_rfc3339(),
    })
    .into_response();
    if let Some(d) = &decision {
        limits::add_headers(response.headers_mut(), d);
    }
    Ok(response)
}

fn code_for_item(e: &ApiError) -> &'static str {
    match e {
        ApiError::Upstream(_) => e.code(),
        _ => code_for_status(e.status()),
    }
}

/// The body of `batch_status`: keel's real progress plus the reference's
/// `message`. `status` is `processing` (items still running) or `completed`
/// (every item finished, successfully or not).
#[derive(Debug, Serialize)]
pub struct BatchStatusResponse {
    /// The batch's progress.
    #[serde(flatten)]
    pub status: crate::batch::BatchStatus,
    /// One sentence saying where the batch is.
    pub message: String,
}

impl From<crate::batch::BatchStatus> for BatchStatusResponse {
    fn from(status: crate::batch::BatchStatus) -> BatchStatusResponse {
        let done = status.completed + status.failed;
        let message = match status.status {
            crate::batch::BatchState::Processing => format!(
                "Batch '{}' is processing: {done} of {} items finished.",
                status.batch_id, status.total_requests
            ),
            crate::batch::BatchState::Completed => format!(
                "Batch '{}' completed: {} succeeded, {} failed. Batches run synchronously: \
                 the results were returned by batch_process.",
                status.batch_id, status.completed, status.failed
            ),
        };
        BatchStatusResponse { status, message }
    }
}

/// `GET /v1/text_processing/batch_status/{id}`.
pub async fn batch_status(
    State(state): State<AppState>,
    RequireKey(identity): RequireKey,
    Path(batch_id): Path<String>,
) -> Result<Json<BatchStatusResponse>, ApiError> {
    state
        .engine
        .batches()
        .status(&batch_id, &identity.owner())
        .map(|status| Json(status.into()))
        .ok_or_else(|| ApiError::NotFound(format!("batch '{batch_id}' not found")))
}

/// `GET /v1/text_processing/health`: the reference's domain-service health,
/// derived from the `/v1/health` report so the two cannot disagree.
pub async fn text_processing_health(
    State(state): State<AppState>,
    OptionalKey(_identity): OptionalKey,
) -> Json<Value> {
    let Json(report) = super::health::health(State(state)).await;
    Json(domain_health(&report))
}

/// Maps a `/v1/health` report onto the reference's
/// `{overall_healthy, service_type, infrastructure, domain_services}`.
fn domain_health(report: &Value) -> Value {
    let status = report["status"].as_str().unwrap_or("unhealthy");
    let resilience_healthy = report["resilience_healthy"].as_bool().unwrap_or(false);
    let breakers = &report["components"]["circuit_breakers"];
    let not_closed: Vec<&Value> = breakers["not_closed"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let named = |states: &[&str]| -> Vec<Value> {
        not_closed
            .iter()
            .filter(|b| states.contains(&b["state"].as_str().unwrap_or_default()))
            .map(|b| b["name"].clone())
            .collect()
    };
    let timestamp = report["timestamp"].clone();
    json!({
        "overall_healthy": status == "healthy",
        "service_type": "domain",
        "status": status,
        "timestamp": timestamp,
        "infrastructure": {
            "resilience": {
                "healthy": resilience_healthy,
                "open_circuit_breakers": named(&["open", "forced_open"]),
                "half_open_circuit_breakers": named(&["half_open"]),
                "total_circuit_breakers": breakers["total"].as_u64().unwrap_or(0),
                "timestamp": timestamp,
            },
        },
        "domain_services": {
            "text_processing": {
                "healthy": status != "unhealthy"
                    && report["ai_model_available"].as_bool().unwrap_or(false),
                "status": status,
                "ai_model_available": report["ai_model_available"].clone(),
                "cache_healthy": report["cache_healthy"].clone(),
                "degraded_reasons": report["degraded_reasons"].clone(),
            },
        },
    })
}

/// `GET /v1/text_processing/operations`.
pub async fn operations(OptionalKey(_identity): OptionalKey) -> Json<Value> {
    Json(json!({
        "operations": [
            {"id": "summarize", "name": "Summarize",
             "description": "Condense the text to about max_length words",
             "options": ["max_length"], "requires_question": false,
             "option_ranges": {"max_length": {"min": 10, "max": 1000, "default": 100}}},
            {"id": "sentiment", "name": "Sentiment Analysis",
             "description": "Classify the text as positive, negative or neutral, with confidence and explanation",
             "options": [], "requires_question": false},
            {"id": "key_points", "name": "Key Points",
             "description": "Extract the most important points",
             "options": ["max_points"], "requires_question": false,
             "option_ranges": {"max_points": {"min": 1, "max": 20, "default": 5}}},
            {"id": "questions", "name": "Generate Questions",
             "description": "Generate questions about the text",
             "options": ["num_questions"], "requires_question": false,
             "option_ranges": {"num_questions": {"min": 1, "max": 20, "default": 5}}},
            {"id": "qa", "name": "Question Answering",
             "description": "Answer a question from the text",
             "options": [], "requires_question": true}
        ]
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scores_are_rounded_to_two_decimals() {
        assert_eq!(super::round_score(0.6411312608421155), 0.64);
        assert_eq!(super::round_score(0.619066294268091), 0.62);
        assert_eq!(super::round_score(1.0), 1.0);
        assert_eq!(super::round_score(0.0), 0.0);
        assert_eq!(super::round_score(0.005), 0.01);
    }

    use super::*;

    fn req(text: &str, op: &str) -> ProcessRequest {
        ProcessRequest {
            text: text.into(),
            operation: op.into(),
            question: None,
            options: None,
            user_metadata: None,
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        let v = req("   A perfectly fine text.   ", "summarize")
            .validate()
            .unwrap();
        assert_eq!(v.job.text, "A perfectly fine text.");
        assert!(req("   \n\t  ", "summarize").validate().is_err());
        assert!(req("  short  ", "summarize").validate().is_err());
        assert!(req(&"a".repeat(10_001), "summarize").validate().is_err());
        assert!(req(&"a".repeat(10_000), "summarize").validate().is_ok());
    }

    #[test]
    fn qa_needs_a_question_and_options_are_range_checked() {
        assert!(req("A perfectly fine text.", "qa").validate().is_err());
        let mut r = req("A perfectly fine text.", "qa");
        r.question = Some("What is fine?".into());
        assert_eq!(
            r.validate().unwrap().job.question.as_deref(),
            Some("What is fine?")
        );
        let mut r = req("A perfectly fine text.", "key_points");
        r.options = Some(json!({"max_points": 0}));
        let err = r.validate().unwrap_err();
        assert!(err.to_string().contains("options.max_points"), "{err}");
        assert!(
            req("A perfectly fine text.", "translate")
                .validate()
                .is_err()
        );
    }
}
