//! Async jobs over HTTP: the memory store's API contract, and two instances
//! sharing one real `redis-server`.

use crate::support::{ARTICLE, KeelProcess, TestServer, start};
use keel_testkit::redis_server::RedisServer;
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
        let body = json!({"text": text, "operation": "summarize"});
        // A 503 JOB_STORE_UNAVAILABLE is "not accepted, retry" (e.g. one
        // slow fsync of the durable harness Redis on a loaded CI machine):
        // a client retries, so this helper does too, for a bounded time.
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            let r = submit(s, &body, "alpha", None).await;
            if r.status == 503
                && r.body["error_code"] == json!("JOB_STORE_UNAVAILABLE")
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            break r;
        };
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
        ("REDIS_TIMEOUT_MS", "2000"), // durable Redis: a slow fsync is not an outage
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
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
        latency_ms: 1500,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "2000"), // durable Redis: a slow fsync is not an outage
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
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
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
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
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

/// A name no other job's text carries: `Riverton` + letters of `i`.
fn unique_city(i: usize) -> String {
    let mut n = i;
    let mut s = String::from("Riverton");
    loop {
        s.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s
}

/// Stats of one instance (`GET /internal/jobs/stats`).
async fn stats(s: &TestServer) -> Value {
    let r = s.get("/internal/jobs/stats", Some("alpha")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Two instances, 500 jobs submitted alternately (16 at a time): every job
/// succeeds with the answer to its own text (the summary names the job's
/// own city), both instances ran a share, and every job reads the same
/// from either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_jobs_over_two_instances_each_answer_their_own_text() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("JOB_WORKERS", "16"),
        ("JOB_INSTANCE_ID", "share-a"),
    ];
    let a = std::sync::Arc::new(start(&vars).await);
    let mut vars_b = vars;
    vars_b[5] = ("JOB_INSTANCE_ID", "share-b");
    let b = std::sync::Arc::new(start(&vars_b).await);
    const N: usize = 500;
    let started = Instant::now();
    let mut ids: Vec<String> = vec![String::new(); N];
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            for i in (lane..N).step_by(16) {
                let s = if i % 2 == 0 { &a } else { &b };
                let text = ARTICLE.replace("Riverton", &unique_city(i));
                let r = submit(
                    s,
                    &json!({"text": text, "operation": "summarize"}),
                    "alpha",
                    None,
                )
                .await;
                assert_eq!(r.status, 202, "{}", r.body);
                out.push((i, r.body["job_id"].as_str().unwrap().to_string()));
            }
            out
        });
    }
    while let Some(done) = tasks.join_next().await {
        for (i, id) in done.unwrap() {
            ids[i] = id;
        }
    }
    let submitted = started.elapsed();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let (a, b) = (a.clone(), b.clone());
        let ids = ids.clone();
        tasks.spawn(async move {
            for i in (lane..N).step_by(16) {
                let id = &ids[i];
                // Waited for on the instance that did not take it...
                let (other, own) = if i % 2 == 0 { (&b, &a) } else { (&a, &b) };
                let r = other
                    .get(&format!("/v1/jobs/{id}?wait=20"), Some("alpha"))
                    .await;
                assert_eq!(r.body["status"], json!("succeeded"), "{id}: {}", r.body);
                let city = unique_city(i);
                let summary = r.body["result"]["result"].as_str().unwrap_or("");
                assert!(
                    summary.contains(&format!("{city} ")) || summary.contains(&format!("{city}.")),
                    "job {i} answers another text: {summary:?}"
                );
                // ...and read the same from the one that did.
                let mine = own.get(&format!("/v1/jobs/{id}"), Some("alpha")).await;
                assert_eq!(mine.body, r.body);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let (sa, sb) = (stats(&a).await, stats(&b).await);
    let ran_a = sa["run_time"]["count"].as_u64().unwrap();
    let ran_b = sb["run_time"]["count"].as_u64().unwrap();
    eprintln!(
        "500 jobs: submitted in {submitted:?}, all done in {:?}; ran on a: {ran_a}, on b: {ran_b}",
        started.elapsed()
    );
    assert_eq!(ran_a + ran_b, N as u64, "one run per job: {sa} {sb}");
    assert!(
        ran_a >= 50 && ran_b >= 50,
        "both ran a share: {ran_a} / {ran_b}"
    );
    assert_eq!(sa["by_status"]["succeeded"], json!(N), "{sa}");
    let mut names: Vec<String> = sa["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["share-a", "share-b"]);
}

/// SIGKILL one of two keel processes while at least 20 of its jobs are
/// running (upstream latency 2 s): the survivor reclaims them after the
/// visibility timeout and finishes every job; none is lost, each has one
/// final record. Prints how many ran twice (the kill test's numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_the_survivor_finishes_every_job() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
        latency_ms: 2000,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let url = redis.url();
    let vars = |id: &'static str| {
        [
            ("REDIS_URL", url.clone()),
            ("API_KEY", "alpha".to_string()),
            ("REDIS_TIMEOUT_MS", "500".to_string()),
            ("OPENAI_BASE_URL", base.clone()),
            ("JOB_WORKERS", "30".to_string()),
            ("JOB_VISIBILITY_TIMEOUT_SECONDS", "3".to_string()),
            ("JOB_INSTANCE_ID", id.to_string()),
        ]
    };
    let (va, vb) = (vars("kill-a"), vars("kill-b"));
    let va: Vec<(&str, &str)> = va.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let vb: Vec<(&str, &str)> = vb.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = tokio::join!(KeelProcess::start(&va), KeelProcess::start(&vb));
    let mut a = a;

    // More jobs than both can run at once: 60 run, 20 wait.
    const N: usize = 80;
    let mut ids = Vec::new();
    for i in 0..N {
        let s = if i % 2 == 0 { &a } else { &b };
        let text = ARTICLE.replace("Riverton", &unique_city(i));
        let (status, body) = s
            .submit(&json!({"text": text, "operation": "summarize"}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job_id"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let running_at_kill = loop {
        let (_, st) = a.get("/internal/jobs/stats").await;
        let here = st["running_here"].as_u64().unwrap_or(0);
        if here >= 20 {
            break here;
        }
        assert!(Instant::now() < deadline, "a never ran 20 jobs: {st}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();

    let mut lost = 0;
    let mut ran_twice = 0;
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = loop {
            let (status, body) = b.get(&format!("/v1/jobs/{id}?wait=10")).await;
            let st = body["status"].as_str().unwrap_or("");
            if status == 200 && st != "queued" && st != "running" {
                break body;
            }
            if Instant::now() >= deadline {
                break body;
            }
        };
        if body["status"] != json!("succeeded") {
            lost += 1;
            eprintln!("not succeeded: {body}");
        }
        if body["deliveries"].as_u64().unwrap_or(0) > 1 {
            ran_twice += 1;
        }
    }
    let upstream = fake.stats().requests_total;
    eprintln!(
        "SIGKILL: {running_at_kill} running on the killed instance; {N} jobs, {lost} lost, \
         {ran_twice} ran twice (deliveries > 1), {upstream} upstream calls; all final {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(lost, 0);
    assert!(
        ran_twice as u64 >= running_at_kill,
        "every job running at the kill ran again: {ran_twice} < {running_at_kill}"
    );
    let (_, st) = b.get("/internal/jobs/stats").await;
    assert_eq!(
        st["by_status"]["succeeded"],
        json!(N),
        "one final record each: {st}"
    );
}

/// Both instances stop (gracefully) with jobs still queued; Redis stays.
/// Two fresh instances on the same Redis process every queued job.
#[tokio::test]
async fn both_instances_stopped_then_fresh_ones_process_the_queue() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
        latency_ms: 400,
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
        ("JOB_WORKERS", "1"),
        ("SHUTDOWN_GRACE_SECONDS", "2"),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;
    let mut ids = submit_many(&a, 6, "stop-a").await;
    ids.extend(submit_many(&b, 6, "stop-b").await);
    // One worker each and 400 ms per job: at most a few ran before the stop.
    let (ra, rb) = tokio::join!(a.server.shutdown(), b.server.shutdown());
    ra.unwrap();
    rb.unwrap();

    let c = start(&vars).await;
    let d = start(&vars).await;
    let done = await_all(&c, &ids).await;
    for (id, body) in ids.iter().zip(&done) {
        assert_eq!(body["status"], json!("succeeded"), "{id}: {body}");
    }
    let ran_fresh = stats(&c).await["run_time"]["count"].as_u64().unwrap()
        + stats(&d).await["run_time"]["count"].as_u64().unwrap();
    assert!(
        ran_fresh >= 6,
        "the fresh instances ran the queued jobs: {ran_fresh}"
    );
    let st = stats(&d).await;
    assert_eq!(st["by_status"]["succeeded"], json!(12), "{st}");
    assert_eq!(st["queued"], json!(0), "{st}");
}

/// Redis dies while 8 clients keep submitting: every submission answers
/// 202 or 503 `JOB_STORE_UNAVAILABLE` within 1 s; Redis back (durable
/// mode), every accepted job is found and succeeds on the same instance —
/// consumption resumes without a keel restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_submission_load_loses_no_accepted_job() {
    let Some(mut redis) = RedisServer::start_durable() else {
        return;
    };
    let url = redis.url();
    let s = std::sync::Arc::new(
        start(&[
            ("REDIS_URL", url.as_str()),
            ("API_KEY", "alpha"),
            ("REDIS_TIMEOUT_MS", "300"),
            ("RATE_LIMIT_PER_MINUTE", "1000000"),
            ("RATE_LIMIT_PER_HOUR", "1000000"),
            ("RATE_LIMIT_PER_DAY", "1000000"),
            ("JOB_WORKERS", "8"),
        ])
        .await,
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let (s, stop) = (s.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = format!("{ARTICLE} Submitter {lane} sends number {n}.");
                n += 1;
                let started = Instant::now();
                let r = submit(
                    &s,
                    &json!({"text": text, "operation": "sentiment"}),
                    "alpha",
                    None,
                )
                .await;
                let took = started.elapsed();
                let code = r.body["error_code"].as_str().unwrap_or("").to_string();
                let id = r.body["job_id"].as_str().unwrap_or("").to_string();
                seen.push((r.status, code, id, took));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.restart();
    // Submissions go on until the store accepts again, and a little longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = submit(
            &s,
            &json!({"text": format!("{ARTICLE} Probe."), "operation": "sentiment"}),
            "alpha",
            None,
        )
        .await;
        if probe.status == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store never came back: {}",
            probe.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut accepted = Vec::new();
    let (mut refused, mut slowest) = (0, Duration::ZERO);
    while let Some(seen) = tasks.join_next().await {
        for (status, code, id, took) in seen.unwrap() {
            slowest = slowest.max(took);
            assert!(took < Duration::from_secs(1), "a submission took {took:?}");
            match status {
                202 => accepted.push(id),
                503 => {
                    assert_eq!(code, "JOB_STORE_UNAVAILABLE");
                    refused += 1;
                }
                other => panic!("submission answered {other} {code}"),
            }
        }
    }
    eprintln!(
        "redis kill under load: {} accepted, {refused} refused, slowest answer {slowest:?}",
        accepted.len()
    );
    assert!(refused > 0, "the outage was seen");
    assert!(accepted.len() > 8, "submissions were accepted around it");
    for body in await_all(&s, &accepted).await {
        assert_eq!(body["status"], json!("succeeded"), "{body}");
    }
}

/// Poison: every delivery hangs past the visibility timeout (the upstream
/// never answers), so the job is reclaimed until `JOB_MAX_DELIVERIES` runs
/// out: `failed` with `JOB_POISONED`, listed by `/internal/jobs/dead`. The
/// upstream fixed, `POST /internal/jobs/{id}/retry` runs it to `succeeded`
/// and takes it out of the dead letters.
#[tokio::test]
async fn poisoned_job_is_dead_lettered_and_an_operator_retry_runs_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let url = redis.url();
    let s = start(&[
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("JOB_MAX_DELIVERIES", "2"),
        ("JOB_VISIBILITY_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    let id = submit_many(&s, 1, "poison").await.remove(0);
    // The instance reclaims the overdue delivery from itself: the second
    // run goes on (its upstream call stays open) while the first lets go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = s.get(&format!("/v1/jobs/{id}"), Some("alpha")).await.body;
        if v["deliveries"] == json!(2) && v["status"] == json!("running") {
            break;
        }
        assert!(Instant::now() < deadline, "never redelivered: {v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = stats(&s).await;
    assert_eq!(st["running_here"], json!(1), "{st}");
    assert_eq!(fake.stats().in_flight, 1, "the second run is still calling");
    let body = await_all(&s, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(body["status"], json!("failed"), "{body}");
    assert_eq!(body["error"]["error_code"], json!("JOB_POISONED"), "{body}");
    assert_eq!(body["deliveries"], json!(2), "{body}");
    assert!(body.get("result").is_none_or(Value::is_null));
    assert_eq!(fake.stats().hangs, 2, "one upstream call per delivery");
    let deadline = Instant::now() + Duration::from_secs(2);
    let st = loop {
        let st = stats(&s).await;
        if st["running_here"] == json!(0) && fake.stats().in_flight == 0 {
            break st;
        }
        assert!(Instant::now() < deadline, "the hung workers let go: {st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st["dead_letter_size"], json!(1), "{st}");
    let dead = s.get("/internal/jobs/dead", Some("alpha")).await;
    assert_eq!(dead.status, 200, "{}", dead.body);
    let listed = dead.body.to_string();
    assert!(listed.contains(&id), "{listed}");

    fake.set_config(keel_testkit::fake_llm::FakeLlmConfig::default());
    let r = s
        .post(
            &format!("/internal/jobs/{id}/retry"),
            &json!({}),
            Some("alpha"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = await_all(&s, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(body["status"], json!("succeeded"), "{body}");
    assert_eq!(body["deliveries"], json!(3), "{body}");
    assert_eq!(
        body["result"]["metadata"]["provider"],
        json!("openai"),
        "{body}"
    );
    assert!(body.get("error").is_none_or(Value::is_null), "{body}");
    assert_eq!(stats(&s).await["dead_letter_size"], json!(0));
    let again = s
        .post(
            &format!("/internal/jobs/{id}/retry"),
            &json!({}),
            Some("alpha"),
        )
        .await;
    again.assert_error(409);
}

/// Every provider refuses (the only one's breaker opened on a 500): the job
/// is not failed but waits, `queued`, with a not-before at the breaker's
/// recovery; the upstream healthy again, the half-open probe is the job's
/// next run and it succeeds. Wall-clock: not-before times are wall-clock
/// (they live in Redis for every instance), so a paused tokio clock cannot
/// move them; the breaker's shortest recovery is 10 s.
#[tokio::test]
async fn breaker_open_job_waits_for_recovery_then_succeeds() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fake = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let url = redis.url();
    let s = start(&[
        ("REDIS_URL", url.as_str()),
        ("API_KEY", "alpha"),
        ("REDIS_TIMEOUT_MS", "500"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("AI_FALLBACK_PROVIDERS", "none"),
        (
            "RESILIENCE_CUSTOM_CONFIG",
            r#"{"retry_attempts": 1, "circuit_breaker_threshold": 1, "recovery_timeout": 10}"#,
        ),
    ])
    .await;
    let submitted_ms = chrono::Utc::now().timestamp_millis();
    let id = submit_many(&s, 1, "breaker").await.remove(0);
    // The first run fails once and opens the breaker; the job goes back.
    let deadline = Instant::now() + Duration::from_secs(5);
    let waiting = loop {
        let st = stats(&s).await;
        if st["delayed"] == json!(1) {
            break s.get(&format!("/v1/jobs/{id}"), Some("alpha")).await.body;
        }
        assert!(Instant::now() < deadline, "never requeued: {st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waiting["status"], json!("queued"), "{waiting}");
    assert_eq!(waiting["deliveries"], json!(1), "{waiting}");
    assert!(waiting.get("error").is_none_or(Value::is_null), "{waiting}");
    let breaker = s
        .get(
            "/internal/resilience/circuit-breakers/openai:summarize",
            Some("alpha"),
        )
        .await;
    assert_eq!(breaker.body["state"], json!("open"), "{}", breaker.body);
    let until_half_open = breaker.body["seconds_until_half_open"].as_f64().unwrap();
    // The not-before is the breaker's recovery (read from the delayed set).
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let not_before: f64 = redis::cmd("ZSCORE")
        .arg("{keel:jobs}:delayed")
        .arg(&id)
        .query_async(&mut conn)
        .await
        .unwrap();
    let recovery_ms = chrono::Utc::now().timestamp_millis() as f64 + until_half_open * 1000.0;
    assert!(
        (not_before - recovery_ms).abs() < 1500.0,
        "not-before {not_before} vs breaker recovery {recovery_ms}"
    );
    assert!(not_before - (submitted_ms as f64) >= 8_000.0);

    fake.set_config(keel_testkit::fake_llm::FakeLlmConfig::default());
    let body = await_all(&s, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(body["status"], json!("succeeded"), "{body}");
    assert_eq!(body["deliveries"], json!(2), "{body}");
    let started = chrono::DateTime::parse_from_rfc3339(body["started_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        started as f64 >= not_before - 50.0,
        "the second run waited for the not-before: {started} < {not_before}"
    );
    assert_eq!(
        fake.stats().requests_total,
        2,
        "no call while the breaker was open"
    );
}

/// A callback to a closed port: retried `JOB_WEBHOOK_MAX_ATTEMPTS` times,
/// then recorded as failed in the job's `webhook` field (attempts, error);
/// the job itself stays `succeeded` with its result.
#[tokio::test]
async fn webhook_to_a_down_receiver_is_retried_then_recorded_failed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = start(&[
        ("API_KEY", "alpha"),
        ("JOB_WEBHOOK_SECRET", "whsec"),
        ("JOB_WEBHOOK_BACKOFF_MS", "50"),
        ("JOB_WEBHOOK_MAX_ATTEMPTS", "3"),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "summarize",
                      "callback_url": format!("http://127.0.0.1:{port}/hook")});
    let r = submit(&s, &body, "alpha", None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v = s.get(&format!("/v1/jobs/{id}"), Some("alpha")).await;
        if v.body["webhook"]["status"] == json!("failed") {
            break v.body;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never recorded as failed: {}",
            v.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["webhook"]["attempts"], json!(3), "{view}");
    assert!(
        view["webhook"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{view}"
    );
    assert!(
        view["webhook"]
            .get("last_status")
            .is_none_or(Value::is_null)
    );
    assert_eq!(view["status"], json!("succeeded"), "{view}");
    assert_eq!(view["result"]["success"], json!(true), "{view}");
}
