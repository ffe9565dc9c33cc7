//! Wire formats of the two emulated providers: OpenAI chat-completions and
//! Gemini generateContent.
//!
//! Requests are parsed into one provider-neutral [`Parsed`] (model, the full
//! prompt text, the last message) and responses are rendered from borrowed
//! data with typed `Serialize` structs, so the hot path does one parse and
//! one serialization per request. Error bodies mirror each provider's real
//! error envelope so client code exercises its real error mapping.
//!
//! Invariant: parsing is lenient about unknown fields (real clients send
//! plenty) but strict about the shape keel relies on: a non-empty `model`
//! and non-empty `messages` array (OpenAI), a non-empty `contents` array
//! (Gemini). Any violation is reported as a message for a 400 response.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Which provider's wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    OpenAi,
    Gemini,
}

/// A validated request, reduced to what the answer generator needs.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// Model name, echoed back in the response.
    pub model: String,
    /// All message texts (system first), newline separated.
    pub prompt: String,
    /// Text of the final message; the user-text fallback when the prompt
    /// carries no user-text markers.
    pub last_message: String,
}

// ---------------------------------------------------------------- OpenAI in

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<MessageContent>,
}

/// OpenAI accepts either a plain string or an array of typed parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(default)]
    text: Option<String>,
}

impl MessageContent {
    fn push_text(&self, out: &mut String) {
        match self {
            MessageContent::Text(text) => out.push_str(text),
            MessageContent::Parts(parts) => {
                for text in parts.iter().filter_map(|p| p.text.as_deref()) {
                    out.push_str(text);
                }
            }
        }
    }
}

/// Parse and validate an OpenAI chat-completions body.
pub(crate) fn parse_openai(body: &[u8]) -> Result<Parsed, String> {
    let req: ChatRequest =
        serde_json::from_slice(body).map_err(|err| format!("Invalid request body: {err}"))?;
    let model = match req.model {
        Some(model) if !model.is_empty() => model,
        _ => return Err("you must provide a model parameter".to_owned()),
    };
    let messages = match req.messages {
        Some(messages) if !messages.is_empty() => messages,
        Some(_) => return Err("'messages' must contain at least one message".to_owned()),
        None => return Err("'messages' is a required property".to_owned()),
    };
    let mut prompt = String::new();
    let mut last_message = String::new();
    for (idx, message) in messages.iter().enumerate() {
        let Some(content) = &message.content else {
            continue;
        };
        if !prompt.is_empty() {
            prompt.push('\n');
        }
        content.push_text(&mut prompt);
        if idx + 1 == messages.len() {
            content.push_text(&mut last_message);
        }
    }
    Ok(Parsed {
        model,
        prompt,
        last_message,
    })
}

// ---------------------------------------------------------------- Gemini in

#[derive(Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    contents: Option<Vec<GeminiContent>>,
    // The REST API documents camelCase but also accepts snake_case.
    #[serde(default, rename = "systemInstruction", alias = "system_instruction")]
    system_instruction: Option<GeminiContent>,
}

#[derive(Deserialize)]
struct GeminiContent {
    #[serde(default)]
    parts: Vec<GeminiPart>,
}

#[derive(Deserialize)]
struct GeminiPart {
    #[serde(default)]
    text: Option<String>,
}

impl GeminiContent {
    fn push_text(&self, out: &mut String) {
        for text in self.parts.iter().filter_map(|p| p.text.as_deref()) {
            out.push_str(text);
        }
    }
}

/// Parse and validate a Gemini generateContent body; `model` comes from the
/// URL path.
pub(crate) fn parse_gemini(body: &[u8], model: &str) -> Result<Parsed, String> {
    let req: GenerateRequest = serde_json::from_slice(body)
        .map_err(|err| format!("Invalid JSON payload received. {err}"))?;
    let contents = match req.contents {
        Some(contents) if !contents.is_empty() => contents,
        _ => return Err("* GenerateContentRequest.contents: contents is not specified".to_owned()),
    };
    let mut prompt = String::new();
    if let Some(system) = &req.system_instruction {
        system.push_text(&mut prompt);
    }
    let mut last_message = String::new();
    for (idx, content) in contents.iter().enumerate() {
        if !prompt.is_empty() {
            prompt.push('\n');
        }
        content.push_text(&mut prompt);
        if idx + 1 == contents.len() {
            content.push_text(&mut last_message);
        }
    }
    Ok(Parsed {
        model: model.to_owned(),
        prompt,
        last_message,
    })
}

// --------------------------------------------------------------- responses

/// Token usage reported with a completion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    usage: ChatUsage,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: CandidateContent<'a>,
    finish_reason: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct CandidateContent<'a> {
    parts: [TextPart<'a>; 1],
    role: &'static str,
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
}

