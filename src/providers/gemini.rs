//! The Gemini provider: `POST {GEMINI_BASE_URL}/v1beta/models/{model}:generateContent`.
//!
//! The key travels in the `x-goog-api-key` header (never in the URL, so it
//! cannot leak into access logs).

use super::ProviderSettings;
use super::http::{Upstream, parse_content, parse_url, secret_header, send_json};
use super::prompt::{SYSTEM_PROMPT, build_prompt};
use super::wire::Envelope;
use super::{CallOptions, Provider, ProviderError, ProviderKind, ProviderReply, TokenUsage};
use crate::job::Job;
use futures::future::BoxFuture;
use reqwest::header::HeaderValue;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Talks to one Gemini endpoint through a pooled client.
pub struct GeminiProvider {
    /// The full `generateContent` URL and its client.
    upstream: Upstream,
    /// `{base}/v1beta/models/{model}`: what the health probe `GET`s (the model's metadata).
    model_url: reqwest::Url,
    model: String,
    /// The request body around the user message, serialised once.
    envelope: Envelope,
    /// `GEMINI_API_KEY`, built and marked sensitive once.
    api_key: Option<HeaderValue>,
}

impl GeminiProvider {
    /// Creates the provider and its connection pool.
    pub fn new(settings: &ProviderSettings) -> Result<GeminiProvider, ProviderError> {
        let upstream = Upstream::new(
            ProviderKind::Gemini,
            &format!(
                "{}/v1beta/models/{}:generateContent",
                settings.base_url, settings.model
            ),
        )?;
        let envelope = Envelope::new(ProviderKind::Gemini, generate_request)?;
        Ok(GeminiProvider {
            upstream,
            model_url: parse_url(
                ProviderKind::Gemini,
                &format!("{}/v1beta/models/{}", settings.base_url, settings.model),
            )?,
            model: settings.model.clone(),
            envelope,
            api_key: settings
                .api_key
                .as_deref()
                .map(|key| secret_header(ProviderKind::Gemini, "GEMINI_API_KEY", key))
                .transpose()?,
        })
    }
}

/// The wire format of a call; serialised once, into the [`Envelope`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    system_instruction: Content<'a>,
    contents: [Content<'a>; 1],
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

/// The request for `user`, with keel's system instruction and settings.
fn generate_request(user: &str) -> GenerateRequest<'_> {
    GenerateRequest {
        system_instruction: Content {
            role: None,
            parts: [Part {
                text: SYSTEM_PROMPT,
            }],
        },
        contents: [Content {
            role: Some("user"),
            parts: [Part { text: user }],
        }],
        generation_config: GenerationConfig { temperature: 0.2 },
    }
}

#[derive(Serialize)]
struct GenerationConfig {
    temperature: f32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
}

#[derive(Deserialize)]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<CandidatePart>,
}

#[derive(Deserialize)]
struct CandidatePart {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
}

impl Provider for GeminiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
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
            if let Some(key) = &self.api_key {
                request = request.header("x-goog-api-key", key.clone());
            }
            let response: GenerateResponse = send_json(ProviderKind::Gemini, request, opts).await?;
            // A candidate may be split into several parts; they form one answer.
            let content: String = response
                .candidates
                .into_iter()
                .next()
                .and_then(|c| c.content)
                .map(|c| c.parts.into_iter().filter_map(|p| p.text).collect())
                .unwrap_or_default();
            let output = parse_content(ProviderKind::Gemini, job, &content)?;
            Ok(ProviderReply {
                output,
                model: response.model_version.unwrap_or_else(|| self.model.clone()),
                usage: response.usage_metadata.map(|u| TokenUsage {
                    prompt_tokens: u.prompt_token_count,
                    completion_tokens: u.candidates_token_count,
                }),
            })
        })
    }

    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut request = self.upstream.get(&self.model_url);
            if let Some(value) = &self.api_key {
                request = request.header("x-goog-api-key", value.clone());
            }
            send_json::<IgnoredAny>(ProviderKind::Gemini, request, CallOptions { timeout })
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_serialised_generate_request() {
        let envelope = Envelope::new(ProviderKind::Gemini, generate_request).unwrap();
        let user = "Summarize.\n---USER TEXT START---\n\"quoted\" \\ 東京\t\n---USER TEXT END---";
        let body: serde_json::Value = serde_json::from_slice(&envelope.body(user)).unwrap();
        // Byte for byte what serde writes for the whole struct.
        assert_eq!(
            envelope.body(user),
            serde_json::to_vec(&generate_request(user)).unwrap()
        );
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], SYSTEM_PROMPT);
        assert_eq!(body["contents"][0]["parts"][0]["text"], user);
        assert_eq!(body["contents"][0]["role"], "user");
    }
}
