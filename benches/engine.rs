//! Micro-benchmarks of keel's request-path pieces. Run with `make bench`, or
//! quickly with `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`.
//!
//! - the local provider's algorithms on an 8-sentence article;
//! - request validation (sanitize + checks);
//! - reading a published view (provider table) vs an actor `call` round trip —
//!   the measurement behind "request paths read views, never mailboxes";
//! - recording into the metrics registry;
//! - a whole job through the orchestrator with the local provider (cache
//!   off, so every iteration runs the algorithm);
//! - resilience primitives: a circuit breaker's admit + record, the memory
//!   rate limiter's check, the cache key and a memory-tier hit;
//! - the memory tier against moka (hit, insert into a full cache);
//! - configuration: loading the `production` preset, reading `Settings`;
//! - the in-process pipeline with a provider that answers at once, cache off
//!   (breaker, bulkhead, retry policy, provider call, output checks, metrics)
//!   and cache on (a hit), through [`Engine::run_job`] and through the whole
//!   HTTP router (`tower::ServiceExt::oneshot`, no socket).

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use keel::actors::metrics::{MetricsAggregator, MetricsAggregatorArgs, MetricsMsg};
use keel::api::text::ProcessRequest;
use keel::api::{AppState, router};
use keel::cache::{Cache, CacheConfig, CacheKey, CachedAnswer};
use keel::config::Settings;
use keel::engine::Engine;
use keel::env::MapEnv;
use keel::job::{Job, JobOptions, JobOutput, Operation, Sentiment, SentimentLabel};
use keel::metrics::Metrics;
use keel::providers::{CallOptions, Provider, ProviderError, ProviderKind, ProviderReply};
use keel::rate_limit::{RateLimitConfig, RateLimiter};
use keel::resilience::breaker::{BreakerSettings, CallOutcome, CircuitBreaker};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
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
    let rt = runtime();
    // Cache off: with it on, every iteration after the first would be a hit.
    let settings =
        Settings::from_source(&MapEnv::new(&[("CACHE_ENABLED", "false")])).expect("settings");
    let engine = rt.block_on(Engine::start(settings)).expect("engine");
    c.bench_function("provider_table_read", |b| {
        b.iter(|| black_box(engine.providers().get(ProviderKind::Local)))
    });
    let metrics = Arc::new(Metrics::default());
    let (actor, _) = rt
        .block_on(ractor::Actor::spawn(
            None,
            MetricsAggregator,
            MetricsAggregatorArgs {
                metrics: metrics.clone(),
                resilience: engine.resilience().clone(),
            },
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
        b.iter(|| {
            metrics.record_call(
                ProviderKind::OpenAi,
                Duration::from_micros(1234),
                Ok(()),
                None,
            )
        })
    });
    let j = job(Operation::Sentiment);
    c.bench_function("engine_run_job_local_sentiment", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.run_job(&j, None).await.is_ok()) })
    });
    actor.stop(None);
    rt.block_on(engine.shutdown());
}

fn resilience_primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("resilience");
    // Default settings: after the first iterations the sliding window holds
    // its maximum of calls (as it does in production above ~17 calls/s per
    // provider and operation with the default 60 s window).
    let breaker = CircuitBreaker::new("openai:sentiment", BreakerSettings::default());
    g.bench_function("breaker_admit_record", |b| {
        b.iter(|| {
            if let Ok(permit) = breaker.try_acquire() {
                permit.record(CallOutcome::Success);
            }
        })
    });
    // The same with a zero-length window (never more than one call in it):
    // the difference is the cost of scanning a full window on every record.
    let small_window = CircuitBreaker::new(
        "openai:sentiment",
        BreakerSettings {
            window: Duration::ZERO,
            ..BreakerSettings::default()
        },
    );
    g.bench_function("breaker_admit_record_empty_window", |b| {
        b.iter(|| {
            if let Ok(permit) = small_window.try_acquire() {
                permit.record(CallOutcome::Success);
            }
        })
    });

    // Limits high enough that no identity is ever denied during a run: the
    // allowed path (every window checked and counted) is what requests pay.
    let config = RateLimitConfig::from_env(&MapEnv::new(&[
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("RATE_LIMIT_PER_HOUR", "100000000"),
        ("RATE_LIMIT_PER_DAY", "1000000000"),
    ]))
    .expect("rate limit config");
    let limiter = RateLimiter::new(config, None);
    let identities: Vec<String> = (0..1024).map(|i| format!("key:client-{i}")).collect();
    let rt = runtime();
    let mut next = 0usize;
    g.bench_function("limiter_check_memory", |b| {
        b.to_async(&rt).iter(|| {
            next = (next + 1) % identities.len();
            let identity = &identities[next];
            let limiter = &limiter;
            async move {
                black_box(
                    limiter
                        .check(identity, "/v1/text_processing/process", 1)
                        .await
                        .allowed,
                )
            }
        })
    });
    g.finish();
    let stats = limiter.stats();
    assert_eq!(
        stats.denied, 0,
        "the limiter bench must measure allowed checks"
    );
}

