//! Game days over HTTP: `/internal/chaos` experiments against a real keel
//! and the fake upstream; the fault is injected inside keel, so the
//! upstream sees no call while the experiment hits every one.

use crate::support::{ARTICLE, start};
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;

const FAST: &str = r#"{"exponential_multiplier": 0.1, "exponential_min": 0.5, "exponential_max": 5.0, "jitter_enabled": false, "circuit_breaker_threshold": 10, "retry_attempts": 2}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_is_refused_unless_enabled() {
    let s = start(&[]).await;
    let r = s
        .post(
            "/internal/chaos",
            &json!({"provider": "local", "fault": {"hang": {}}, "probability": 1.0, "duration_seconds": 60}),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["error_code"], json!("CHAOS_DISABLED"));
    let list = s.get("/internal/chaos", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["enabled"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_experiment_falls_back_counts_and_aborts() {
    let upstream = crate::support::fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("RESILIENCE_CUSTOM_CONFIG", FAST),
        ("CHAOS_ENABLED", "true"),
    ])
    .await;
    let created = s
        .post(
            "/internal/chaos",
            &json!({"provider": "openai", "operation": "sentiment",
                    "fault": {"error": {"status": 503}}, "probability": 1.0,
                    "duration_seconds": 300, "note": "test"}),
            None,
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(created.body["created_by"].is_string());
    assert!(created.body["ends_at"].is_string());
    assert_eq!(created.body["scope"], json!("instance"));

    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["chaos_active"], json!(true));

    let before = upstream.stats().openai_requests;
    let body = json!({"text": ARTICLE, "operation": "sentiment"});
    let r = s.process(body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["metadata"]["degraded"], json!(true));
    assert_eq!(r.body["metadata"]["provider"], json!("local"));
    // Two injected attempts on openai, then local.
    assert_eq!(r.body["metadata"]["attempts"], json!(3));
    assert_eq!(
        upstream.stats().openai_requests,
        before,
        "injected inside keel"
    );
    // A degraded answer is not cached: the same request runs again.
    let again = s.process(body.clone()).await;
    assert_eq!(again.body["cache_hit"], json!(false));
    // Another operation is not hit.
    let other = s
        .process(json!({"text": ARTICLE, "operation": "summarize"}))
        .await;
    assert_eq!(other.body["metadata"]["provider"], json!("openai"));

    let metrics = s
        .client
        .get(s.url("/internal/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"keel_chaos_injected_total{provider="openai",fault="error"} 4"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("chaos"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let aborted = s
        .send(s.client.delete(s.url(&format!("/internal/chaos/{id}"))))
        .await;
    assert_eq!(aborted.status, 200, "{:?}", aborted.body);
    assert_eq!(aborted.body["status"], json!("aborted"));
    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["chaos_active"], json!(false));
    let after = s.process(body).await;
    assert_eq!(after.body["metadata"]["provider"], json!("openai"));
    let audit = s.get("/internal/audit", None).await;
    let actions: Vec<&str> = audit.body["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(actions.contains(&"chaos.started"), "{:?}", audit.body);
    assert!(actions.contains(&"chaos.aborted"));
    let list = s.get("/internal/chaos", None).await;
    assert_eq!(list.body["recent"][0]["id"], json!(id));
    let missing = s
        .send(s.client.delete(s.url(&format!("/internal/chaos/{id}"))))
        .await;
    assert_eq!(missing.status, 404);
}

/// With Redis, an experiment started on one instance applies to every
/// instance (same id, `scope: cluster`), and an abort on any instance ends
/// it everywhere — each within a second (two real keel processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_an_experiment_applies_to_every_instance() {
    use crate::support::KeelProcess;
    use keel_testkit::redis_server::RedisServer;
    use reqwest::Method;
    use std::time::{Duration, Instant};
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "2000"),
        ("CHAOS_ENABLED", "true"),
        ("API_KEY", "alpha"),
        ("INTERNAL_API_KEY", "ops-key"),
        ("CACHE_ENABLED", "false"),
        ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 1}"#),
    ];
    let (a, b) = tokio::join!(KeelProcess::start(&vars), KeelProcess::start(&vars));
    let sentiment = json!({"operation": "sentiment", "text": ARTICLE});
    let active_ids = |p: &KeelProcess| {
        let p = p.base.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("{p}/internal/chaos"))
                .bearer_auth("ops-key")
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["scope"], json!("cluster"), "{body}");
            body["experiments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };

    let (status, started) = a
        .send(
            Method::POST,
            "/internal/chaos",
            "ops-key",
            Some(
                &json!({"provider": "local", "fault": {"error": {"status": 503}},
                         "probability": 1.0, "duration_seconds": 120, "note": "cluster"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["scope"], json!("cluster"));
    let id = started["id"].as_str().unwrap().to_string();

    let t0 = Instant::now();
    while !active_ids(&b).await.contains(&id) {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "not adopted by b within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let adopted = t0.elapsed();
    let (status, body) = b
        .send(
            Method::POST,
            "/v1/text_processing/process",
            "alpha",
            Some(&sentiment),
        )
        .await;
    assert_eq!(status, 503, "b injects the fault: {body}");

    let (status, body) = b
        .send(
            Method::DELETE,
            &format!("/internal/chaos/{id}"),
            "ops-key",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let t1 = Instant::now();
    while active_ids(&a).await.contains(&id) {
        assert!(
            t1.elapsed() < Duration::from_secs(1),
            "a still runs it after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let aborted = t1.elapsed();
    let (status, body) = a
        .send(
            Method::POST,
            "/v1/text_processing/process",
            "alpha",
            Some(&sentiment),
        )
        .await;
    assert_eq!(status, 200, "a no longer injects: {body}");
    let (_, listed) = a
        .send(Method::GET, "/internal/chaos", "ops-key", None)
        .await;
    let recent = &listed["recent"][0];
    assert_eq!(recent["id"], json!(id));
    assert_eq!(recent["status"], json!("aborted"));
    eprintln!("adopted by b after {adopted:?}, abort reached a after {aborted:?}");
}
