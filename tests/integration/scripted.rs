//! An in-process provider that follows a script, for tests on tokio's paused
//! clock (a real socket server cannot run on virtual time).

use futures::future::BoxFuture;
use keel::job::{Job, JobOutput, Sentiment, SentimentLabel};
use keel::providers::{
    CallOptions, Provider, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What the next call does.
#[derive(Debug, Clone)]
pub enum Step {
    Ok,
    Fail(u16),
    RateLimited(Duration),
    /// Never answers (until the caller's timeout).
    Hang,
    /// Answers after this long (a slow but healthy upstream).
    OkAfter(Duration),
}

/// A provider of kind `kind` answering from a script, then `default`.
pub struct Scripted {
    kind: ProviderKind,
    script: Mutex<VecDeque<Step>>,
    default: Mutex<Step>,
    pub calls: AtomicU32,
    pub call_times: Mutex<Vec<Instant>>,
}

impl Scripted {
    pub fn new(kind: ProviderKind, script: Vec<Step>, default: Step) -> Arc<Scripted> {
        Arc::new(Scripted {
            kind,
            script: Mutex::new(script.into()),
            default: Mutex::new(default),
            calls: AtomicU32::new(0),
            call_times: Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_default(&self, step: Step) {
        *self.default.lock().unwrap() = step;
    }
}

fn output(job: &Job) -> JobOutput {
    match job.operation {
        keel::job::Operation::Summarize => JobOutput::Summary {
            text: "scripted summary".into(),
        },
        keel::job::Operation::Sentiment => JobOutput::Sentiment(Sentiment {
            sentiment: SentimentLabel::Neutral,
            confidence: 0.5,
            explanation: "scripted".into(),
        }),
        keel::job::Operation::KeyPoints => JobOutput::KeyPoints {
            points: vec!["point".into()],
        },
        keel::job::Operation::Questions => JobOutput::Questions {
            questions: vec!["Why?".into()],
        },
        keel::job::Operation::Qa => JobOutput::Answer {
            text: "answer".into(),
            confidence: None,
        },
    }
}

impl Provider for Scripted {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn model(&self) -> &str {
        "scripted"
    }

    fn run<'a>(
        &'a self,
        job: &'a Job,
        opts: CallOptions,
    ) -> BoxFuture<'a, Result<ProviderReply, ProviderError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.call_times.lock().unwrap().push(Instant::now());
            let step = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.default.lock().unwrap().clone());
            let err = |kind| Err(ProviderError::new(self.kind, kind));
            match step {
                Step::Ok => Ok(ProviderReply {
                    output: output(job),
                    model: "scripted".into(),
                    usage: None,
                }),
                Step::Fail(status) => err(ProviderErrorKind::Status { status }),
                Step::RateLimited(after) => Err(ProviderError {
                    provider: self.kind,
                    kind: ProviderErrorKind::RateLimited,
                    retry_after: Some(after),
                }),
                Step::OkAfter(latency) => {
                    tokio::time::sleep(latency).await;
                    Ok(ProviderReply {
                        output: output(job),
                        model: "scripted".into(),
                        usage: None,
                    })
                }
                Step::Hang => {
                    tokio::time::sleep(opts.timeout).await;
                    err(ProviderErrorKind::Timeout(opts.timeout))
                }
            }
        })
    }
}
