//! The `local` provider: keel's built-in offline algorithms ([`crate::nlp`]).
//!
//! It needs no key and no network, answers deterministically, and is the last
//! link of every fallback chain. Long texts run on the blocking pool so a
//! 10 000-character job never stalls the async workers.

use super::{CallOptions, Provider, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply};
use crate::job::{Job, JobOutput, Operation, Sentiment, SentimentLabel};
use crate::nlp;
use futures::future::BoxFuture;

/// Texts longer than this many bytes are analysed on the blocking pool.
const INLINE_LIMIT_BYTES: usize = 2_000;

/// The offline provider. Stateless, so one instance serves every job.
#[derive(Debug, Default, Clone)]
pub struct LocalProvider;

impl LocalProvider {
    /// Creates the provider.
    pub fn new() -> LocalProvider {
        LocalProvider
    }
}

/// Runs the algorithm matching the job's operation.
pub fn run_local(job: &Job) -> JobOutput {
    match job.operation {
        Operation::Summarize => JobOutput::Summary {
            text: nlp::summarize(&job.text, job.options.max_length),
        },
        Operation::Sentiment => {
            let a = nlp::analyze_sentiment(&job.text);
            JobOutput::Sentiment(Sentiment {
                sentiment: match a.polarity {
                    nlp::Polarity::Positive => SentimentLabel::Positive,
                    nlp::Polarity::Negative => SentimentLabel::Negative,
                    nlp::Polarity::Neutral => SentimentLabel::Neutral,
                },
                confidence: a.confidence,
                explanation: a.explanation,
            })
        }
        Operation::KeyPoints => JobOutput::KeyPoints {
            points: nlp::key_points(&job.text, job.options.max_points),
        },
        Operation::Questions => JobOutput::Questions {
            questions: nlp::generate_questions(&job.text, job.options.num_questions),
        },
        Operation::Qa => {
            let question = job.question.as_deref().unwrap_or_default();
            let answer = nlp::answer_question(&job.text, question);
            JobOutput::Answer {
                text: answer.text,
                confidence: Some(answer.confidence),
            }
        }
    }
}

impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn model(&self) -> &str {
        ProviderKind::Local.default_model()
    }

    fn run<'a>(
        &'a self,
        job: &'a Job,
        _opts: CallOptions,
    ) -> BoxFuture<'a, Result<ProviderReply, ProviderError>> {
        Box::pin(async move {
            let output = if job.text.len() <= INLINE_LIMIT_BYTES {
                run_local(job)
            } else {
                let owned = job.clone();
                // The algorithms do not panic by design; if one ever did, the
                // job fails with an error instead of taking the worker down.
                tokio::task::spawn_blocking(move || run_local(&owned))
                    .await
                    .map_err(|e| {
                        ProviderError::new(
                            ProviderKind::Local,
                            ProviderErrorKind::InvalidOutput(format!(
                                "local algorithm failed: {e}"
                            )),
                        )
                    })?
            };
            Ok(ProviderReply {
                output,
                model: self.model().to_string(),
                usage: None,
            })
        })
    }
}
