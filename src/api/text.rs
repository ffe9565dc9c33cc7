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
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

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

/// Body of `POST /v1/text_processing/process`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(examples(json!({
    "text": "The city of Riverton launched a solar energy program this spring. The program will install panels on two hundred public buildings. Officials expect the panels to cut the city energy costs by a third.",
    "operation": "summarize",
    "options": {"max_length": 25}
})))]
pub struct ProcessRequest {
    /// The text: 10–10000 characters **after trimming** leading and
    /// trailing whitespace (so the raw string may be longer), not
    /// whitespace only. Control characters are stripped; nothing else is
    /// removed.
    #[schema(min_length = 10, max_length = 10000)]
    pub text: String,
    /// The operation (an unknown name is a 422).
    #[schema(value_type = Operation)]
    pub operation: String,
    /// **Required when `operation` is `qa`** (or as `options.question`;
    /// a `qa` request without either is a 422); at most 1000 characters;
    /// ignored otherwise.
    #[serde(default)]
    pub question: Option<String>,
    /// Operation options: any object (see `ProcessOptions`).
    #[serde(default)]
    #[schema(value_type = Option<ProcessOptions>)]
    pub options: Option<Value>,
    /// Accepted for compatibility with the reference API; not used.
    #[serde(default)]
    pub user_metadata: Option<Value>,
}

/// The schema of `ProcessRequest::options`, built from the option table the
/// validation uses (`OPTION_RANGES`, [`allowed_options`], the
/// [`JobOptions`] defaults). `options` itself stays raw JSON: unknown names
/// are reported, not refused.
pub struct ProcessOptions;

impl utoipa::PartialSchema for ProcessOptions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let nullable = |t| SchemaType::from_iter([t, Type::Null]);
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Options. Each operation reads its own name (summarize `max_length`, \
                 key_points `max_points`, questions `num_questions`, qa `question`); any other \
                 name is ignored and listed in `metadata.ignored_options`, or is a 422 with \
                 `STRICT_OPTIONS=true`. Integers: a whole-number float such as `14.0` is \
                 accepted.",
            ))
            .property(
                "question",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .description(Some(
                        "qa: the question, when the top-level `question` is absent.",
                    )),
            );
        for (name, min, max) in OPTION_RANGES {
            let owner = option_owner(name).map_or("", Operation::as_str);
            let default = option_default(name);
            let words = if name == "max_length" {
                "about this many words, "
            } else {
                ""
            };
            object = object.property(
                name,
                ObjectBuilder::new()
                    .schema_type(nullable(Type::Integer))
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(min))
                    .maximum(Some(max))
                    .default(Some(default.into()))
                    .description(Some(format!(
                        "{owner}: {words}{min}–{max} (default {default})."
                    ))),
            );
        }
        object.build().into()
    }
}

impl ToSchema for ProcessOptions {}

/// The value an option takes when absent.
fn option_default(name: &str) -> i64 {
    let d = JobOptions::default();
    let value = match name {
        "max_length" => d.max_length,
        "max_points" => d.max_points,
        "num_questions" => d.num_questions,
        _ => 0,
    };
    value as i64
}

/// An option name the operation does not use, reported in
/// `metadata.ignored_options` so a typo is visible without failing the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IgnoredOption {
    /// The name as sent.
    pub name: String,
    /// The allowed name it most likely meant, or `null`.
    #[schema(required = true)]
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
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// True when the text looked like a prompt-injection attempt (it is
    /// kept and sent between delimiters).
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

/// A successful answer. `result`, `sentiment`, `key_points` and
/// `questions` are always present (`null` where the operation does not
/// fill them), as the reference API sends them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(examples(json!({
    "operation": "summarize",
    "success": true,
    "result": "The city of Riverton launched a solar energy program this spring.",
    "sentiment": null,
    "key_points": null,
    "questions": null,
    "metadata": {"word_count": 66, "provider": "local", "model": "keel-local-1",
                 "attempts": 1, "degraded": false, "prompt_injection_suspected": false},
    "processing_time": 0.000157842,
    "timestamp": "2026-11-22T01:13:17.441Z",
    "cache_hit": false
})))]
pub struct ProcessResponse {
    /// The operation run.
    pub operation: Operation,
    /// Always `true`.
    pub success: bool,
    /// summarize and qa: the text answer; `null` otherwise.
    #[schema(required = true)]
    pub result: Option<String>,
    /// sentiment: the verdict; `null` otherwise.
    #[schema(required = true)]
    pub sentiment: Option<Sentiment>,
    /// key_points: the points, most important first; `null` otherwise.
    #[schema(required = true)]
    pub key_points: Option<Vec<String>>,
    /// questions: the questions; `null` otherwise.
    #[schema(required = true)]
    pub questions: Option<Vec<String>>,
    /// How the answer was produced.
    pub metadata: ResponseMetadata,
    /// Seconds spent on this job.
    pub processing_time: f64,
    /// When the answer was produced (RFC 3339).
    #[schema(format = DateTime)]
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

/// The `Request-Timeout` header, as [`client_deadline`] reads it.
struct RequestTimeout;

impl utoipa::IntoParams for RequestTimeout {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        vec![
            ParameterBuilder::new()
                .name("Request-Timeout")
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(format!(
                    "Seconds (fractions allowed, at most {MAX_REQUEST_TIMEOUT_SECS}) this job \
                     may take; can only shorten the operation's own deadline. Malformed: 400."
                )))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .exclusive_minimum(Some(0))
                        .maximum(Some(MAX_REQUEST_TIMEOUT_SECS)),
                ))
                .build(),
        ]
    }
}

