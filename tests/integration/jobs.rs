//! Async jobs over HTTP: the memory store's API contract, and two instances
//! sharing one real `redis-server`.

use crate::support::{ARTICLE, TestServer, start};
use keel::testing::redis_server::RedisServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn submit(
    s: &TestServer,
    body: &Value,
    key: &str,
    idem: Option<&str>,
) -> crate::support::Reply {
    let mut r = s.client.post(s.url("/v1/jobs")).bearer_auth(key).json(body);
    if let Some(k) = idem {
        r = r.header("Idempotency-Key", k);
    }
    s.send(r).await
}

#[tokio::test]
async fn memory_store_submit_wait_list_cancel_and_scoping() {
    let s = start(&[("API_KEY", "alpha"), ("ADDITIONAL_API_KEYS", "beta")]).await;
    let body = json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 30},
                      "metadata": {"ticket": 7}});
    let r = submit(&s, &body, "alpha", None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], json!("queued"));
    let id = r.body["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/jobs/{id}").as_str())
    );

    let started = Instant::now();
    let done = s
        .get(&format!("/v1/jobs/{id}?wait=10"), Some("alpha"))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], json!("succeeded"), "{}", done.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(done.body["metadata"], json!({"ticket": 7}));
    assert_eq!(done.body["deliveries"], json!(1));
    // `result` is the /process success body.
    let direct = s
        .send(
            s.client
                .post(s.url("/v1/text_processing/process"))
                .bearer_auth("alpha")
                .json(&json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 30}})),
        )
        .await;
    assert_eq!(done.body["result"]["result"], direct.body["result"]);
    assert_eq!(done.body["result"]["success"], json!(true));

    // Another key sees nothing.
    s.get(&format!("/v1/jobs/{id}"), Some("beta"))
        .await
        .assert_error(404);
    let listed = s.get("/v1/jobs", Some("beta")).await;
    assert_eq!(listed.body["jobs"], json!([]));
    let listed = s
        .get("/v1/jobs?status=succeeded&limit=5", Some("alpha"))
        .await;
    assert_eq!(
        listed.body["jobs"][0]["job_id"],
        json!(id),
        "{}",
        listed.body
    );

    // Finished: cancel is 409. Validation is /process's.
    let r = s
        .send(
            s.client
                .delete(s.url(&format!("/v1/jobs/{id}")))
                .bearer_auth("alpha"),
        )
        .await;
    r.assert_error(409);
    submit(
        &s,
        &json!({"text": "short", "operation": "summarize"}),
        "alpha",
        None,
    )
    .await
    .assert_error(422);
    submit(
        &s,
        &json!({"text": ARTICLE, "operation": "qa"}),
        "alpha",
        None,
    )
    .await
    .assert_error(422);

    // Idempotency: same body -> 200 same id; other body -> 409.
    let a = submit(&s, &body, "alpha", Some("k-1")).await;
    assert_eq!(a.status, 202);
    let b = submit(&s, &body, "alpha", Some("k-1")).await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(a.body["job_id"], b.body["job_id"]);
    let other = json!({"text": ARTICLE, "operation": "sentiment"});
    let c = submit(&s, &other, "alpha", Some("k-1")).await;
    assert_eq!(c.assert_error(409), "IDEMPOTENCY_CONFLICT");

    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["jobs_durable"], json!(false));
    let stats = s.get("/internal/jobs/stats", Some("alpha")).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["store"], json!("memory"));
}

#[tokio::test]
async fn two_instances_on_one_redis_share_the_queue() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let text = format!("{ARTICLE} Item number {i} closes the article.");
        let s = if i % 2 == 0 { &a } else { &b };
        let r = submit(
            s,
            &json!({"text": text, "operation": "summarize"}),
            "alpha",
            None,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.body["job_id"].as_str().unwrap().to_string());
    }
    let mut consumers = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        // Readable from either instance.
        let s = if i % 2 == 0 { &b } else { &a };
        let r = s
            .get(&format!("/v1/jobs/{id}?wait=20"), Some("alpha"))
            .await;
        assert_eq!(r.body["status"], json!("succeeded"), "{}", r.body);
        assert_eq!(r.body["result"]["operation"], json!("summarize"));
    }
    let stats = a.get("/internal/jobs/stats", Some("alpha")).await;
    for c in stats.body["consumers"].as_array().unwrap() {
        consumers.insert(c["name"].as_str().unwrap().to_string());
    }
    assert_eq!(consumers.len(), 2, "{}", stats.body);
    assert_eq!(
        a.get("/v1/health", None).await.body["jobs_durable"],
        json!(true)
    );
    assert_eq!(
        stats.body["by_status"]["succeeded"],
        json!(40),
        "{}",
        stats.body
    );
}
