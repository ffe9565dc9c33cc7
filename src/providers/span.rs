//! The OpenTelemetry span of one provider call (an attempt or a hedge),
//! with the GenAI semantic-convention attributes.
//!
//! Why here and not in [`crate::telemetry`]: the span's attributes are
//! provider knowledge (which `gen_ai.system` a [`ProviderKind`] is, how a
//! [`ProviderError`] is named), and `telemetry` sits below `providers` (the
//! HTTP clients inject `traceparent` through it), so it must not know
//! provider types.

use super::{ErrorClass, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply};
use crate::telemetry::{TARGET, enabled};
use tracing::Span;
use tracing::field::Empty;

/// `gen_ai.system` of a provider.
fn system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Local => "keel.local",
    }
}

/// `gen_ai.operation.name` of a call to a provider.
fn gen_ai_operation(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "chat",
        ProviderKind::Gemini => "generate_content",
        ProviderKind::Local => "text_completion",
    }
}

/// The span of one provider call (an attempt or a hedge). `breaker_state` is
/// the breaker's wire name (`closed`, `open`, `half_open`) or `unknown`: a
/// plain string, so `providers` does not depend on `resilience`.
pub fn attempt_span(
    kind: ProviderKind,
    model: &str,
    attempt: u32,
    breaker_state: &'static str,
    hedge: bool,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let operation = gen_ai_operation(kind);
    tracing::info_span!(
        target: TARGET,
        "attempt",
        otel.name = format!("{operation} {model}"),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.system = system(kind),
        gen_ai.operation.name = operation,
        gen_ai.request.model = model,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        keel.provider = kind.as_str(),
        keel.attempt = attempt,
        keel.hedge = hedge,
        keel.breaker_state = breaker_state,
        keel.outcome = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Records how a provider call ended: `keel.outcome` is `ok`, `transient`
/// or `permanent`.
pub fn finish_attempt_span(span: &Span, result: &Result<ProviderReply, ProviderError>) {
    if span.is_none() {
        return;
    }
    match result {
        Ok(reply) => {
            span.record("keel.outcome", "ok");
            span.record("gen_ai.response.model", reply.model.as_str());
            if let Some(u) = reply.usage {
                span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
                span.record("gen_ai.usage.output_tokens", u.completion_tokens);
            }
        }
        Err(e) => {
            span.record(
                "keel.outcome",
                match e.class() {
                    ErrorClass::Transient => "transient",
                    ErrorClass::Permanent => "permanent",
                },
            );
            span.record("otel.status_code", "ERROR");
            let error_type = match &e.kind {
                ProviderErrorKind::Status { status } => {
                    span.record("http.response.status_code", *status);
                    "http_status"
                }
                ProviderErrorKind::RateLimited => {
                    span.record("http.response.status_code", 429u16);
                    "rate_limited"
                }
                ProviderErrorKind::Timeout(_) => "timeout",
                ProviderErrorKind::Connect(_) => "connect",
                ProviderErrorKind::Malformed(_) => "malformed_response",
                ProviderErrorKind::InvalidOutput(_) => "invalid_output",
                _ => "other",
            };
            span.record("error.type", error_type);
        }
    }
}
