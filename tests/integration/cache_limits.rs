//! Caching and rate limits over HTTP: memory tier, single-flight,
//! invalidation, limits and their headers; with a real `redis-server`: two
//! instances sharing the cache and one global limit, and a Redis outage that
//! no client notices.

use crate::support::{ARTICLE, TestServer, start};
use futures::StreamExt;
use keel_testkit::fake_llm::{FakeLlmConfig, FakeLlmHandle};
use keel_testkit::redis_server::RedisServer;
use serde_json::json;
use std::time::{Duration, Instant};

async fn upstream(latency_ms: u64) -> FakeLlmHandle {
    crate::support::fake(FakeLlmConfig {
        latency_ms,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn repeated_jobs_are_served_from_memory() {
    let fake = upstream(0).await;
    let base = fake.openai_base_url();
    let s = start(&[("OPENAI_BASE_URL", &base)]).await;
    let body = json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 30}});
    let first = s.process(body.clone()).await;
    assert_eq!(first.body["cache_hit"], json!(false));
    let second = s.process(body.clone()).await;
    assert_eq!(second.body["cache_hit"], json!(true), "{}", second.body);
    assert_eq!(second.body["result"], first.body["result"]);
    assert_eq!(second.body["metadata"]["provider"], json!("openai"));
    assert_eq!(fake.stats().requests_total, 1);

    // Irrelevant options and whitespace do not fragment the cache; relevant ones do.
    let same = json!({"text": format!("  {ARTICLE}  "), "operation": "summarize",
                      "options": {"max_length": 30, "max_points": 9}});
    assert_eq!(s.process(same).await.body["cache_hit"], json!(true));
    let other = json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 31}});
    assert_eq!(s.process(other).await.body["cache_hit"], json!(false));
    let qa = |q: &str| json!({"text": ARTICLE, "operation": "qa", "question": q});
    s.process(qa("What was launched?")).await;
    assert_eq!(
        s.process(qa("What was launched?")).await.body["cache_hit"],
        json!(true)
    );
    assert_eq!(
        s.process(qa("Who approved it?")).await.body["cache_hit"],
        json!(false)
    );

    // Invalidation by operation through the operator API.
    let r = s
        .post(
            "/internal/cache/invalidate",
            &json!({"operation": "summarize"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["report"]["memory_removed"].as_u64().unwrap() >= 2);
    assert_eq!(
        s.process(body.clone()).await.body["cache_hit"],
        json!(false)
    );
    assert_eq!(
        s.process(qa("What was launched?")).await.body["cache_hit"],
        json!(true),
        "qa kept"
    );
    s.post(
        "/internal/cache/invalidate",
        &json!({"operation": "translate"}),
        None,
    )
    .await
    .assert_error(422);
    s.post("/internal/cache/invalidate", &json!({}), None)
        .await
        .assert_error(422);
    let r = s.send(s.client.delete(s.url("/internal/cache"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.process(qa("What was launched?")).await.body["cache_hit"],
        json!(false)
    );

    let r = s.get("/internal/cache/metrics", None).await;
    assert!(r.body["hits"].as_u64().unwrap() >= 4, "{}", r.body);
    assert!(r.body["hit_rate"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn degraded_answers_are_never_cached() {
    let fake = crate::support::fake(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 1}"#),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "sentiment"});
    let r = s.process(body.clone()).await;
    assert_eq!(r.body["metadata"]["degraded"], json!(true));
    fake.set_config(FakeLlmConfig::default());
    let r = s.process(body.clone()).await;
    assert_eq!(r.body["cache_hit"], json!(false));
    assert_eq!(r.body["metadata"]["provider"], json!("openai"));
    assert_eq!(s.process(body).await.body["cache_hit"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_identical_jobs_costs_one_upstream_call() {
    let fake = upstream(300).await;
    let base = fake.openai_base_url();
    let s = start(&[("OPENAI_BASE_URL", &base)]).await;
    let body = json!({"text": ARTICLE, "operation": "key_points"});
    let replies = futures::future::join_all((0..50).map(|_| s.process(body.clone()))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(fake.stats().requests_total, 1, "single-flight");
    let first = &replies[0].body["key_points"];
    assert!(replies.iter().all(|r| &r.body["key_points"] == first));
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let s = start(&[
        ("API_KEY", "k1"),
        ("ADDITIONAL_API_KEYS", "k2"),
        ("RATE_LIMIT_PER_MINUTE", "5"),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "sentiment"});
    for i in 0..5 {
        let r = s
            .post("/v1/text_processing/process", &body, Some("k1"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((4 - i).to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    let r = s
        .post("/v1/text_processing/process", &body, Some("k1"))
        .await;
    assert_eq!(r.assert_error(429), "RATE_LIMIT_EXCEEDED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // Another key has its own budget; health is exempt.
    assert_eq!(
        s.post("/v1/text_processing/process", &body, Some("k2"))
            .await
            .status,
        200
    );
    let h = s.get("/v1/health", None).await;
    assert_eq!(h.status, 200);
    assert!(h.header("x-ratelimit-limit").is_none());

    // A batch costs one unit per item.
    let batch = json!({"requests": [body, body, body]});
    let r = s
        .post("/v1/text_processing/batch_process", &batch, Some("k2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    let r = s
        .post("/v1/text_processing/batch_process", &batch, Some("k2"))
        .await;
    r.assert_error(429);

    let r = s.get("/internal/rate-limits", Some("k1")).await;
    assert!(r.body["denied"].as_u64().unwrap() >= 2, "{}", r.body);

    let s = start(&[
        ("RATE_LIMIT_PER_MINUTE", "1"),
        ("RATE_LIMIT_ENABLED", "false"),
    ])
    .await;
    for _ in 0..3 {
        let r = s
            .process(json!({"text": ARTICLE, "operation": "sentiment"}))
            .await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
}

fn redis_vars<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("REDIS_URL", url), ("API_KEY", "shared-key")];
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_cache_and_one_global_limit() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let fake = upstream(0).await;
    let base = fake.openai_base_url();
    // A generous Redis timeout: this test is about sharing, and on a loaded
    // machine one command slower than the default 50 ms would skip a cache
    // write or fall back to local limits (tested on their own below).
    let vars = redis_vars(
        &url,
        &[
            ("OPENAI_BASE_URL", &base),
            ("RATE_LIMIT_PER_MINUTE", "60"),
            ("REDIS_TIMEOUT_MS", "1000"),
        ],
    );
    let a = start(&vars).await;
    let b = start(&vars).await;
    let body = json!({"text": ARTICLE, "operation": "questions", "options": {"num_questions": 3}});
    let ra = a
        .post("/v1/text_processing/process", &body, Some("shared-key"))
        .await;
    assert_eq!(ra.body["cache_hit"], json!(false));
    let rb = b
        .post("/v1/text_processing/process", &body, Some("shared-key"))
        .await;
    assert_eq!(
        rb.body["cache_hit"],
        json!(true),
        "a job answered by A is a hit on B"
    );
    assert_eq!(rb.body["questions"], ra.body["questions"]);
    assert_eq!(fake.stats().requests_total, 1);
    let stats = b.get("/internal/cache/metrics", Some("shared-key")).await;
    assert_eq!(stats.body["redis_hits"], json!(1), "{}", stats.body);

    // 2 requests were counted already; 98 more spread over both instances.
    let servers = [&a, &b];
    let statuses: Vec<u16> = futures::stream::iter(0..98)
        .map(|i| {
            let s: &TestServer = servers[i % 2];
            let body = body.clone();
            async move {
                s.post("/v1/text_processing/process", &body, Some("shared-key"))
                    .await
                    .status
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let allowed = statuses.iter().filter(|&&s| s == 200).count() + 2;
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(allowed, 60, "exactly the global limit: {statuses:?}");
    assert_eq!(limited, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_invisible_to_clients() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let fake = upstream(0).await;
    let base = fake.openai_base_url();
    let vars = redis_vars(
        &url,
        &[("OPENAI_BASE_URL", &base), ("REDIS_COOLOFF_MS", "500")],
    );
    let s = start(&vars).await;
    let s = &s;
    let send = |i: usize| {
        let body =
            json!({"text": format!("{ARTICLE} Load item {}.", i % 20), "operation": "sentiment"});
        async move {
            let started = Instant::now();
            let r = s
                .post("/v1/text_processing/process", &body, Some("shared-key"))
                .await;
            (r.status, started.elapsed())
        }
    };
    for i in 0..20 {
        assert_eq!(send(i).await.0, 200);
    }
    let h = s.get("/v1/health", None).await;
    assert_eq!(h.body["status"], json!("healthy"), "{}", h.body);

    redis.kill();
    let mut slowest = Duration::ZERO;
    let mut statuses = Vec::new();
    let mut times = Vec::new();
    for i in 0..200 {
        let (status, took) = send(i).await;
        statuses.push(status);
        slowest = slowest.max(took);
        times.push(took);
    }
    times.sort();
    eprintln!(
        "redis down: p50 {:?}, p99 {:?}, max {:?} over {} requests",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        slowest,
        times.len()
    );
    assert!(
        statuses.iter().all(|&s| s == 200),
        "no client error during the outage: {statuses:?}"
    );
    // Two Redis users (cache, limiter), each pays at most one 50 ms timeout per cool-off.
    assert!(
        slowest < Duration::from_millis(400),
        "bounded added latency: {slowest:?}"
    );
    let h = s.get("/v1/health", None).await;
    assert_eq!(h.body["status"], json!("degraded"), "{}", h.body);
    assert!(h.body["degraded_reasons"].to_string().contains("redis"));

    redis.restart();
    let mut recovered = false;
    for i in 0..100 {
        assert_eq!(send(1000 + i).await.0, 200);
        let h = s.get("/v1/health", None).await;
        if h.body["status"] == json!("healthy") {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "Redis picked up again without restarting keel");
    // The Redis tier is really in use again: a new answer lands in Redis.
    let body = json!({"text": format!("{ARTICLE} After the outage."), "operation": "sentiment"});
    s.post("/v1/text_processing/process", &body, Some("shared-key"))
        .await;
    let stats = s.get("/internal/cache/metrics", Some("shared-key")).await;
    assert!(
        stats.body["redis"]["keys"].as_u64().is_some_and(|k| k >= 1),
        "{}",
        stats.body
    );
}

#[tokio::test]
async fn keel_starts_against_a_dead_redis() {
    let s = start(&[
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("REDIS_COOLOFF_MS", "60000"),
    ])
    .await;
    let started = Instant::now();
    let r = s
        .process(json!({"text": ARTICLE, "operation": "sentiment"}))
        .await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_millis(500));
    let h = s.get("/v1/health", None).await;
    assert_eq!(h.body["status"], json!("degraded"), "{}", h.body);
    assert_eq!(h.body["cache_healthy"], json!(false));
}