/// The operation description of `POST /v1/text_processing/process`.
const PROCESS_DESCRIPTION: &str = "Runs one operation on a text. `text` is 10–10000 \
    characters after trimming (control characters are stripped, nothing else is removed); \
    `qa` needs `question` (at most 1000 characters), or `options.question` as the \
    reference's clients send it. `options` is any object: the names the operation uses are \
    checked (integers; a whole-number float such as `14.0` counts), any other name is \
    ignored and listed in `metadata.ignored_options` with a suggestion for a near-miss — \
    or, with `STRICT_OPTIONS=true`, a 422 whose `details` are `{field, allowed, \
    suggestion}`. `result`, `sentiment`, `key_points` and `questions` are always present, \
    `null` where the operation does not fill them. Text that looks like prompt injection is \
    kept, sent between delimiters and flagged in `metadata`. An answer from a fallback \
    provider has `metadata.degraded: true`.";

/// `POST /v1/text_processing/process`.
#[utoipa::path(
    post,
    path = "/v1/text_processing/process",
    tag = "text processing",
    operation_id = "process",
    summary = "Process one text",
    description = PROCESS_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(RequestTimeout),
    request_body(content = ProcessRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer", body = ProcessResponse),
        (status = 400), (status = 401), (status = 413), (status = 415), (status = 422),
        (status = 429), (status = 502), (status = 503), (status = 504),
    )
)]
pub async fn process(
    State(state): State<AppState>,
    RequireKey(_identity): RequireKey,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ProcessRequest>,
) -> Result<Json<ProcessResponse>, ApiError> {
    let deadline = client_deadline(&headers)?;
    Ok(Json(process_one(&state, request, deadline).await?))
}

/// Body of `POST /v1/text_processing/batch_process`. Items stay raw JSON
/// so one malformed item fails alone instead of failing the batch.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(examples(json!({
    "batch_id": "demo-1",
    "requests": [
        {"text": "The support team was friendly and solved my problem quickly.", "operation": "sentiment"},
        {"text": "too short", "operation": "summarize"}
    ]
})))]
pub struct BatchRequest {
    /// 1 to `MAX_BATCH_REQUESTS_PER_CALL` (default 50) requests. An item
    /// that is not a valid request fails alone (in its result), not the batch.
    #[schema(value_type = Vec<ProcessRequest>, min_items = 1)]
    pub requests: Vec<Value>,
    /// Optional client id (generated when absent): 1–100 letters, digits,
    /// `-`, `_`, `.`, `:`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,100}$")]
    pub batch_id: Option<String>,
}

/// An item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchItemStatus {
    /// Answered: see `response`.
    Completed,
    /// Failed: see `error` and `error_code`.
    Failed,
}

/// One item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Position in `requests`.
    pub request_index: usize,
    /// Completed or failed.
    pub status: BatchItemStatus,
    /// The answer, when completed; `null` when failed (as the reference sends it).
    #[schema(required = true)]
    pub response: Option<ProcessResponse>,
    /// The error message, when failed; `null` when completed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The error code, when failed (as in `ErrorBody`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

