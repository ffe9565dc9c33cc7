//! Resilience on tokio's paused clock with an in-process scripted provider:
//! retries, Retry-After, breakers, recovery, deadlines, cancellation, the
//! retry budget and presets — deterministic, in virtual time.

use crate::scripted::{Scripted, Step};
use crate::support::ARTICLE;
use keel::config::Settings;
use keel::engine::Engine;
use keel::env::MapEnv;
use keel::job::{Job, JobOptions, Operation};
use keel::providers::ProviderKind;
use keel::resilience::breaker::{BreakerCommand, BreakerState};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) fn job(operation: Operation) -> Job {
    Job {
        operation,
        text: ARTICLE.to_string(),
        question: (operation == Operation::Qa).then(|| "What was launched?".to_string()),
        options: JobOptions::default(),
    }
}

/// An engine whose primary `openai` is `scripted`, with `vars` on top.
pub(crate) async fn engine(scripted: &Arc<Scripted>, vars: &[(&str, &str)]) -> Engine {
    let mut env = MapEnv::new(&[
        ("AI_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("PROVIDER_TIMEOUT_SECONDS", "5"),
        // Count every upstream call: no answer may come from the cache.
        ("CACHE_ENABLED", "false"),
    ]);
    for (k, v) in vars {
        env.set(k, v);
    }
    let settings = Settings::from_source(&env).expect("valid settings");
    Engine::start_with(settings, vec![scripted.clone()])
        .await
        .expect("engine starts")
}

fn breaker_state(engine: &Engine, op: Operation) -> BreakerState {
    engine
        .resilience()
        .breaker(ProviderKind::OpenAi, op)
        .state()
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_and_answered_by_the_primary() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![Step::Fail(500)], Step::Ok);
    let e = engine(&p, &[]).await;
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert_eq!(r.provider, ProviderKind::OpenAi);
    assert!(!r.degraded);
    assert_eq!(r.attempts, 2);
    assert_eq!(p.calls(), 2);
    assert_eq!(e.metrics().resilience.retries.load(Relaxed), 1);
    assert_eq!(e.metrics().resilience.backoffs.load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let p = Scripted::new(
        ProviderKind::OpenAi,
        vec![Step::RateLimited(Duration::from_secs(2))],
        Step::Ok,
    );
    let e = engine(&p, &[]).await;
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert!(!r.degraded);
    let times = p.call_times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let waited = times[1] - times[0];
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
    assert!(waited < Duration::from_millis(2100), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(400));
    let e = engine(&p, &[("AI_FALLBACK_PROVIDERS", "none")]).await;
    let err = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    assert_eq!(p.calls(), 1);
    assert_eq!(err.class(), keel::providers::ErrorClass::Permanent);
    // A bad request says nothing about the provider's health.
    let snap = e
        .resilience()
        .breaker(ProviderKind::OpenAi, Operation::Summarize)
        .snapshot();
    assert_eq!(snap.counters.failures, 0);
}

#[tokio::test(start_paused = true)]
async fn upstream_down_opens_the_breaker_then_recovers() {
    // simple preset, balanced: 3 attempts per request, breaker opens after 5
    // consecutive failures, recovery 60 s, one half-open probe.
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(503));
    let e = engine(&p, &[]).await;
    let op = Operation::Sentiment;

    let r = e.run_job(&job(op), None).await.unwrap();
    assert!(r.degraded && r.provider == ProviderKind::Local);
    assert_eq!(p.calls(), 3);
    let r = e.run_job(&job(op), None).await.unwrap();
    assert!(r.degraded);
    assert_eq!(p.calls(), 5, "the breaker opened after exactly 5 failures");
    assert_eq!(breaker_state(&e, op), BreakerState::Open);

    // While open: no upstream call, a degraded answer at once.
    let started = Instant::now();
    for _ in 0..10 {
        let r = e.run_job(&job(op), None).await.unwrap();
        assert!(r.degraded);
        assert!(r.degraded_reason.unwrap().contains("circuit breaker open"));
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "fail-fast costs no time");
    assert_eq!(p.calls(), 5);
    // Other operations have their own breaker.
    assert_eq!(
        breaker_state(&e, Operation::Summarize),
        BreakerState::Closed
    );

    // After the recovery timeout exactly one probe goes out; it fails.
    tokio::time::advance(Duration::from_secs(60)).await;
    let r = e.run_job(&job(op), None).await.unwrap();
    assert!(r.degraded);
    assert_eq!(p.calls(), 6, "one probe");
    assert_eq!(breaker_state(&e, op), BreakerState::Open);

    // Upstream back: the next probe closes the breaker.
    p.set_default(Step::Ok);
    tokio::time::advance(Duration::from_secs(60)).await;
    let r = e.run_job(&job(op), None).await.unwrap();
    assert!(!r.degraded);
    assert_eq!(breaker_state(&e, op), BreakerState::Closed);
    let r = e.run_job(&job(op), None).await.unwrap();
    assert!(!r.degraded);
    assert_eq!(p.calls(), 8);

    // Without a fallback, an open breaker is a 503-class error whose
    // retry_after is the breaker's recovery.
    let snap = e.resilience().breaker(ProviderKind::OpenAi, op).snapshot();
    assert_eq!(snap.counters.opens, 2);
}

