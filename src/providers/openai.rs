//! The OpenAI-compatible provider: `POST {OPENAI_BASE_URL}/chat/completions`.
//!
//! The same wire format is spoken by OpenAI, vLLM, Ollama, llama.cpp's server
//! and LiteLLM, so `OPENAI_BASE_URL` (including its `/v1`) is all that changes.

use super::http::{client, endpoint, parse_content, send_json};
use super::prompt::{SYSTEM_PROMPT_JSON, build_prompt};
use super::{CallOptions, Provider, ProviderError, ProviderKind, ProviderReply, TokenUsage};
use crate::config::ProviderSettings;
use crate::job::Job;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Talks to one OpenAI-compatible endpoint through a pooled client.
pub struct OpenAiProvider {
    client: reqwest::Client,
    /// `{base}/chat/completions`, parsed once.
    url: reqwest::Url,
    model: String,
    api_key: Option<String>,
}

impl OpenAiProvider {
    /// Creates the provider and its connection pool.
    pub fn new(settings: &ProviderSettings) -> Result<OpenAiProvider, ProviderError> {
        Ok(OpenAiProvider {
            client: client(ProviderKind::OpenAi)?,
            url: endpoint(
                ProviderKind::OpenAi,
                &format!("{}/chat/completions", settings.base_url),
            )?,
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
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
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
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