/// A batch's results.
#[derive(Debug, Serialize, ToSchema)]
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
    #[schema(format = DateTime)]
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
#[utoipa::path(
    post,
    path = "/v1/text_processing/batch_process",
    tag = "text processing",
    operation_id = "batch_process",
    summary = "Process a batch of texts",
    description = "Runs up to `MAX_BATCH_REQUESTS_PER_CALL` (default 50) requests, \
        `BATCH_AI_CONCURRENCY_LIMIT` at a time. One item's failure never fails the batch: \
        it is reported in its `results` entry with `error` and `error_code`. The batch \
        costs one rate-limit unit per item. A `batch_id` still running is a 409.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(RequestTimeout),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Per-item results", body = BatchResponse),
        (status = 400), (status = 401), (status = 409), (status = 413), (status = 415),
        (status = 422), (status = 429), (status = 503),
    )
)]
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
                        status: BatchItemStatus::Completed,
                        response: Some(response),
                        error: None,
                        error_code: None,
                    },
                    Err(e) => BatchItem {
                        request_index: index,
                        status: BatchItemStatus::Failed,
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
    let completed = results
        .iter()
        .filter(|r| r.status == BatchItemStatus::Completed)
        .count();
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

/// Body of `GET /v1/text_processing/batch_status/{batch_id}`: keel's real
/// progress plus the reference's `message`. `status` is `processing` (items
/// still running) or `completed` (every item finished, successfully or not).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchStatus)]
pub struct BatchStatusResponse {
    /// The batch's progress.
    #[serde(flatten)]
    pub status: crate::batch::BatchStatus,
    /// Where the batch is, in a sentence (the reference's field).
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
#[utoipa::path(
    get,
    path = "/v1/text_processing/batch_status/{batch_id}",
    tag = "text processing",
    operation_id = "batch_status",
    summary = "Status of a batch",
    description = "Progress of a recent batch, visible only to the key that submitted it \
        (others get 404). `status` is `processing` (items still running) or `completed` \
        (every item finished, successfully or not; see `completed` and `failed`). Unlike \
        the reference's stub, which always says `COMPLETED_SYNC`, it is the real state; \
        `message` says the same in a sentence.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("batch_id" = String, Path, description = "The batch id (the client's or the generated one)")),
    responses(
        (status = 200, description = "The batch's progress", body = BatchStatusResponse),
        (status = 401), (status = 404), (status = 429), (status = 503),
    )
)]
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

/// Body of `GET /v1/text_processing/health`: the reference's domain health.
#[derive(Serialize, ToSchema)]
pub struct TextProcessingHealth {
    /// `status == "healthy"`.
    pub overall_healthy: bool,
    /// Always `domain`.
    pub service_type: &'static str,
    /// As `/v1/health`'s `status`.
    pub status: crate::health::Status,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// The infrastructure the domain service relies on.
    pub infrastructure: DomainInfrastructure,
    /// The domain services.
    pub domain_services: DomainServices,
}

/// `infrastructure` of `TextProcessingHealth`.
#[derive(Serialize, ToSchema)]
pub struct DomainInfrastructure {
    /// The breakers.
    pub resilience: DomainResilience,
}

/// `infrastructure.resilience` of `TextProcessingHealth`.
#[derive(Serialize, ToSchema)]
pub struct DomainResilience {
    /// As `/v1/health`'s `resilience_healthy`.
    pub healthy: bool,
    /// Open or forced-open breakers.
    pub open_circuit_breakers: Vec<String>,
    /// Half-open breakers.
    pub half_open_circuit_breakers: Vec<String>,
    /// Breakers in total.
    pub total_circuit_breakers: usize,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `domain_services` of `TextProcessingHealth`.
#[derive(Serialize, ToSchema)]
pub struct DomainServices {
    /// The text-processing service.
    pub text_processing: TextProcessingService,
}

/// `domain_services.text_processing` of `TextProcessingHealth`.
#[derive(Serialize, ToSchema)]
pub struct TextProcessingService {
    /// Not `unhealthy`, with a provider configured.
    pub healthy: bool,
    /// As `/v1/health`'s `status`.
    pub status: crate::health::Status,
    /// At least one provider is configured.
    pub ai_model_available: bool,
    /// As `/v1/health`'s `cache_healthy`.
    pub cache_healthy: bool,
    /// As `/v1/health`'s `degraded_reasons`.
    pub degraded_reasons: Vec<String>,
}

/// `GET /v1/text_processing/health`: the reference's domain-service health,
/// derived from the `/v1/health` report so the two cannot disagree.
#[utoipa::path(
    get,
    path = "/v1/text_processing/health",
    tag = "text processing",
    operation_id = "text_processing_health",
    summary = "Text-processing service health",
    description = "The reference API's domain-service health, derived from `/v1/health` \
        (same status, same rules): `overall_healthy` is `status == \"healthy\"`. A key \
        is optional, but a key that is sent must be valid.",
    security((), ("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Domain health", body = TextProcessingHealth),
        (status = 401), (status = 429), (status = 503),
    )
)]
pub async fn text_processing_health(
    State(state): State<AppState>,
    OptionalKey(_identity): OptionalKey,
) -> Json<TextProcessingHealth> {
    Json(domain_health(super::health::report(&state)))
}

