//! The one error type of both HTTP surfaces, and the one error body.
//!
//! Every failure — ours, a rejected extractor, an unknown route, a shed
//! request, a panic — leaves keel as
//! `{success:false, error, error_code, details, detail, request_id, timestamp}`
//! with a status a client can act on. [`ApiError`] renders that body; the
//! `request_context` middleware wraps any other 4xx/5xx in it.
//!
//! `detail` is what a client written for the reference FastAPI project reads
//! (FastAPI's own error field), derived here from the same error so the two
//! views cannot disagree: a string in general, `{message, context}` for a 401
//! (like the reference's `HTTPException`), and for a 422 a list of
//! `{loc, msg, type}` like FastAPI's request-validation errors.

use super::request_id;
use crate::outcome::JobError;
use crate::providers::ErrorClass;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed JSON but breaks a rule (422).
    #[error("{message}")]
    Validation {
        /// What is wrong, naming the field.
        message: String,
        /// Structured detail, e.g. `{"field": "text", "max": 10000}`.
        details: Option<Value>,
    },
    /// The body is not valid JSON (400).
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A malformed header or other request-level mistake (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong API key (401); boxed, it is the largest variant.
    #[error("{}", .0.message)]
    Unauthorized(Box<AuthFailure>),
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists but is busy (409).
    #[error("{0}")]
    Conflict(String),
    /// The body exceeds `MAX_REQUEST_SIZE` (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request body did not arrive within `HTTP_BODY_READ_TIMEOUT_SECONDS` (408).
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    RequestTimeout(Duration),
    /// The body is not `application/json` (415).
    #[error("expected a body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The caller's rate limit is used up (429), or the limiter cannot
    /// decide because Redis failed in `closed` mode (503).
    #[error("{}", rate_limit_message(.0))]
    RateLimited(crate::rate_limit::Decision),
    /// The server is shutting down and this request ran past the grace period (503).
    #[error("server shutting down: the request did not finish within the grace period")]
    ShuttingDown,
    /// Too many requests in flight; try again shortly (503).
    #[error("server is at capacity, retry shortly")]
    Overloaded,
    /// Every provider failed (502, 503 or 504 by the failure's class).
    #[error("AI provider failure: {0}")]
    Upstream(#[from] JobError),
    /// A bug; the details are logged, not returned (500).
    #[error("internal error")]
    Internal(String),
    /// A failure with its own `error_code` (async jobs: 503
    /// `JOB_STORE_UNAVAILABLE` / `QUEUE_FULL`, 409 `IDEMPOTENCY_CONFLICT`).
    #[error("{message}")]
    Coded {
        /// The HTTP status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// Human-readable message.
        message: String,
        /// `Retry-After`, for 503s.
        retry_after: Option<Duration>,
    },
}

/// Why authentication failed, as the reference's 401 `detail.context`
/// reports it (so its clients can tell "no key" from "wrong key").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// What went wrong, e.g. "Invalid API key".
    pub message: &'static str,
    /// `bearer_token` (`Authorization: Bearer`) or `x_api_key` (`X-API-Key`);
    /// `bearer_token` when nothing was sent, as in the reference.
    pub auth_method: &'static str,
    /// Whether the request carried a key at all.
    pub credentials_provided: bool,
    /// First 8 characters of the rejected key (the client's own input).
    pub key_prefix: Option<String>,
    /// `ENVIRONMENT` of this server (filled in by the auth extractors).
    pub environment: &'static str,
}

/// FastAPI's `detail`: a string in general, `{message, context}` for a
/// 401, a list of `{loc, msg, type}` for a 422.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Detail<'a> {
    /// The message again (FastAPI's `HTTPException(detail="...")`).
    Message(&'a str),
    /// 401, as the reference's `HTTPException`.
    Auth(AuthDetail<'a>),
    /// 422, as FastAPI's request-validation errors.
    Validation(Vec<ValidationIssue>),
}

// Fields in the order the reference's clients have always received them.
/// `detail` of a 401, as the reference's `HTTPException`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthDetail<'a> {
    /// What the request presented.
    pub context: AuthContext,
    /// The message (e.g. "Invalid API key", "API key required: ...").
    pub message: &'a str,
}

// Fields in the order the reference's clients have always received them.
/// `detail.context` of a 401.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthContext {
    /// `bearer_token` or `x_api_key`.
    pub auth_method: &'static str,
    /// Whether a key was sent.
    pub credentials_provided: bool,
    /// `ENVIRONMENT` of the server.
    pub environment: &'static str,
    /// First 8 characters of the rejected key; `null` when none was sent.
    #[schema(required = true)]
    pub key_prefix: Option<String>,
}

