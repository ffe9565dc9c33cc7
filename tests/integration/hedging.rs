//! Hedged requests: a call still unanswered after `hedge_delay_ms` is joined
//! by another, the first answer wins and the loser is dropped without being
//! counted as a failure. Paused-clock tests with the scripted provider for
//! the exact timings, and one over real sockets against the fake upstream.

use crate::resilience::{engine, job};
use crate::scripted::{Scripted, Step};
use crate::support::{fake, start};
use keel::job::Operation;
use keel::providers::ProviderKind;
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

const HEDGED: &str = r#"{"hedge_delay_ms": 200}"#;

#[tokio::test(start_paused = true)]
async fn a_hung_call_is_hedged_and_the_hedge_answers_after_the_delay() {
    // The first call hangs (until the 5 s provider timeout); the hedge
    // answers after 50 ms.
    let p = Scripted::new(
        ProviderKind::OpenAi,
        vec![Step::Hang],
        Step::OkAfter(Duration::from_millis(50)),
    );
    let e = engine(&p, &[("RESILIENCE_CUSTOM_CONFIG", HEDGED)]).await;
    let started = Instant::now();
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(250),
        "hedge delay + upstream latency, not the attempt timeout"
    );
    assert_eq!(r.provider, ProviderKind::OpenAi);
    assert!(!r.degraded, "a same-provider hedge is not degraded");
    assert_eq!(r.attempts, 2, "the hedge counts as an attempt");
    assert_eq!(p.calls(), 2);
    let m = &e.metrics().resilience;
    assert_eq!(m.hedges_started.load(Relaxed), 1);
    assert_eq!(m.hedges_won.load(Relaxed), 1);
    assert_eq!(m.retries.load(Relaxed), 0);
    // The dropped loser released its slot and is no failure.
    let guards = e.resilience().guards(ProviderKind::OpenAi).unwrap();
    assert_eq!(guards.bulkhead.in_use(), 0, "the loser's slot is released");
    let snap = e
        .resilience()
        .breaker(ProviderKind::OpenAi, Operation::Summarize)
        .snapshot();
    assert_eq!(
        snap.counters.failures, 0,
        "the cancelled loser is no failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_starts_no_hedge_and_hedging_is_off_by_default() {
    let p = Scripted::new(
        ProviderKind::OpenAi,
        vec![],
        Step::OkAfter(Duration::from_millis(150)),
    );
    let e = engine(&p, &[("RESILIENCE_CUSTOM_CONFIG", HEDGED)]).await;
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert_eq!((r.attempts, p.calls()), (1, 1));
    assert_eq!(e.metrics().resilience.hedges_started.load(Relaxed), 0);

    // No hedge_delay_ms: a hanging call waits for its timeout (5 s here).
    let p = Scripted::new(ProviderKind::OpenAi, vec![Step::Hang], Step::Ok);
    let e = engine(&p, &[("AI_FALLBACK_PROVIDERS", "none")]).await;
    let started = Instant::now();
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(r.attempts, 2, "a timeout then a retry");
    assert_eq!(e.metrics().resilience.hedges_started.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn hedges_stop_at_max_hedged_attempts_and_the_first_answer_wins() {
    // Three calls in flight at most: 0 ms, 200 ms, 400 ms. The second call
    // answers at 200 + 300 = 500 ms, before the third (400 + 300 = 700 ms).
    let p = Scripted::new(
        ProviderKind::OpenAi,
        vec![Step::Hang],
        Step::OkAfter(Duration::from_millis(300)),
    );
    let e = engine(
        &p,
        &[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"hedge_delay_ms": 200, "max_hedged_attempts": 3}"#,
        )],
    )
    .await;
    let started = Instant::now();
    let r = e.run_job(&job(Operation::Sentiment), None).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!((r.attempts, p.calls()), (3, 3));
    assert_eq!(e.metrics().resilience.hedges_started.load(Relaxed), 2);
    assert_eq!(e.metrics().resilience.hedges_won.load(Relaxed), 1);
    assert_eq!(
        e.resilience()
            .guards(ProviderKind::OpenAi)
            .unwrap()
            .bulkhead
            .in_use(),
        0,
        "both losers released their slots"
    );
}

