//! The OpenAI-compatible provider: `POST {OPENAI_BASE_URL}/chat/completions`.
//!
//! The same wire format is spoken by OpenAI, vLLM, Ollama, llama.cpp's server
//! and LiteLLM, so `OPENAI_BASE_URL` (including its `/v1`) is all that changes.

use super::ProviderSettings;
use super::http::{Upstream, parse_content, parse_url, secret_header, send_json};
use super::prompt::{SYSTEM_PROMPT, build_prompt};
use super::wire::Envelope;
use super::{CallOptions, Provider, ProviderError, ProviderKind, ProviderReply, TokenUsage};
use crate::job::Job;
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Talks to one OpenAI-compatible endpoint through a pooled client.
pub struct OpenAiProvider {
    /// `{base}/chat/completions` and its client.
    upstream: Upstream,
    /// `{base}/models`: what the health probe `GET`s (lists the models this key may use).
    models_url: reqwest::Url,
    model: String,
    /// The request body around the user message, serialised once.
    envelope: Envelope,
    /// `Bearer {OPENAI_API_KEY}`, built and marked sensitive once.
    authorization: Option<HeaderValue>,
}

impl OpenAiProvider {
    /// Creates the provider and its connection pool.
    pub fn new(settings: &ProviderSettings) -> Result<OpenAiProvider, ProviderError> {
        let upstream = Upstream::new(
            ProviderKind::OpenAi,
            &format!("{}/chat/completions", settings.base_url),
        )?;
        let envelope = Envelope::new(ProviderKind::OpenAi, |user| {
            chat_request(&settings.model, user)
        })?;
        Ok(OpenAiProvider {
            upstream,
            models_url: parse_url(
                ProviderKind::OpenAi,
                &format!("{}/models", settings.base_url),
            )?,
            model: settings.model.clone(),
            envelope,
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

/// The wire format of a call; serialised once, into the [`Envelope`].
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    /// The system message, then the user message.
    messages: [Message<'a>; 2],
    temperature: f32,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

/// The request for `user`, with keel's system prompt and settings.
fn chat_request<'a>(model: &'a str, user: &'a str) -> ChatRequest<'a> {
    ChatRequest {
        model,
        messages: [
            Message {
                role: "system",
                content: SYSTEM_PROMPT,
            },
            Message {
                role: "user",
                content: user,
            },
        ],
        temperature: 0.2,
    }
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
            let mut request = self.upstream.post_json(self.envelope.body(&prompt.user));
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

    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut request = self.upstream.get(&self.models_url);
            if let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            send_json::<IgnoredAny>(ProviderKind::OpenAi, request, CallOptions { timeout })
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_serialised_chat_request() {
        let envelope =
            Envelope::new(ProviderKind::OpenAi, |user| chat_request("gpt-x", user)).unwrap();
        let user =
            "Analyze this.\n---USER TEXT START---\n\"quoted\" \\ café\u{1}\n---USER TEXT END---";
        let body: serde_json::Value = serde_json::from_slice(&envelope.body(user)).unwrap();
        // Byte for byte what serde writes for the whole struct.
        assert_eq!(
            envelope.body(user),
            serde_json::to_vec(&chat_request("gpt-x", user)).unwrap()
        );
        assert_eq!(body["messages"][0]["content"], SYSTEM_PROMPT);
        assert_eq!(body["messages"][1]["content"], user);
        assert_eq!(body["model"], "gpt-x");
    }
}