/// Maps a `/v1/health` report onto the reference's
/// `{overall_healthy, service_type, infrastructure, domain_services}`.
fn domain_health(report: super::health::HealthResponse) -> TextProcessingHealth {
    use crate::health::Status;
    use crate::resilience::breaker::BreakerState;
    let named = |states: &[BreakerState]| -> Vec<String> {
        report
            .components
            .circuit_breakers
            .not_closed
            .iter()
            .filter(|b| states.contains(&b.state))
            .map(|b| b.name.clone())
            .collect()
    };
    TextProcessingHealth {
        overall_healthy: report.status == Status::Healthy,
        service_type: "domain",
        status: report.status,
        infrastructure: DomainInfrastructure {
            resilience: DomainResilience {
                healthy: report.resilience_healthy,
                open_circuit_breakers: named(&[BreakerState::Open, BreakerState::ForcedOpen]),
                half_open_circuit_breakers: named(&[BreakerState::HalfOpen]),
                total_circuit_breakers: report.components.circuit_breakers.total,
                timestamp: report.timestamp.clone(),
            },
        },
        domain_services: DomainServices {
            text_processing: TextProcessingService {
                healthy: report.status != Status::Unhealthy && report.ai_model_available,
                status: report.status,
                ai_model_available: report.ai_model_available,
                cache_healthy: report.cache_healthy,
                degraded_reasons: report.degraded_reasons,
            },
        },
        timestamp: report.timestamp,
    }
}

/// An option's range, in `OperationInfo`.
#[derive(Serialize, ToSchema)]
pub struct OptionRange {
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Value when absent.
    pub default: i64,
}

/// One operation's description, in `OperationsResponse`.
#[derive(Serialize, ToSchema)]
pub struct OperationInfo {
    /// The wire name.
    pub id: Operation,
    /// Display name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Option names it takes.
    pub options: Vec<&'static str>,
    /// True for `qa`.
    pub requires_question: bool,
    /// Range and default per option (absent when it takes none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option_ranges: Option<BTreeMap<&'static str, OptionRange>>,
}

/// Body of `GET /v1/text_processing/operations`.
#[derive(Serialize, ToSchema)]
pub struct OperationsResponse {
    /// The five operations.
    pub operations: Vec<OperationInfo>,
}

/// An operation's display name and description.
fn describe(op: Operation) -> (&'static str, &'static str) {
    match op {
        Operation::Summarize => ("Summarize", "Condense the text to about max_length words"),
        Operation::Sentiment => (
            "Sentiment Analysis",
            "Classify the text as positive, negative or neutral, with confidence and explanation",
        ),
        Operation::KeyPoints => ("Key Points", "Extract the most important points"),
        Operation::Questions => ("Generate Questions", "Generate questions about the text"),
        Operation::Qa => ("Question Answering", "Answer a question from the text"),
    }
}

/// `GET /v1/text_processing/operations`.
#[utoipa::path(
    get,
    path = "/v1/text_processing/operations",
    tag = "text processing",
    operation_id = "operations",
    summary = "List the operations",
    description = "The five operations with their options, ranges and whether they need \
        a `question`. A key is optional, but a key that is sent must be valid.",
    security((), ("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "The operations", body = OperationsResponse),
        (status = 401), (status = 429), (status = 503),
    )
)]
pub async fn operations(OptionalKey(_identity): OptionalKey) -> Json<OperationsResponse> {
    let operations = Operation::ALL
        .into_iter()
        .map(|op| {
            let (name, description) = describe(op);
            // `qa` reads its question from the options too, but it is not
            // listed as one: it has its own field.
            let options: Vec<&'static str> = allowed_options(op)
                .iter()
                .copied()
                .filter(|o| *o != "question")
                .collect();
            let option_ranges = (!options.is_empty()).then(|| {
                OPTION_RANGES
                    .into_iter()
                    .filter(|(n, _, _)| options.contains(n))
                    .map(|(n, min, max)| {
                        let default = option_default(n);
                        (n, OptionRange { min, max, default })
                    })
                    .collect()
            });
            OperationInfo {
                id: op,
                name,
                description,
                options,
                requires_question: op == Operation::Qa,
                option_ranges,
            }
        })
        .collect();
    Json(OperationsResponse { operations })
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
    fn the_documented_request_limits_are_the_enforced_ones() {
        let doc = serde_json::to_value(crate::api::openapi::public_doc()).unwrap();
        let request = &doc["components"]["schemas"]["ProcessRequest"]["allOf"][0];
        assert_eq!(
            request["properties"]["text"]["minLength"],
            json!(MIN_TEXT_CHARS)
        );
        assert_eq!(
            request["properties"]["text"]["maxLength"],
            json!(MAX_TEXT_CHARS)
        );
        let options = &doc["components"]["schemas"]["ProcessOptions"]["properties"];
        for (name, min, max) in OPTION_RANGES {
            assert_eq!(options[name]["minimum"], json!(min), "{name}");
            assert_eq!(options[name]["maximum"], json!(max), "{name}");
            assert_eq!(
                options[name]["default"],
                json!(option_default(name)),
                "{name}"
            );
        }
        assert_eq!(option_default("max_length"), 100);
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
