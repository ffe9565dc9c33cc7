//! The request context: every request gets an id (the client's
//! `X-Request-ID` when it is sane, else a fresh UUID), echoed on the response,
//! attached to every log line of the request, and readable anywhere in the
//! request's task through [`current`] — so error bodies carry it too. The
//! same middleware applies the edge rules that concern every request and
//! response: the request-header cap (431), [`admission`] (the head checks and
//! the process-wide concurrency budget), compression of large responses and
//! the security headers.

use super::AppState;
use super::admission;
use super::error::ApiError;
use super::security;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The server-side processing time header, in seconds.
pub static X_PROCESS_TIME: HeaderName = HeaderName::from_static("x-process-time");

/// Requests slower than this are logged at warn.
const SLOW_REQUEST_SECS: f64 = 2.0;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request this task is serving ("" outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

/// A client id is echoed only if it is short visible ASCII, so it cannot
/// inject into logs or headers.
fn sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Middleware: assigns the id, times the request, logs it, and wraps any
/// non-JSON 4xx/5xx (axum's 405, a shed request...) in the common error body.
pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let hsts = state.engine.settings().environment == crate::env::Environment::Production;
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = tracing::field::Empty,
    );
    let task_id = id.clone();
    let mut cut = state.engine.cut_signal();
    let max_body = state.engine.settings().max_request_size;
    // A slot of the process-wide budget, held until the response is made.
    let admitted = state.budget.try_admit(request.uri().path());
    // Unmatched paths share one label so arbitrary URLs cannot grow metrics.
    let route = request.extensions().get::<MatchedPath>().cloned();
    // The OpenTelemetry server span (`Span::none()` when tracing is off),
    // joined to the client's `traceparent`; its trace id goes on every log
    // line of the request, next to the request id.
    let server_span = crate::telemetry::server_span(
        request.method(),
        route.as_ref().map(MatchedPath::as_str),
        request.uri().path(),
        &id,
        request.headers(),
    );
    if let Some(trace_id) = crate::telemetry::trace_id(&server_span) {
        span.record("trace_id", trace_id.as_str());
    }
    let accept_encoding: Vec<HeaderValue> = request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .cloned()
        .collect();
    let mut response = REQUEST_ID
        .scope(task_id, async move {
            // Built inside the scope, so its body carries the request id.
            if let Some(refused) = security::refuse_many_headers(request.headers()) {
                return refused;
            }
            if let Some(refused) = admission::refuse_head(&request, max_body) {
                return refused;
            }
            if admitted.is_none() {
                return ApiError::Overloaded.into_response();
            }
            let response = tokio::select! {
                response = next.run(request) => response,
                // Shutdown grace period over: answer instead of vanishing.
                _ = cut.wait_for(|c| *c) => ApiError::ShuttingDown.into_response(),
            };
            security::compress_if_large(wrap_plain_error(response), accept_encoding).await
        })
        .instrument(server_span.clone())
        .instrument(span.clone())
        .await;

    let elapsed_d = started.elapsed();
    let elapsed = elapsed_d.as_secs_f64();
    state.engine.metrics().record_route(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        elapsed_d,
        crate::telemetry::trace_ref(&server_span),
    );
    let status = response.status().as_u16();
    let headers = response.headers_mut();
    security::add_security_headers(headers, hsts);
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(&X_REQUEST_ID, v);
    }
    headers.insert(&X_PROCESS_TIME, seconds_with_micros(elapsed_d));
    crate::telemetry::finish_server_span(&server_span, status, headers);
    span.in_scope(|| {
        if status >= 500 || elapsed > SLOW_REQUEST_SECS {
            tracing::warn!(status, elapsed_s = elapsed, "request finished");
        } else {
            tracing::debug!(status, elapsed_s = elapsed, "request finished");
        }
    });
    response
}

/// `X-Process-Time`: seconds with six decimals (microseconds, truncated).
/// One small `String`, moved into the header without a copy.
fn seconds_with_micros(elapsed: std::time::Duration) -> HeaderValue {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("0"))
}

fn wrap_plain_error(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return response;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such route",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route",
        s => s.canonical_reason().unwrap_or("request failed"),
    };
    let (parts, _) = response.into_parts();
    let mut wrapped =
        super::error::error_response(status, super::error::code_for_status(status), message, None);
    // Keep meaningful headers such as `Allow` (405) and `Retry-After`.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            wrapped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_time_is_seconds_with_six_decimals() {
        use std::time::Duration;
        assert_eq!(seconds_with_micros(Duration::ZERO), "0.000000");
        assert_eq!(
            seconds_with_micros(Duration::from_nanos(1_500_999)),
            "0.001500"
        );
        assert_eq!(
            seconds_with_micros(Duration::from_micros(2_000_003)),
            "2.000003"
        );
        assert_eq!(seconds_with_micros(Duration::from_secs(61)), "61.000000");
        assert_eq!(
            seconds_with_micros(Duration::MAX),
            "18446744073709.551615",
            "saturates at u64::MAX microseconds"
        );
    }

    #[test]
    fn only_sane_ids_are_echoed() {
        assert!(sane("abc-123_XYZ"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("new\nline"));
        assert!(!sane(&"x".repeat(129)));
    }
}