#[tokio::test(start_paused = true)]
async fn with_the_retry_budget_exhausted_no_hedge_starts() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![Step::Hang], Step::Ok);
    let e = engine(
        &p,
        &[
            ("RESILIENCE_CUSTOM_CONFIG", HEDGED),
            ("AI_FALLBACK_PROVIDERS", "none"),
        ],
    )
    .await;
    let budget = &e.resilience().guards(ProviderKind::OpenAi).unwrap().budget;
    // The paused clock earns no new credit: spend the reserve.
    let mut spent = 0;
    while budget.withdraw() {
        spent += 1;
        assert!(spent < 10_000, "the budget never ran out");
    }
    let started = Instant::now();
    let err = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    assert_eq!(p.calls(), 1, "neither a hedge nor a retry was paid for");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "waited for the timeout"
    );
    assert!(err.reasons[0].contains("retry budget exhausted"), "{err}");
    let m = &e.metrics().resilience;
    assert_eq!(m.hedges_started.load(Relaxed), 0);
    assert!(
        m.budget_refusals.load(Relaxed) >= 2,
        "the hedge and the retry were refused"
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_triggers_no_hedge_and_no_retry() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Fail(400));
    let e = engine(
        &p,
        &[
            ("RESILIENCE_CUSTOM_CONFIG", HEDGED),
            ("AI_FALLBACK_PROVIDERS", "none"),
        ],
    )
    .await;
    let err = e
        .run_job(&job(Operation::Summarize), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), keel::providers::ErrorClass::Permanent);
    assert_eq!(p.calls(), 1);
    assert_eq!(e.metrics().resilience.hedges_started.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn hedge_to_next_asks_the_next_provider_and_its_answer_is_degraded() {
    // openai hangs; the chain's next provider is the built-in local one.
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Hang);
    let e = engine(
        &p,
        &[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"hedge_delay_ms": 300, "hedge_to": "next"}"#,
        )],
    )
    .await;
    let started = Instant::now();
    let r = e.run_job(&job(Operation::Summarize), None).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "answered by the hedge after {:?}",
        started.elapsed()
    );
    assert_eq!(r.provider, ProviderKind::Local);
    assert!(r.degraded);
    let reason = r.degraded_reason.unwrap();
    assert!(reason.contains("hedge to local"), "{reason}");
    assert_eq!(p.calls(), 1, "the hedge went to local, not to openai");
    assert_eq!(e.metrics().resilience.hedges_won.load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn hedging_fields_are_validated_and_shown_in_the_policy() {
    let p = Scripted::new(ProviderKind::OpenAi, vec![], Step::Ok);
    let e = engine(
        &p,
        &[(
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"hedge_delay_ms": 150, "max_hedged_attempts": 3, "hedge_to": "next"}"#,
        )],
    )
    .await;
    let config = e.resilience().config();
    let policy = config.policy(Operation::Qa);
    assert_eq!(policy.hedge_delay, Duration::from_millis(150));
    assert_eq!(policy.max_hedged_attempts, 3);
    let shown = serde_json::to_value(policy).unwrap();
    assert_eq!(shown["hedge_delay_ms"], json!(150));
    assert_eq!(shown["hedge_to"], json!("next"));

    for (bad, says) in [
        (r#"{"hedge_delay_ms": 60001}"#, "hedge_delay_ms"),
        (r#"{"max_hedged_attempts": 4}"#, "max_hedged_attempts"),
        (r#"{"hedge_to": "random"}"#, "same | next"),
    ] {
        let err = keel::resilience::config::CustomConfig::parse(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

/// Over real sockets: an upstream that hangs on a fixed share of calls (a
/// seeded sequence) costs every unlucky request the whole attempt timeout
/// without hedging, and only about the hedge delay with it.
#[tokio::test]
async fn over_http_hedging_cuts_the_tail_of_a_sometimes_hanging_upstream() {
    async fn slowest(hedge: Option<&str>) -> (Duration, u64, u64) {
        let upstream = fake(FakeLlmConfig {
            latency_ms: 20,
            hang_rate: 0.25,
            seed: 7,
            ..Default::default()
        })
        .await;
        let base = upstream.openai_base_url();
        let mut vars = vec![
            ("AI_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("AI_FALLBACK_PROVIDERS", "none"),
            ("PROVIDER_TIMEOUT_SECONDS", "1"),
            ("CACHE_ENABLED", "false"),
        ];
        // Short, fixed backoff so the unhedged run stays quick.
        let config = format!(
            r#"{{"exponential_min": 0.5, "jitter_enabled": false{}}}"#,
            hedge.unwrap_or("")
        );
        vars.push(("RESILIENCE_CUSTOM_CONFIG", config.as_str()));
        let s = start(&vars).await;
        let mut slowest = Duration::ZERO;
        for i in 0..12 {
            let started = std::time::Instant::now();
            let r = s
                .process(json!({"operation": "sentiment", "text": format!("Request {i} is fine.")}))
                .await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let stats = upstream.stats();
        (slowest, stats.hangs, stats.ok)
    }
    let (unhedged, hangs, _) = slowest(None).await;
    assert!(hangs > 0, "the seeded sequence hung some calls");
    assert!(
        unhedged >= Duration::from_millis(1000),
        "without hedging a hung call costs the 1 s timeout: {unhedged:?}"
    );
    let (hedged, hangs, ok) =
        slowest(Some(r#", "hedge_delay_ms": 100, "max_hedged_attempts": 3"#)).await;
    assert!(hangs > 0 && ok >= 12, "hangs {hangs}, ok {ok}");
    assert!(
        hedged < Duration::from_millis(700),
        "with a 100 ms hedge the slowest answer took {hedged:?}"
    );
}