#[tokio::test(start_paused = true)]
async fn when_everything_fails_retry_after_is_the_breaker_recovery() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(500));
    let e = engine(
        &p,
        &[
            ("AI_FALLBACK_PROVIDERS", "none"),
            ("RESILIENCE_PRESET", "development"),
        ],
    )
    .await;
    // development, summarize = aggressive: 2 attempts, threshold 3, recovery 30 s.
    let _ = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    let err = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    assert_eq!(p.calls(), 3, "2 + 1: the third failure opened the breaker");
    let after = err.retry_after.expect("retry_after");
    assert!(
        after > Duration::from_secs(25) && after <= Duration::from_secs(30),
        "{after:?}"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    let err = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    assert_eq!(p.calls(), 3);
    assert_eq!(err.retry_after, Some(Duration::from_secs(20)));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_upstream_times_out_and_falls_back_within_the_deadline() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Hang);
    let e = engine(&p, &[]).await;
    // balanced: deadline 30 s, per-attempt timeout 5 s.
    let started = Instant::now();
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    let took = started.elapsed();
    assert!(r.degraded && r.provider == ProviderKind::Local);
    assert_eq!(p.calls(), 3);
    assert!(took <= Duration::from_secs(30), "{took:?}");

    // A client deadline shortens everything: one attempt cut at 3 s, then local.
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Hang);
    let e = engine(&p, &[]).await;
    let started = Instant::now();
    let r = e
        .run_job(&job(Operation::Summarize), Some(Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(r.degraded);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(p.calls(), 1);

    // Without a fallback the deadline ends the request: a timeout error.
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Hang);
    let e = engine(&p, &[("AI_FALLBACK_PROVIDERS", "none")]).await;
    let started = Instant::now();
    let err = e
        .run_job(&job(Operation::Summarize), Some(Duration::from_secs(7)))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(
        started.elapsed() <= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_permit() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(500));
    let e = engine(&p, &[("AI_FALLBACK_PROVIDERS", "none")]).await;
    let op = Operation::Questions;
    e.breaker_command(
        "openai:questions",
        BreakerCommand::ForceClosed,
        "test",
        true,
    )
    .await;
    for _ in 0..2 {
        let _ = e.run_job(&job(op), None).await;
    }
    assert_eq!(breaker_state(&e, op), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(60)).await;

    // The probe hangs and the client goes away.
    p.set_default(Step::Hang);
    let engine2 = e.clone();
    let task = tokio::spawn(async move { engine2.run_job(&job(op), None).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.calls(), 6);
    let breaker = e.resilience().breaker(ProviderKind::OpenAi, op);
    assert_eq!(breaker.snapshot().probes_in_flight, 1);
    task.abort();
    let _ = task.await;
    assert_eq!(breaker.snapshot().probes_in_flight, 0, "permit released");
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "not wedged, not counted"
    );

    p.set_default(Step::Ok);
    let r = e.run_job(&job(op), None).await.unwrap();
    assert_eq!(r.provider, ProviderKind::OpenAi);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_prevents_a_retry_storm() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(500));
    // critical would allow 7 attempts per request; disable the breaker so
    // only the budget limits retries.
    let e = engine(
        &p,
        &[
            ("AI_FALLBACK_PROVIDERS", "none"),
            ("RESILIENCE_PRESET", "production"),
        ],
    )
    .await;
    e.breaker_command("openai:qa", BreakerCommand::Disable, "test", true)
        .await;
    let started = Instant::now();
    let jobs = (0..200).map(|_| {
        let e = e.clone();
        tokio::spawn(async move { e.run_job(&job(Operation::Qa), None).await })
    });
    for j in futures::future::join_all(jobs).await {
        assert!(j.unwrap().is_err());
    }
    let retries = e.metrics().resilience.retries.load(Relaxed);
    let refused = e.metrics().resilience.budget_refusals.load(Relaxed);
    // Without a budget: 200 × 6 = 1200 retries. With it: 20 % of the 200
    // requests, plus the floor of 5 retries per second (10 s of reserve,
    // renewed as virtual time passes during the backoffs).
    let secs = started.elapsed().as_secs() + 1;
    let bound = 40 + 5 * (10 + secs);
    assert!(
        retries <= bound,
        "retries {retries} > bound {bound} after {secs}s"
    );
    assert!(retries < 300, "far from a retry storm: {retries}");
    assert!(refused > 0);
    assert_eq!(u64::from(p.calls()), 200 + retries);
}