/// One entry of a 422 `detail`, as FastAPI's request-validation errors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationIssue {
    /// Where: `["body", "options", "max_length"]`.
    pub loc: Vec<LocPart>,
    /// The message.
    pub msg: String,
    /// A pydantic error type: `missing`, `extra_forbidden`, `int_type`,
    /// `too_short`, `string_too_short`, `value_out_of_range`, `value_error`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A `loc` element: a field name or an array index.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocPart {
    /// A field name.
    Name(String),
    /// An array index.
    Index(u64),
}

/// The one error body of both APIs.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "success": false,
    "error": "text must be at least 10 characters after trimming, got 2",
    "error_code": "VALIDATION_ERROR",
    "details": {"field": "text", "length": 2, "min": 10},
    "detail": [{"loc": ["body", "text"],
                "msg": "text must be at least 10 characters after trimming, got 2",
                "type": "string_too_short"}],
    "request_id": "92d71b23-a32b-4af5-9c59-82a2b2a6c061",
    "timestamp": "2026-11-22T01:13:17.441Z"
})))]
pub struct ErrorBody<'a> {
    /// Always `false`.
    pub success: bool,
    /// Human-readable message.
    pub error: &'a str,
    /// Stable machine-readable code: `BAD_REQUEST`, `AUTHENTICATION_ERROR`,
    /// `AUTHORIZATION_ERROR`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`, `CONFLICT`,
    /// `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`, `VALIDATION_ERROR`,
    /// `RATE_LIMIT_EXCEEDED`, `INTERNAL_ERROR`, `AI_SERVICE_ERROR`,
    /// `SERVICE_UNAVAILABLE`, `GATEWAY_TIMEOUT`, …
    pub error_code: &'a str,
    /// Structured detail (e.g. `{"field": "text", "max": 10000}`), or `null`.
    #[schema(required = true, value_type = Value)]
    pub details: Option<&'a Value>,
    /// FastAPI-compatible form for the reference's clients.
    pub detail: Detail<'a>,
    /// The request's `X-Request-ID`.
    pub request_id: String,
    /// When the error was produced (RFC 3339).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl ApiError {
    /// A 422 with a message and no details.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            message: message.into(),
            details: None,
        }
    }

    /// A 422 naming the offending field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            message: message.into(),
            details: Some(serde_json::json!({ "field": field })),
        }
    }

    /// A 401 with what the request presented.
    pub fn unauthorized(
        message: &'static str,
        auth_method: &'static str,
        credentials_provided: bool,
        key_prefix: Option<String>,
    ) -> ApiError {
        ApiError::Unauthorized(Box::new(AuthFailure {
            message,
            auth_method,
            credentials_provided,
            key_prefix,
            environment: "development",
        }))
    }

    /// Records the server's environment in a 401's context; other errors pass.
    pub fn in_environment(mut self, environment: crate::env::Environment) -> ApiError {
        if let ApiError::Unauthorized(failure) = &mut self {
            failure.environment = environment.as_str();
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InvalidJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(d) if d.unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(e) if e.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream(e) if e.class() == ErrorClass::Permanent => StatusCode::BAD_GATEWAY,
            ApiError::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Coded { status, .. } => *status,
        }
    }

    /// The stable `error_code`.
    pub fn code(&self) -> &'static str {
        if let ApiError::Coded { code, .. } = self {
            return code;
        }
        match self.status() {
            StatusCode::BAD_GATEWAY => "AI_SERVICE_ERROR",
            status => code_for_status(status),
        }
    }

    /// Seconds a client should wait before retrying, for 503s.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Overloaded | ApiError::ShuttingDown => Some(Duration::from_secs(1)),
            ApiError::Coded { retry_after, .. } => *retry_after,
            ApiError::RateLimited(d) => Some(Duration::from_secs(d.retry_after_secs.unwrap_or(1))),
            ApiError::Upstream(e) if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                Some(e.retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => None,
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::Validation { details, .. } => details.clone(),
            ApiError::RateLimited(d) => Some(serde_json::json!({
                "limit": d.limit,
                "remaining": d.remaining,
                "reset_seconds": d.reset_secs,
                "retry_after_seconds": d.retry_after_secs,
            })),
            ApiError::Upstream(JobError {
                attempts,
                last,
                reasons,
                deadline_exceeded,
                ..
            }) => Some(serde_json::json!({
                "attempts": attempts,
                "provider": last.as_ref().map(|e| e.provider),
                "class": self_class(self),
                "reasons": reasons,
                "deadline_exceeded": deadline_exceeded,
            })),
            _ => None,
        }
    }
}

impl ApiError {
    /// The `detail` of this error: structured for a 401 or 422, else the message.
    fn detail<'a>(&self, message: &'a str, details: Option<&Value>) -> Detail<'a> {
        match self {
            ApiError::Unauthorized(f) => Detail::Auth(AuthDetail {
                context: AuthContext {
                    auth_method: f.auth_method,
                    credentials_provided: f.credentials_provided,
                    environment: f.environment,
                    key_prefix: f.key_prefix.clone(),
                },
                message,
            }),
            ApiError::Validation { .. } => Detail::Validation(validation_detail(message, details)),
            _ => Detail::Message(message),
        }
    }
}