fn cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    let config = CacheConfig::from_env(&MapEnv::new(&[])).expect("cache config");
    let cache = Cache::new(config, None);
    let j = job(Operation::Sentiment);
    g.bench_function("key_sha256", |b| {
        b.iter(|| black_box(CacheKey::new(black_box(&j), "openai", "gpt-4o-mini")))
    });
    let rt = runtime();
    let key = CacheKey::new(&j, "openai", "gpt-4o-mini");
    let answer = CachedAnswer {
        output: JobOutput::Sentiment(Sentiment {
            sentiment: SentimentLabel::Positive,
            confidence: 0.8,
            explanation: "Positive: cues 'delighted'.".into(),
        }),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        stored_at_unix_ms: 0,
    };
    rt.block_on(cache.put(&key, Operation::Sentiment, answer));
    g.bench_function("memory_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get(&key).await.is_some()) })
    });
    g.bench_function("key_plus_memory_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let key = CacheKey::new(&j, "openai", "gpt-4o-mini");
            black_box(cache.get(&key).await.is_some())
        })
    });
    g.finish();
}

/// keel's memory tier against moka (W-TinyLFU, the standard Rust concurrent
/// cache), both holding 10 000 answers: a hit, and an insert into the full
/// cache (an eviction each time).
fn memory_tier_vs_moka(c: &mut Criterion) {
    use keel::cache::MemoryTier;
    const ENTRIES: u64 = 10_000;
    let mut g = c.benchmark_group("memory_tier_vs_moka");
    let answer = Arc::new(CachedAnswer {
        output: JobOutput::Sentiment(Sentiment {
            sentiment: SentimentLabel::Positive,
            confidence: 0.8,
            explanation: "Positive: cues 'delighted'.".into(),
        }),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        stored_at_unix_ms: 0,
    });
    let keys: Vec<String> = (0..ENTRIES)
        .map(|i| format!("keel:cache:v1:{i:064x}"))
        .collect();
    let ttl = Duration::from_secs(3600);
    let rt = runtime();
    let _guard = rt.enter();
    let tier = MemoryTier::new(ENTRIES, u64::MAX / 2);
    let moka: moka::sync::Cache<Arc<str>, Arc<CachedAnswer>> = moka::sync::Cache::builder()
        .max_capacity(ENTRIES)
        .time_to_live(ttl)
        .build();
    for k in &keys {
        tier.insert(k, answer.clone(), 300, ttl);
        moka.insert(Arc::from(k.as_str()), answer.clone());
    }
    moka.run_pending_tasks();
    let mut i = 0usize;
    g.bench_function("keel_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(tier.get(&keys[i]).is_some())
        })
    });
    g.bench_function("moka_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(moka.get(keys[i].as_str()).is_some())
        })
    });
    let fresh: Vec<String> = (0..ENTRIES)
        .map(|i| format!("keel:cache:v1:{:064x}", i + ENTRIES))
        .collect();
    let mut n = 0usize;
    g.bench_function("keel_insert_evicting", |b| {
        b.iter(|| {
            n = (n + 1) % fresh.len();
            black_box(tier.insert(&fresh[n], answer.clone(), 300, ttl))
        })
    });
    g.bench_function("moka_insert_evicting", |b| {
        b.iter(|| {
            n = (n + 1) % fresh.len();
            moka.insert(Arc::from(fresh[n].as_str()), answer.clone());
        })
    });
    g.finish();
}

fn config_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("config");
    let production = MapEnv::new(&[("RESILIENCE_PRESET", "production")]);
    g.bench_function("resilience_preset_production", |b| {
        b.iter(|| black_box(keel::resilience::config::load(&production).is_ok()))
    });
    let empty = MapEnv::new(&[]);
    g.bench_function("settings_from_source_defaults", |b| {
        b.iter(|| black_box(Settings::from_source(&empty).is_ok()))
    });
    g.finish();
}

/// An `openai` provider that answers every job at once, in process.
struct InstantProvider;

