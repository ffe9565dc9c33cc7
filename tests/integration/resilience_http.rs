//! The resilience scenarios end to end over HTTP against the fake upstream,
//! with small real durations.

use crate::support::{ARTICLE, start};
use futures::StreamExt;
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;
use std::time::{Duration, Instant};

/// Fast backoff so real-time tests stay short.
const FAST_RETRIES: &str = r#"{"exponential_multiplier": 0.1, "exponential_min": 0.5, "exponential_max": 5.0, "jitter_enabled": false, "circuit_breaker_threshold": 10}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_upstream_errors_never_reach_the_client() {
    let upstream = crate::support::fake(FakeLlmConfig {
        error_rate: 0.3,
        seed: 7,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("RESILIENCE_CUSTOM_CONFIG", FAST_RETRIES),
    ])
    .await;
    let url = s.url("/v1/text_processing/process");
    let replies: Vec<(u16, serde_json::Value)> = futures::stream::iter(0..100)
        .map(|i| {
            let client = s.client.clone();
            let url = url.clone();
            async move {
                let r = client
                    .post(&url)
                    .json(
                        &json!({"text": format!("{ARTICLE} Item {i}."), "operation": "sentiment"}),
                    )
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json().await.unwrap())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        replies.iter().all(|(status, _)| *status == 200),
        "every client request succeeds"
    );
    let primary = replies
        .iter()
        .filter(|(_, b)| {
            b["metadata"]["degraded"] == json!(false)
                && b["metadata"]["provider"] == json!("openai")
        })
        .count();
    assert!(primary >= 97, "answered by the primary: {primary}/100");
    let stats = upstream.stats();
    assert!(
        stats.requests_total <= 300,
        "at most 3 attempts each: {}",
        stats.requests_total
    );
    assert!(stats.errors > 0, "faults were injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_stops_upstream_traffic_and_answers_fast() {
    let upstream = crate::support::fake(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        (
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"retry_attempts": 1, "circuit_breaker_threshold": 2}"#,
        ),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "summarize"});
    for _ in 0..2 {
        let r = s.process(body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["metadata"]["degraded"], json!(true));
    }
    assert_eq!(upstream.stats().requests_total, 2);
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = s.process(body.clone()).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, 200);
        assert_eq!(r.body["metadata"]["provider"], json!("local"));
        assert!(
            r.body["metadata"]["degraded_reason"]
                .as_str()
                .unwrap()
                .contains("circuit breaker open"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        upstream.stats().requests_total,
        2,
        "no request reached the upstream while open"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "fail-fast: slowest {slowest:?}"
    );

    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["status"], json!("degraded"), "{}", health.body);
    assert_eq!(health.body["resilience_healthy"], json!(false));
    assert_eq!(
        health.body["components"]["circuit_breakers"]["not_closed"][0],
        json!({"name": "openai:summarize", "state": "open"})
    );

    // Without a fallback the client gets 503 with the breaker's Retry-After.
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        (
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"retry_attempts": 1, "circuit_breaker_threshold": 1, "recovery_timeout": 45}"#,
        ),
    ])
    .await;
    let r = s.process(body.clone()).await;
    r.assert_error(503);
    let r = s.process(body.clone()).await;
    assert_eq!(r.assert_error(503), "SERVICE_UNAVAILABLE");
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((44..=45).contains(&after), "Retry-After {after}");
}

#[tokio::test]
async fn request_timeout_header_is_validated() {
    let s = start(&[]).await;
    let r = s
        .send(
            s.client
                .post(s.url("/v1/text_processing/process"))
                .header("request-timeout", "soon")
                .json(&json!({"text": ARTICLE, "operation": "summarize"})),
        )
        .await;
    assert_eq!(r.assert_error(400), "BAD_REQUEST");
    let r = s
        .send(
            s.client
                .post(s.url("/v1/text_processing/process"))
                .header("request-timeout", "2.5")
                .json(&json!({"text": ARTICLE, "operation": "summarize"})),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_bulkhead_fails_over_or_answers_503() {
    let upstream = crate::support::fake(FakeLlmConfig {
        latency_ms: 500,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let vars = |fallback: &'static str| {
        vec![
            ("OPENAI_BASE_URL", base.clone()),
            ("AI_FALLBACK_PROVIDERS", fallback.to_string()),
            ("PROVIDER_MAX_CONCURRENCY", "1".to_string()),
            ("BULKHEAD_MAX_WAIT_MS", "50".to_string()),
        ]
    };
    for (fallback, expect_degraded) in [("none", false), ("local", true)] {
        let owned = vars(fallback);
        let borrowed: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let s = start(&borrowed).await;
        let body = |i: usize| json!({"text": format!("{ARTICLE} Bulkhead {fallback} {i}."), "operation": "sentiment"});
        let (first, second) = tokio::join!(s.process(body(1)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            (s.process(body(2)).await, started.elapsed())
        });
        assert_eq!(first.status, 200);
        let (second, took) = second;
        assert!(
            took < Duration::from_millis(400),
            "bounded wait, no queue: {took:?}"
        );
        if expect_degraded {
            assert_eq!(second.status, 200);
            assert_eq!(second.body["metadata"]["provider"], json!("local"));
            assert!(
                second.body["metadata"]["degraded_reason"]
                    .as_str()
                    .unwrap()
                    .contains("bulkhead full")
            );
        } else {
            assert_eq!(second.assert_error(503), "SERVICE_UNAVAILABLE");
            assert_eq!(second.header("retry-after"), Some("1"));
        }
    }
}

/// A caller that joins an identical request already in progress (single
/// flight) still gets its own `Request-Timeout`: it must not wait out the
/// leader's much longer deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_flight_follower_keeps_its_own_deadline() {
    let upstream = crate::support::fake(FakeLlmConfig {
        latency_ms: 4_000,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 1}"#),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "summarize"});
    let leader = {
        let request = s
            .client
            .post(s.url("/v1/text_processing/process"))
            .json(&body);
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
    };
    // Let the leader reach the upstream first.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        upstream.stats().requests_total,
        1,
        "the leader is in flight"
    );
    let started = std::time::Instant::now();
    let r = s
        .send(
            s.client
                .post(s.url("/v1/text_processing/process"))
                .header("request-timeout", "1")
                .json(&body),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(r.assert_error(504), "GATEWAY_TIMEOUT");
    assert!(
        waited < std::time::Duration::from_millis(2_000),
        "the follower waited {waited:?}"
    );
    // The follower joined the leader's flight: no second upstream call.
    assert_eq!(upstream.stats().requests_total, 1);
    assert_eq!(leader.await.unwrap().unwrap(), 200);
}