/// What axum puts before a serde data error's text.
const SERDE_PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";

/// FastAPI's 422 `detail`: one `{loc, msg, type}` entry. `loc` starts with
/// `details.in` (`query` for a query parameter; `body` when absent) and follows `details.field` (`options.max_length` → `["body",
/// "options", "max_length"]`), or the path serde reported.
fn validation_detail(message: &str, details: Option<&Value>) -> Vec<ValidationIssue> {
    let serde_text = message.strip_prefix(SERDE_PREFIX);
    let field = details
        .and_then(|d| d.get("field"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            // serde_path_to_error: "options.max_length: invalid type ..." —
            // a path has no spaces; "missing field `text` at ..." has.
            let (path, _) = serde_text?.split_once(": ")?;
            (!path.contains(' ') && path != ".").then(|| path.to_string())
        });
    let origin = details
        .and_then(|d| d.get("in"))
        .and_then(Value::as_str)
        .unwrap_or("body");
    let mut loc = vec![LocPart::Name(origin.into())];
    if let Some(field) = &field {
        for part in field.split('.').filter(|p| !p.is_empty()) {
            match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
                Some(index) => loc.push(
                    index
                        .parse::<u64>()
                        .map_or(LocPart::Name(part.into()), LocPart::Index),
                ),
                None => loc.push(LocPart::Name(part.into())),
            }
        }
    }
    let text = serde_text.unwrap_or(message);
    if field.is_none() {
        // "missing field `text`": FastAPI names the field in `loc`.
        if let Some(name) = text
            .split_once("missing field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name)
        {
            loc.push(LocPart::Name(name.into()));
        }
    }
    vec![ValidationIssue {
        loc,
        msg: message.to_string(),
        kind: validation_type(text, details),
    }]
}

/// The pydantic error type closest to a keel validation error.
fn validation_type(text: &str, details: Option<&Value>) -> &'static str {
    let has = |k: &str| details.and_then(|d| d.get(k)).is_some();
    if text.contains("missing field") {
        "missing"
    } else if text.contains("unknown field") || has("allowed") && has("suggestion") {
        "extra_forbidden"
    } else if text.contains("invalid type") || text.contains("must be an integer") {
        "int_type"
    } else if has("count") && has("min") {
        "too_short"
    } else if has("count") && has("max") {
        "too_long"
    } else if has("length") && has("min") {
        "string_too_short"
    } else if has("length") && has("max") {
        "string_too_long"
    } else if has("value") && has("min") {
        "value_out_of_range"
    } else if has("allowed") {
        "enum"
    } else {
        "value_error"
    }
}

fn self_class(e: &ApiError) -> Option<ErrorClass> {
    match e {
        ApiError::Upstream(job) => Some(job.class()),
        _ => None,
    }
}

fn rate_limit_message(d: &crate::rate_limit::Decision) -> String {
    if d.unavailable {
        "rate limiter unavailable (Redis is down and RATE_LIMIT_REDIS_FAILURE=closed); retry shortly".into()
    } else {
        format!(
            "rate limit exceeded: {} requests allowed in the current window; retry in {} s",
            d.limit,
            d.retry_after_secs.unwrap_or(1)
        )
    }
}

/// The `error_code` used for a bare status (also for errors keel did not
/// raise itself, such as axum's 405).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "AUTHENTICATION_ERROR",
        403 => "AUTHORIZATION_ERROR",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        413 => "PAYLOAD_TOO_LARGE",
        414 => "URI_TOO_LONG",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "VALIDATION_ERROR",
        429 => "RATE_LIMIT_EXCEEDED",
        431 => "REQUEST_HEADER_FIELDS_TOO_LARGE",
        502 => "BAD_GATEWAY",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        s if s >= 500 => "INTERNAL_ERROR",
        _ => "CLIENT_ERROR",
    }
}

/// Renders the common error body for `status` (`detail` is the message).
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&Value>,
) -> Response {
    error_response_with_detail(status, code, message, details, Detail::Message(message))
}

fn error_response_with_detail(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&Value>,
    detail: Detail<'_>,
) -> Response {
    let body = ErrorBody {
        success: false,
        error: message,
        error_code: code,
        details,
        detail,
        request_id: request_id::current(),
        timestamp: crate::time::now_rfc3339(),
    };
    (status, super::json::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let details = self.details();
        let message = self.to_string();
        let detail = self.detail(&message, details.as_ref());
        let mut response =
            error_response_with_detail(status, self.code(), &message, details.as_ref(), detail);
        if let Some(after) = self.retry_after() {
            // Round up: "retry after 0 s" would invite an immediate retry.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let ApiError::RateLimited(d) = &self {
            super::limits::add_headers(response.headers_mut(), d);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