/// Render a successful completion in the provider's format.
pub(crate) fn success_body(
    provider: Provider,
    id: u64,
    created: u64,
    model: &str,
    text: &str,
    usage: Usage,
) -> Vec<u8> {
    let total = usage.prompt.saturating_add(usage.completion);
    let rendered = match provider {
        Provider::OpenAi => serde_json::to_vec(&ChatCompletion {
            id: format!("chatcmpl-{id}"),
            object: "chat.completion",
            created,
            model,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: text,
                },
                finish_reason: "stop",
            }],
            usage: ChatUsage {
                prompt_tokens: usage.prompt,
                completion_tokens: usage.completion,
                total_tokens: total,
            },
        }),
        Provider::Gemini => serde_json::to_vec(&GenerateResponse {
            candidates: [Candidate {
                content: CandidateContent {
                    parts: [TextPart { text }],
                    role: "model",
                },
                finish_reason: "STOP",
                index: 0,
            }],
            usage_metadata: UsageMetadata {
                prompt_token_count: usage.prompt,
                candidates_token_count: usage.completion,
                total_token_count: total,
            },
            model_version: model,
        }),
    };
    // Serializing plain strings and integers cannot fail; an empty object
    // keeps the no-panic invariant without inventing a fake answer.
    rendered.unwrap_or_else(|_| b"{}".to_vec())
}

/// Cut a valid JSON body roughly in half (on a char boundary), which is
/// never valid JSON: a proper prefix of an object lacks its closing brace.
pub(crate) fn truncate_body(mut body: Vec<u8>) -> Vec<u8> {
    let mut cut = body.len() / 2;
    // UTF-8 continuation bytes look like 0b10xx_xxxx; back up to a char start
    // so clients that decode the body as text still get valid UTF-8.
    while cut > 0 && body.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    body.truncate(cut.max(1));
    body
}

/// The error situations the fake server reports.
#[derive(Debug)]
pub(crate) enum ErrorKind<'a> {
    /// Missing or wrong API key.
    Unauthorized,
    /// The request shape is invalid.
    BadRequest(&'a str),
    /// Unknown method on a known resource (Gemini `:otherAction`).
    NotFound(&'a str),
    /// Injected upstream failure with the configured status.
    Upstream(StatusCode),
    /// Injected 429; the caller adds the `Retry-After` header.
    RateLimited { retry_after_secs: u64 },
}

/// Render an error in the provider's envelope; returns status and body.
pub(crate) fn error_body(provider: Provider, kind: &ErrorKind<'_>) -> (StatusCode, Vec<u8>) {
    let status = match kind {
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::BadRequest(_) => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound(_) => StatusCode::NOT_FOUND,
        ErrorKind::Upstream(status) => *status,
        ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
    };
    let value = match provider {
        Provider::OpenAi => openai_error(kind, status),
        Provider::Gemini => gemini_error(kind, status),
    };
    (status, value.to_string().into_bytes())
}

fn openai_error(kind: &ErrorKind<'_>, status: StatusCode) -> serde_json::Value {
    let (message, kind_name, code): (String, &str, Option<&str>) = match kind {
        ErrorKind::Unauthorized => (
            "Incorrect API key provided".to_owned(),
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        ErrorKind::BadRequest(msg) => ((*msg).to_owned(), "invalid_request_error", None),
        ErrorKind::NotFound(msg) => ((*msg).to_owned(), "invalid_request_error", None),
        ErrorKind::Upstream(_) if status.is_server_error() => (
            "The server had an error while processing your request.".to_owned(),
            "server_error",
            None,
        ),
        ErrorKind::Upstream(_) => (
            format!("Request failed with status {}.", status.as_u16()),
            "invalid_request_error",
            None,
        ),
        ErrorKind::RateLimited { retry_after_secs } => (
            format!("Rate limit reached for requests. Please try again in {retry_after_secs}s."),
            "requests",
            Some("rate_limit_exceeded"),
        ),
    };
    serde_json::json!({ "error": { "message": message, "type": kind_name, "code": code } })
}

fn gemini_error(kind: &ErrorKind<'_>, status: StatusCode) -> serde_json::Value {
    let (message, status_name): (&str, &str) = match kind {
        ErrorKind::Unauthorized => (
            "API key not valid. Please pass a valid API key.",
            "UNAUTHENTICATED",
        ),
        ErrorKind::BadRequest(msg) => (msg, "INVALID_ARGUMENT"),
        ErrorKind::NotFound(msg) => (msg, "NOT_FOUND"),
        ErrorKind::RateLimited { .. } => (
            "Resource has been exhausted (e.g. check quota).",
            "RESOURCE_EXHAUSTED",
        ),
        ErrorKind::Upstream(_) => match status.as_u16() {
            503 => (
                "The model is overloaded. Please try again later.",
                "UNAVAILABLE",
            ),
            504 => (
                "Deadline expired before operation could complete.",
                "DEADLINE_EXCEEDED",
            ),
            400 => ("Request contains an invalid argument.", "INVALID_ARGUMENT"),
            403 => ("The caller does not have permission.", "PERMISSION_DENIED"),
            404 => ("Requested entity was not found.", "NOT_FOUND"),
            _ => ("Internal error encountered.", "INTERNAL"),
        },
    };
    serde_json::json!({
        "error": { "code": status.as_u16(), "message": message, "status": status_name }
    })
}
