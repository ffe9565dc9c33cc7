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

/// Submits `n` distinct summarize jobs to `s` and returns their ids.
async fn submit_many(s: &TestServer, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let text = format!("{ARTICLE} The {tag} note number {i} ends it.");
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
    ids
}

/// `POST /internal/jobs/{pause|resume}`, retried while the store comes back.
async fn set_consuming(s: &TestServer, on: bool) {
    let path = if on {
        "/internal/jobs/resume"
    } else {
        "/internal/jobs/pause"
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.post(path, &json!({}), Some("alpha")).await;
        if r.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {} {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for every job to be final on `s`; returns the bodies.
async fn await_all(s: &TestServer, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = s
                .get(&format!("/v1/jobs/{id}?wait=10"), Some("alpha"))
                .await;
            let status = r.body["status"].as_str().unwrap_or("").to_string();
            if r.status == 200 && status != "queued" && status != "running" {
                out.push(r.body);
                break;
            }
            if Instant::now() >= deadline {
                let stats = s.get("/internal/jobs/stats", Some("alpha")).await;
                panic!("{id} never finished: {}; stats {}", r.body, stats.body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

/// Restart durability: jobs accepted by an instance that stops before
/// running them, with Redis itself restarted (append-only, fsync always) in
/// between, are run by a fresh instance on the same Redis; none is lost.
#[tokio::test]
async fn queued_jobs_survive_an_instance_stop_and_a_redis_restart() {
    let Some(mut redis) = RedisServer::start_durable() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
    ];
    let a = start(&vars).await;
    set_consuming(&a, false).await;
    let ids = submit_many(&a, 8, "durable").await;
    let queued = a.get(&format!("/v1/jobs/{}", ids[0]), Some("alpha")).await;
    assert_eq!(queued.body["status"], json!("queued"), "{}", queued.body);
    a.server.shutdown().await.unwrap();

    redis.restart();

    let b = start(&vars).await;
    set_consuming(&b, true).await;
    let done = await_all(&b, &ids).await;
    for (id, body) in ids.iter().zip(&done) {
        assert_eq!(body["status"], json!("succeeded"), "{id}: {body}");
        assert_eq!(body["result"]["operation"], json!("summarize"));
    }
    let stats = b.get("/internal/jobs/stats", Some("alpha")).await;
    assert_eq!(
        stats.body["by_status"]["succeeded"],
        json!(8),
        "{}",
        stats.body
    );
}

/// A job running on an instance that stops mid-run (graceful stop with a
/// slow upstream) is finished: by the stopping instance within its grace,
/// or by the survivor after hand-back; never lost, one final record.
#[tokio::test]
async fn a_job_running_when_its_instance_stops_is_finished_by_the_other() {
    let Some(redis) = RedisServer::start_durable() else {
        return;
    };
    let fake = crate::support::fake(keel::fake_llm::FakeLlmConfig {
        latency_ms: 1500,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("JOB_VISIBILITY_TIMEOUT_SECONDS", "3"),
        ("SHUTDOWN_GRACE_SECONDS", "1"),
    ];
    let a = start(&vars).await;
    let ids = submit_many(&a, 4, "midrun").await;
    // Wait until A is running at least one of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a.get(&format!("/v1/jobs/{}", ids[0]), Some("alpha")).await;
        if r.body["status"] == json!("running") {
            break;
        }
        assert!(Instant::now() < deadline, "never started: {}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = start(&vars).await;
    a.server.shutdown().await.unwrap();
    let done = await_all(&b, &ids).await;
    for body in &done {
        assert_eq!(body["status"], json!("succeeded"), "{body}");
        assert!(body["deliveries"].as_u64().unwrap() >= 1);
    }
}

/// Redis dies while jobs are queued: a submission answers 503
/// `JOB_STORE_UNAVAILABLE` with `Retry-After` within 1 s (no hang, no 500),
/// a poll answers 503 too; Redis back, the queued jobs complete without a
/// keel restart.
#[tokio::test]
async fn redis_outage_refuses_submissions_and_loses_no_accepted_job() {
    let Some(mut redis) = RedisServer::start_durable() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "300"),
    ];
    let s = start(&vars).await;
    set_consuming(&s, false).await;
    let ids = submit_many(&s, 5, "outage").await;
    redis.kill();
    for i in 0..5 {
        let started = Instant::now();
        let r = submit(
            &s,
            &json!({"text": format!("{ARTICLE} Outage {i}."), "operation": "summarize"}),
            "alpha",
            None,
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.assert_error(503), "JOB_STORE_UNAVAILABLE", "{}", r.body);
        assert!(r.header("retry-after").is_some());
    }
    let started = Instant::now();
    let poll = s.get(&format!("/v1/jobs/{}", ids[0]), Some("alpha")).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(poll.assert_error(503), "JOB_STORE_UNAVAILABLE");

    redis.restart();
    set_consuming(&s, true).await;
    for body in await_all(&s, &ids).await {
        assert_eq!(body["status"], json!("succeeded"), "{body}");
    }
}

/// 20 concurrent submissions with one `Idempotency-Key` across two
/// instances make exactly one job; a different body with the key is 409.
#[tokio::test]
async fn concurrent_idempotent_submissions_make_one_job() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
    ];
    let a = std::sync::Arc::new(start(&vars).await);
    let b = std::sync::Arc::new(start(&vars).await);
    let body = json!({"text": ARTICLE, "operation": "sentiment"});
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = submit(&s, &body, "alpha", Some("same-key")).await;
            (
                r.status,
                r.body["job_id"].as_str().unwrap_or("").to_string(),
            )
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert!(status == 202 || status == 200, "{status}");
        if status == 202 {
            created += 1;
        }
        ids.insert(id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    let other = json!({"text": ARTICLE, "operation": "summarize"});
    let r = submit(&b, &other, "alpha", Some("same-key")).await;
    assert_eq!(r.assert_error(409), "IDEMPOTENCY_CONFLICT");
    let listed = a.get("/v1/jobs?limit=100", Some("alpha")).await;
    assert_eq!(
        listed.body["jobs"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
}

async fn delete(s: &TestServer, id: &str) -> crate::support::Reply {
    s.send(
        s.client
            .delete(s.url(&format!("/v1/jobs/{id}")))
            .bearer_auth("alpha"),
    )
    .await
}

/// Cancel: a queued job is `cancelled` at once; a running one (slow
/// upstream) is `cancelled` within 1 s; a finished one is 409. `?wait=`
/// returns as soon as the job is final, not after N seconds.
#[tokio::test]
async fn cancel_queued_and_running_and_wait_returns_on_the_final_state() {
    let fake = crate::support::fake(keel::fake_llm::FakeLlmConfig {
        latency_ms: 3000,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let s = start(&[
        ("API_KEY", "alpha"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("JOB_WORKERS", "1"),
    ])
    .await;
    let ids = submit_many(&s, 2, "cancel").await;
    // The first runs (one worker), the second waits.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get(&format!("/v1/jobs/{}", ids[0]), Some("alpha")).await;
        if r.body["status"] == json!("running") {
            break;
        }
        assert!(Instant::now() < deadline, "never ran: {}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = delete(&s, &ids[1]).await;
    assert_eq!(queued.status, 200, "{}", queued.body);
    assert_eq!(queued.body["status"], json!("cancelled"), "{}", queued.body);

    let waiter = {
        let client = s.client.clone();
        let url = s.url(&format!("/v1/jobs/{}?wait=30", ids[0]));
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth("alpha").send().await.unwrap();
            (Instant::now(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let running = delete(&s, &ids[0]).await;
    assert_eq!(running.status, 200, "{}", running.body);
    let (answered, body) = waiter.await.unwrap();
    assert_eq!(body["status"], json!("cancelled"), "{body}");
    assert!(
        answered.duration_since(asked) < Duration::from_secs(1),
        "cancel of a running job took {:?}",
        answered.duration_since(asked)
    );
    assert!(body.get("result").is_none_or(Value::is_null), "{body}");
    let again = delete(&s, &ids[0]).await;
    again.assert_error(409);
}

/// `?wait=` returns within 50 ms of the job finishing (no poll interval).
#[tokio::test]
async fn wait_returns_within_50_ms_of_completion() {
    let fake = crate::support::fake(keel::fake_llm::FakeLlmConfig {
        latency_ms: 700,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let s = start(&[("API_KEY", "alpha"), ("OPENAI_BASE_URL", base.as_str())]).await;
    let ids = submit_many(&s, 1, "wait").await;
    let r = s
        .get(&format!("/v1/jobs/{}?wait=20", ids[0]), Some("alpha"))
        .await;
    let answered = chrono::Utc::now();
    assert_eq!(r.body["status"], json!("succeeded"), "{}", r.body);
    let finished = chrono::DateTime::parse_from_rfc3339(r.body["finished_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let lag = answered - finished;
    assert!(lag < chrono::Duration::milliseconds(50), "{lag:?}");
    // A job not final by N: the answer comes after about N seconds.
    let ids = submit_many(&s, 1, "wait-short").await;
    let started = Instant::now();
    let r = s
        .get(&format!("/v1/jobs/{}?wait=0", ids[0]), Some("alpha"))
        .await;
    assert!(started.elapsed() < Duration::from_millis(300));
    assert!(
        r.body["status"] == json!("queued") || r.body["status"] == json!("running"),
        "{}",
        r.body
    );
    s.get("/v1/jobs/x?wait=61", Some("alpha"))
        .await
        .assert_error(422);
}

/// A job whose `ttl_seconds` runs out while consumption is paused is
/// `expired` once consumption resumes, never run.
#[tokio::test]
async fn a_job_past_its_ttl_expires() {
    let s = start(&[("API_KEY", "alpha")]).await;
    set_consuming(&s, false).await;
    let r = submit(
        &s,
        &json!({"text": ARTICLE, "operation": "summarize", "ttl_seconds": 1}),
        "alpha",
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["job_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    set_consuming(&s, true).await;
    let body = await_all(&s, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(body["status"], json!("expired"), "{body}");
    assert_eq!(body["deliveries"], json!(0), "{body}");
    assert!(body.get("result").is_none_or(Value::is_null));
    submit(
        &s,
        &json!({"text": ARTICLE, "operation": "summarize", "ttl_seconds": 86401}),
        "alpha",
        None,
    )
    .await
    .assert_error(422);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A local HTTP receiver: answers 500 to the first `fail_first` POSTs, then
/// 200; records every (headers, body) it got.
async fn receiver(
    fail_first: usize,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use axum::{Router, routing::post};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.push((headers, body));
                    g.len()
                };
                if n <= fail_first {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

/// Webhooks in staging: a loopback callback is refused (422) without
/// `JOB_WEBHOOK_ALLOW_PRIVATE`; with it, a real receiver that answers 500
/// twice gets the signed final job JSON on the third attempt; the HMAC over
/// "<t>.<body>" verifies with the secret, `t` is now, and the outcome is in
/// the job's `webhook` field.
#[tokio::test]
async fn webhook_is_signed_retried_and_private_targets_are_guarded() {
    use hmac::{KeyInit, Mac};
    let (url, got) = receiver(2).await;
    let guarded = start(&[
        ("API_KEY", "alpha"),
        ("ENVIRONMENT", "staging"),
        ("JOB_WEBHOOK_SECRET", "whsec"),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "summarize", "callback_url": url});
    let r = submit(&guarded, &body, "alpha", None).await;
    r.assert_error(422);
    assert!(r.body.to_string().contains("callback_url"), "{}", r.body);

    let s = start(&[
        ("API_KEY", "alpha"),
        ("ENVIRONMENT", "staging"),
        ("JOB_WEBHOOK_SECRET", "whsec"),
        ("JOB_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("JOB_WEBHOOK_BACKOFF_MS", "50"),
        ("JOB_WEBHOOK_MAX_ATTEMPTS", "5"),
    ])
    .await;
    let r = submit(&s, &body, "alpha", None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v = s.get(&format!("/v1/jobs/{id}"), Some("alpha")).await;
        if v.body["webhook"]["status"] == json!("delivered") {
            break v.body;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never delivered: {}",
            v.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["webhook"]["attempts"], json!(3), "{view}");
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let (headers, raw) = &got[2];
    let sig = headers
        .get("keel-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap();
    let (t, v1) = sig
        .split_once(',')
        .map(|(t, v)| (t.trim_start_matches("t="), v.trim_start_matches("v1=")))
        .unwrap();
    let t: u64 = t.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t) <= 30, "timestamp {t} vs now {now}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec").unwrap();
    mac.update(format!("{t}.{raw}").as_bytes());
    assert_eq!(hex(&mac.finalize().into_bytes()), v1, "signature verifies");
    let posted: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(posted["job_id"], json!(id));
    assert_eq!(posted["status"], json!("succeeded"));
}
