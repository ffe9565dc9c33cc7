//! The OpenAI-compatible provider: `POST {OPENAI_BASE_URL}/chat/completions`.
//!
//! The same wire format is spoken by OpenAI, vLLM, Ollama, llama.cpp's server
//! and LiteLLM, so `OPENAI_BASE_URL` (including its `/v1`) is all that changes.

use super::http::{client, endpoint, parse_content, secret_header, send_json};
use super::prompt::{SYSTEM_PROMPT_JSON, build_prompt};
use super::{CallOptions, Provider, ProviderError, ProviderKind, ProviderReply, TokenUsage};
use crate::config::ProviderSettings;
use crate::job::Job;
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Talks to one OpenAI-compatible endpoint through a pooled client.
pub struct OpenAiProvider {
    client: reqwest::Client,
    /// `{base}/chat/completions`, parsed once.
    url: reqwest::Url,
    model: String,
    /// `Bearer {OPENAI_API_KEY}`, built and marked sensitive once.
    authorization: Option<HeaderValue>,
}

impl OpenAiProvider {
    /// Creates the provider and its connection pool.
    pub fn new(settings: &ProviderSettings) -> Result<OpenAiProvider, ProviderError> {
        let url = endpoint(
            ProviderKind::OpenAi,
            &format!("{}/chat/completions", settings.base_url),
        )?;
        Ok(OpenAiProvider {
            client: client(ProviderKind::OpenAi, &url)?,
            url,
            model: settings.model.clone(),
            authorization: settings
                .api_key
                .as_deref()
                .map(|key| {
                    secret_header(
                        ProviderKind::OpenAi,
                        "OPENAI_API_KEY",
                        &format!("Bearer {key}"),
                    )
                })
                .transpose()?,
        })
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    /// The system message (pre-escaped, see [`SYSTEM_PROMPT_JSON`]), then
    /// the user message.
    messages: (Message<&'a RawValue>, Message<&'a str>),
    temperature: f32,
}

#[derive(Serialize)]
struct Message<C> {
    role: &'static str,
    content: C,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn run<'a>(
        &'a self,
        job: &'a Job,
        opts: CallOptions,
    ) -> BoxFuture<'a, Result<ProviderReply, ProviderError>> {
        Box::pin(async move {
            let prompt = build_prompt(job);
            let body = ChatRequest {
                model: &self.model,
                messages: (
                    Message {
                        role: "system",
                        content: &SYSTEM_PROMPT_JSON,
                    },
                    Message {
                        role: "user",
                        content: &prompt.user,
                    },
                ),
                temperature: 0.2,
            };
            let mut request = self.client.post(self.url.clone()).json(&body);
            if let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let response: ChatResponse = send_json(ProviderKind::OpenAi, request, opts).await?;
            let content = response
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .unwrap_or_default();
            let output = parse_content(ProviderKind::OpenAi, job, &content)?;
            Ok(ProviderReply {
                output,
                model: response.model.unwrap_or_else(|| self.model.clone()),
                usage: response.usage.map(|u| TokenUsage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                }),
            })
        })
    }
}