#[tokio::test(start_paused = true)]
async fn presets_decide_attempts_and_thresholds() {
    // (preset, operation, attempts per failing request, breaker threshold)
    let cases = [
        ("simple", Operation::Qa, 3, 5),
        ("development", Operation::Sentiment, 2, 3),
        ("development", Operation::Qa, 3, 5),
        ("production", Operation::Qa, 7, 10),
        ("production", Operation::Sentiment, 2, 3),
        ("production", Operation::Summarize, 5, 8),
        ("production", Operation::KeyPoints, 3, 5),
    ];
    for (preset, op, attempts, threshold) in cases {
        let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(500));
        let e = engine(&p, &[("RESILIENCE_PRESET", preset)]).await;
        let r = e.run_job(&job(op), None).await.unwrap();
        assert!(r.degraded);
        assert_eq!(p.calls(), attempts, "{preset} {op}: attempts");
        let snap = e.resilience().breaker(ProviderKind::OpenAi, op).snapshot();
        assert_eq!(
            snap.failure_threshold, threshold,
            "{preset} {op}: threshold"
        );
        // Keep failing until the breaker opens: it must open at exactly `threshold`.
        while breaker_state(&e, op) == BreakerState::Closed {
            let _ = e.run_job(&job(op), None).await;
        }
        assert_eq!(p.calls(), threshold, "{preset} {op}: opened after");
    }
}

#[tokio::test(start_paused = true)]
async fn custom_config_and_runtime_switches_change_what_the_upstream_sees() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(500));
    let e = engine(
        &p,
        &[
            ("RESILIENCE_PRESET", "production"),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"retry_attempts": 4, "circuit_breaker_threshold": 12}"#,
            ),
        ],
    )
    .await;
    let _ = e.run_job(&job(Operation::Qa), None).await;
    assert_eq!(
        p.calls(),
        4,
        "custom retry_attempts applies even to overridden operations"
    );

    // Switch to development at runtime: qa becomes balanced (3 attempts).
    let dev = keel::resilience::config::resolve("development", None, &MapEnv::default()).unwrap();
    assert!(e.reconfigure(dev).await);
    // The breaker kept its 4 consecutive failures; start a clean episode.
    e.breaker_command("openai:qa", BreakerCommand::Reset, "test", true)
        .await
        .unwrap();
    let _ = e.run_job(&job(Operation::Qa), None).await;
    assert_eq!(p.calls(), 4 + 3);
    let snap = e
        .resilience()
        .breaker(ProviderKind::OpenAi, Operation::Qa)
        .snapshot();
    assert_eq!(snap.failure_threshold, 5, "breakers take the new threshold");
}
