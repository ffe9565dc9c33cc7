//! Micro-benchmarks of keel's request-path pieces. Run with `make bench`.
//!
//! - the local provider's algorithms on a 20-sentence article;
//! - request validation (sanitize + checks);
//! - reading a published view (provider table) vs an actor `call` round trip —
//!   the measurement behind "request paths read views, never mailboxes";
//! - recording into the metrics registry;
//! - a whole job through the orchestrator with the local provider.

use criterion::{Criterion, criterion_group, criterion_main};
use keel::actors::metrics::{MetricsAggregator, MetricsMsg};
use keel::api::text::ProcessRequest;
use keel::config::{MapEnv, Settings};
use keel::engine::Engine;
use keel::job::{Job, JobOptions, Operation};
use keel::metrics::Metrics;
use keel::providers::ProviderKind;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const ARTICLE: &str = "The city of Riverton launched a new solar energy program this spring. \
The solar program will install panels on two hundred public buildings. \
Officials expect the solar panels to cut the city's energy costs by a third. \
The mayor said the program is the largest investment in clean energy in the city's history. \
Construction crews began work on the first schools in April. \
Some residents worried about the cost of the project, but most were delighted. \
The council approved a budget of forty million dollars for the program. \
The program is expected to create three hundred jobs.";

fn job(operation: Operation) -> Job {
    Job {
        operation,
        text: ARTICLE.to_string(),
        question: (operation == Operation::Qa)
            .then(|| "How many jobs will the program create?".into()),
        options: JobOptions::default(),
    }
}

fn local_algorithms(c: &mut Criterion) {
    let mut g = c.benchmark_group("local_provider");
    for op in Operation::ALL {
        let j = job(op);
        g.bench_function(op.as_str(), |b| {
            b.iter(|| keel::providers::run_local(black_box(&j)))
        });
    }
    g.finish();
}

fn validation(c: &mut Criterion) {
    c.bench_function("validate_process_request", |b| {
        b.iter(|| {
            let r = ProcessRequest {
                text: ARTICLE.to_string(),
                operation: "summarize".into(),
                question: None,
                options: None,
                user_metadata: None,
            };
            black_box(r.validate().is_ok())
        })
    });
}

fn views_vs_mailbox(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let settings = Settings::from_source(&MapEnv::new(&[])).expect("settings");
    let engine = rt.block_on(Engine::start(settings)).expect("engine");
    c.bench_function("provider_table_read", |b| {
        b.iter(|| black_box(engine.providers().get(ProviderKind::Local)))
    });
    let metrics = Arc::new(Metrics::default());
    let (actor, _) = rt
        .block_on(ractor::Actor::spawn(
            None,
            MetricsAggregator,
            metrics.clone(),
        ))
        .expect("actor");
    c.bench_function("actor_call_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                actor
                    .call(MetricsMsg::Snapshot, Some(Duration::from_secs(1)))
                    .await
                    .is_ok(),
            )
        })
    });
    c.bench_function("metrics_record_call", |b| {
        b.iter(|| metrics.record_call(ProviderKind::OpenAi, Duration::from_micros(1234), Ok(())))
    });
    let j = job(Operation::Sentiment);
    c.bench_function("engine_run_job_local_sentiment", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.run_job(&j, None).await.is_ok()) })
    });
    actor.stop(None);
    rt.block_on(engine.shutdown());
}

criterion_group!(benches, local_algorithms, validation, views_vs_mailbox);
criterion_main!(benches);