impl Provider for InstantProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn model(&self) -> &str {
        "instant"
    }

    fn run<'a>(
        &'a self,
        job: &'a Job,
        _opts: CallOptions,
    ) -> BoxFuture<'a, Result<ProviderReply, ProviderError>> {
        let output = match job.operation {
            Operation::Summarize => JobOutput::Summary {
                text: "The city launched a solar program.".into(),
            },
            Operation::Sentiment => JobOutput::Sentiment(Sentiment {
                sentiment: SentimentLabel::Positive,
                confidence: 0.8,
                explanation: "Residents were delighted.".into(),
            }),
            Operation::KeyPoints => JobOutput::KeyPoints {
                points: vec!["A solar program.".into()],
            },
            Operation::Questions => JobOutput::Questions {
                questions: vec!["What was launched?".into()],
            },
            Operation::Qa => JobOutput::Answer {
                text: "Three hundred jobs.".into(),
                confidence: None,
            },
        };
        Box::pin(async move {
            Ok(ProviderReply {
                output,
                model: "instant".into(),
                usage: None,
            })
        })
    }
}

/// An engine whose only provider is [`InstantProvider`].
fn instant_engine(rt: &tokio::runtime::Runtime, cache_enabled: &str) -> Engine {
    let settings = Settings::from_source(&MapEnv::new(&[
        ("AI_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("CACHE_ENABLED", cache_enabled),
    ]))
    .expect("settings");
    rt.block_on(Engine::start_with(
        settings,
        vec![Arc::new(InstantProvider)],
    ))
    .expect("engine")
}

fn process_request() -> http::Request<Body> {
    let body = serde_json::json!({"text": ARTICLE, "operation": "sentiment"}).to_string();
    let mut request = http::Request::post("/v1/text_processing/process")
        .header(http::header::HOST, "127.0.0.1:8000")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

fn pipeline(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("pipeline_instant_provider");
    let j = job(Operation::Sentiment);
    for (name, cache_enabled) in [("cache_off", "false"), ("cache_hit", "true")] {
        let engine = instant_engine(&rt, cache_enabled);
        assert!(rt.block_on(engine.run_job(&j, None)).is_ok(), "warm-up job");
        g.bench_function(format!("run_job_{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(engine.run_job(&j, None).await.is_ok()) })
        });
        let app = router(
            rt.block_on(AppState::start(engine.clone()))
                .expect("identities start"),
        );
        let response = rt
            .block_on(app.clone().oneshot(process_request()))
            .expect("router");
        let status = response.status();
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap_or_default();
        assert!(
            status.is_success(),
            "router warm-up answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        g.bench_function(format!("http_router_{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                let response = app
                    .clone()
                    .oneshot(process_request())
                    .await
                    .expect("router");
                let body = response.into_body().collect().await.expect("body");
                black_box(body.to_bytes().len())
            })
        });
        rt.block_on(engine.shutdown());
    }
    g.finish();
}

/// The identity hot path, A/B in one run: a static key, a client key and a
/// JWT (a repeated token: cached until `exp`), each resolved as a `/v1`
/// request's credential. Compare with the ~70-80 µs of CPU keel spends per
/// cache-miss request (README "Performance") for the 3 % budget.
fn identity(c: &mut Criterion) {
    use keel::identity::keys::NewKey;
    use keel::identity::{Authenticator, Surface};
    let rt = runtime();
    let secret = "0123456789abcdef0123456789abcdef-bench";
    let settings = Settings::from_source(&MapEnv::new(&[
        ("API_KEY", "bench-static-key"),
        ("INTERNAL_API_KEY", "bench-ops-key"),
        ("JWT_HS256_SECRET", secret),
        ("JWT_ISSUER", "bench"),
        ("JWT_AUDIENCE", "keel"),
    ]))
    .expect("settings");
    let auth = Authenticator::new(settings.authenticator()).expect("authenticator");
    let (_, client_key) = rt
        .block_on(auth.keys.create(
            NewKey {
                name: "bench".into(),
                ..NewKey::default()
            },
            "bench",
        ))
        .expect("key");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "bench", "iss": "bench", "aud": "keel", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("token");
    let mut g = c.benchmark_group("identity_resolve");
    for (name, credential) in [
        ("static_key", "bench-static-key".to_string()),
        ("client_key", client_key),
        ("jwt_cached", jwt),
    ] {
        assert!(auth.resolve(Surface::Public, &credential).is_ok(), "{name}");
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    auth.resolve(Surface::Public, black_box(&credential))
                        .is_ok(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    local_algorithms,
    validation,
    views_vs_mailbox,
    resilience_primitives,
    cache,
    memory_tier_vs_moka,
    config_load,
    pipeline,
    identity
);
criterion_main!(benches);
