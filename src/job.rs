//! The unit of work keel runs: a [`Job`] (one operation over one text) and its
//! [`JobOutput`].
//!
//! These types are shared by every provider (local algorithms, OpenAI-compatible,
//! Gemini), by the HTTP layer (which builds a `Job` from a validated request) and
//! by the cache. A `Job` is always already validated and sanitized: providers may
//! rely on `text` being 10..=10000 characters and on `question` being present for
//! [`Operation::Qa`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The five text operations keel offers. The wire names (`summarize`,
/// `sentiment`, `key_points`, `questions`, `qa`) are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Shorten a text to about `max_length` words.
    Summarize,
    /// Classify the text as positive, negative or neutral, with a confidence.
    Sentiment,
    /// Extract up to `max_points` key points.
    KeyPoints,
    /// Generate up to `num_questions` questions about the text.
    Questions,
    /// Answer `question` from the text.
    Qa,
}

impl Operation {
    /// Every operation, in the order the API lists them.
    pub const ALL: [Operation; 5] = [
        Operation::Summarize,
        Operation::Sentiment,
        Operation::KeyPoints,
        Operation::Questions,
        Operation::Qa,
    ];

    /// The wire name, e.g. `key_points`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Summarize => "summarize",
            Operation::Sentiment => "sentiment",
            Operation::KeyPoints => "key_points",
            Operation::Questions => "questions",
            Operation::Qa => "qa",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string names no operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation '{0}' (allowed: summarize, sentiment, key_points, questions, qa)")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_string()))
    }
}

/// Per-operation knobs, already range-checked and defaulted by the API layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobOptions {
    /// Summary length budget in words (summarize; default 100).
    pub max_length: usize,
    /// Maximum number of key points (key_points; default 5).
    pub max_points: usize,
    /// Number of questions to generate (questions; default 5).
    pub num_questions: usize,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            max_length: 100,
            max_points: 5,
            num_questions: 5,
        }
    }
}

/// One validated text job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Job {
    /// What to do with the text.
    pub operation: Operation,
    /// The trimmed, control-character-free user text (10..=10000 chars).
    pub text: String,
    /// The question, present exactly when `operation` is [`Operation::Qa`].
    pub question: Option<String>,
    /// Operation options with defaults filled in.
    pub options: JobOptions,
}

/// Overall polarity of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    /// Predominantly favourable.
    Positive,
    /// Predominantly unfavourable.
    Negative,
    /// Neither, or balanced evidence.
    Neutral,
}

impl SentimentLabel {
    /// The wire name: `positive`, `negative` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Positive => "positive",
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
        }
    }
}

/// A sentiment verdict as the public API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sentiment {
    /// The label.
    pub sentiment: SentimentLabel,
    /// How sure the provider is, in `0.0..=1.0`.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f64,
    /// A short human-readable reason (cue words for the local provider).
    pub explanation: String,
}

/// What a provider produced for a job; the variant always matches the job's
/// operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOutput {
    /// summarize: the summary text.
    Summary { text: String },
    /// sentiment: label, confidence, explanation.
    Sentiment(Sentiment),
    /// key_points: the points, most important first.
    KeyPoints { points: Vec<String> },
    /// questions: each ends with `?`.
    Questions { questions: Vec<String> },
    /// qa: the answer and, when the provider can tell, its confidence.
    Answer {
        text: String,
        confidence: Option<f64>,
    },
}

impl JobOutput {
    /// The operation this output answers.
    pub fn operation(&self) -> Operation {
        match self {
            JobOutput::Summary { .. } => Operation::Summarize,
            JobOutput::Sentiment(_) => Operation::Sentiment,
            JobOutput::KeyPoints { .. } => Operation::KeyPoints,
            JobOutput::Questions { .. } => Operation::Questions,
            JobOutput::Answer { .. } => Operation::Qa,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
            assert_eq!(serde_json::to_string(&op).unwrap(), format!("\"{op}\""));
        }
        assert!("summary".parse::<Operation>().is_err());
    }
}
