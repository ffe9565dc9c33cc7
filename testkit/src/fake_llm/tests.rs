//! End-to-end tests of the fake LLM over real HTTP: each test spawns its own
//! server on `127.0.0.1:0` and talks to it with `reqwest`, so they exercise
//! the same path keel's integration tests and the example use.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

const TEXT: &str = "Rust is a systems programming language. It guarantees memory safety without a garbage collector. \
Cargo is the build tool and package manager. The community is friendly and helpful.";

async fn server(config: FakeLlmConfig) -> FakeLlmHandle {
    FakeLlm::spawn("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn user_block(text: &str) -> String {
    format!("---USER TEXT START---\n{text}\n---USER TEXT END---")
}

fn openai_body(instruction: &str, text: &str) -> Value {
    json!({
        "model": "gpt-test",
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": format!("You are a careful assistant. {instruction}")},
            {"role": "user", "content": user_block(text)}
        ]
    })
}

fn gemini_body(instruction: &str, text: &str) -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": format!("You are a careful assistant. {instruction}")}]},
        "contents": [{"role": "user", "parts": [{"text": user_block(text)}]}],
        "generationConfig": {"temperature": 0.2}
    })
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

thread_local! {
    /// One client per test thread (= per test runtime): building a client
    /// loads the system TLS roots, which costs tens of milliseconds.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

fn client() -> reqwest::Client {
    CLIENT.with(reqwest::Client::clone)
}

async fn post(url: String, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

async fn openai(h: &FakeLlmHandle, body: &Value) -> Reply {
    post(
        format!("{}/chat/completions", h.openai_base_url()),
        body,
        &[],
    )
    .await
}

async fn gemini(h: &FakeLlmHandle, body: &Value) -> Reply {
    post(
        format!("{}/v1beta/models/gemini-test:generateContent", h.base_url()),
        body,
        &[],
    )
    .await
}

fn openai_text(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 0);
    assert_eq!(v["model"], "gpt-test");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn gemini_text(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let v = reply.json();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    assert_eq!(v["modelVersion"], "gemini-test");
    let u = &v["usageMetadata"];
    assert_eq!(
        u["totalTokenCount"].as_u64().unwrap(),
        u["promptTokenCount"].as_u64().unwrap() + u["candidatesTokenCount"].as_u64().unwrap()
    );
    c["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Both formats must give the same answer for the same prompt.
async fn both(h: &FakeLlmHandle, instruction: &str, text: &str) -> String {
    let a = openai_text(&openai(h, &openai_body(instruction, text)).await);
    let b = gemini_text(&gemini(h, &gemini_body(instruction, text)).await);
    assert_eq!(a, b, "formats disagree for {instruction:?}");
    a
}

#[tokio::test]
async fn summarize_over_both_formats() {
    let h = server(FakeLlmConfig::default()).await;
    let out = both(&h, "Summarize the text in about 5 words.", TEXT).await;
    assert_eq!(out, "Rust is a systems programming.");
    let out = both(&h, "Summarize the text.", TEXT).await;
    assert!(out.ends_with("helpful."), "{out}");
}

#[tokio::test]
async fn sentiment_over_both_formats() {
    let h = server(FakeLlmConfig::default()).await;
    let instr = "Analyze the sentiment of the text. Respond with JSON.";
    for (text, expected) in [
        ("I love this, it is great and fast!", "positive"),
        ("This is terrible, slow and broken.", "negative"),
        ("The box is on the table.", "neutral"),
    ] {
        let v: Value = serde_json::from_str(&both(&h, instr, text).await).unwrap();
        assert_eq!(v["sentiment"], expected);
        let conf = v["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&conf));
        assert!(!v["explanation"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn key_points_over_both_formats() {
    let h = server(FakeLlmConfig::default()).await;
    let out = both(&h, "Extract the 2 most important key points.", TEXT).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "- Rust is a systems programming language.",
            "- It guarantees memory safety without a garbage collector."
        ]
    );
    // More points than sentences: fewer lines.
    let out = both(&h, "Extract the 10 most important key points.", TEXT).await;
    assert_eq!(out.lines().count(), 4);
}

#[tokio::test]
async fn answer_over_both_formats() {
    let h = server(FakeLlmConfig::default()).await;
    let instr = "Answer the question using only the text.\n---USER QUESTION START---\nWhat is the build tool?\n---USER QUESTION END---";
    let out = both(&h, instr, TEXT).await;
    assert_eq!(out, "Cargo is the build tool and package manager.");
}

#[tokio::test]
async fn questions_over_both_formats() {
    let h = server(FakeLlmConfig::default()).await;
    let out = both(&h, "Generate 3 questions about the text.", TEXT).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{}. What does the text say about ", i + 1)),
            "{line}"
        );
        assert!(line.ends_with('?'));
    }
    assert_eq!(lines[0], "1. What does the text say about programming?");
}

#[tokio::test]
async fn openai_content_parts_and_no_markers() {
    let h = server(FakeLlmConfig::default()).await;
    let body = json!({
        "model": "gpt-test",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarize the text in about 3 words. "},
            {"type": "text", "text": "alpha beta gamma delta"}
        ]}]
    });
    // No markers: the last message is the user text, instruction included.
    assert_eq!(openai_text(&openai(&h, &body).await), "Summarize the text.");
}

#[tokio::test]
async fn bad_shapes_are_400() {
    let h = server(FakeLlmConfig::default()).await;
    let bad_openai = [
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "messages": []}),
        json!({"model": "m", "messages": "hi"}),
        json!({"model": "m"}),
        json!({"model": "", "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for body in &bad_openai {
        let r = openai(&h, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["code"].is_null());
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Not JSON at all.
    let r = client()
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    for body in [json!({}), json!({"contents": []}), json!({"contents": 3})] {
        let r = gemini(&h, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let v = r.json();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    }
    // Unknown Gemini action and missing action: JSON 404.
    for path in [
        "gemini-test:streamGenerateContent",
        "gemini-test",
        ":generateContent",
    ] {
        let r = post(
            format!("{}/v1beta/models/{path}", h.base_url()),
            &gemini_body("Summarize.", "x"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
    }
    let s = h.stats();
    assert_eq!(s.bad_requests, 5 + 1 + 3 + 3);
    assert_eq!(s.ok, 0);
    assert_eq!(s.requests_total, 12);
}

#[tokio::test]
async fn api_key_is_enforced() {
    let h = server(FakeLlmConfig {
        api_key: Some("sekret".into()),
        ..Default::default()
    })
    .await;
    let url = format!("{}/chat/completions", h.openai_base_url());
    let body = openai_body("Summarize the text.", TEXT);
    for headers in [vec![], vec![("authorization", "Bearer wrong")]] {
        let r = post(url.clone(), &body, &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let v = r.json();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "Incorrect API key provided");
    }
    let r = post(url, &body, &[("authorization", "Bearer sekret")]).await;
    openai_text(&r);

    let gurl = format!("{}/v1beta/models/gemini-test:generateContent", h.base_url());
    let gbody = gemini_body("Summarize the text.", TEXT);
    for (url, headers) in [
        (gurl.clone(), vec![]),
        (gurl.clone(), vec![("x-goog-api-key", "nope")]),
        (format!("{gurl}?key=nope"), vec![]),
    ] {
        let r = post(url, &gbody, &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let v = r.json();
        assert_eq!(v["error"]["code"], 401);
        assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    }
    gemini_text(&post(gurl.clone(), &gbody, &[("x-goog-api-key", "sekret")]).await);
    gemini_text(&post(format!("{gurl}?alt=json&key=sekret"), &gbody, &[]).await);

    // Auth comes before shape validation.
    let r = post(gurl, &json!({}), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let s = h.stats();
    assert_eq!(s.unauthorized, 6);
    assert_eq!(s.ok, 3);
}

#[tokio::test]
async fn fail_next_then_recovery() {
    let h = server(FakeLlmConfig {
        fail_next: 2,
        error_status: 503,
        ..Default::default()
    })
    .await;
    let body = openai_body("Summarize the text.", TEXT);
    let r = openai(&h, &body).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert_eq!(h.config().fail_next, 1);
    let r = gemini(&h, &gemini_body("Summarize the text.", TEXT)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
    assert_eq!(h.config().fail_next, 0);
    openai_text(&openai(&h, &body).await);
    let s = h.stats();
    assert_eq!((s.errors, s.ok), (2, 1));

    // A bad request does not consume a forced failure.
    h.set_config(FakeLlmConfig {
        fail_next: 1,
        ..Default::default()
    });
    assert_eq!(
        openai(&h, &json!({"model": "m"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.config().fail_next, 1);
    assert_eq!(
        openai(&h, &body).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn error_rate_one_is_all_errors() {
    let h = server(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    for _ in 0..5 {
        let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        let v = r.json();
        assert_eq!(
            v["error"]["message"],
            "The server had an error while processing your request."
        );
        assert_eq!(v["error"]["type"], "server_error");
        assert!(v["error"]["code"].is_null());
        let r = gemini(&h, &gemini_body("Summarize.", TEXT)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            r.json(),
            json!({"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})
        );
    }
    assert_eq!(h.stats().errors, 10);
}

#[tokio::test]
async fn rate_limit_has_retry_after() {
    let h = server(FakeLlmConfig {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..Default::default()
    })
    .await;
    let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    let v = r.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "requests");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit reached")
    );
    let r = gemini(&h, &gemini_body("Summarize.", TEXT)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(r.json()["error"]["code"], 429);
    assert_eq!(h.stats().rate_limited, 2);
}

#[tokio::test]
async fn malformed_body_is_not_json() {
    let h = server(FakeLlmConfig {
        malformed_rate: 1.0,
        ..Default::default()
    })
    .await;
    let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&r.body).is_err(),
        "{}",
        r.body
    );
    assert!(r.body.starts_with('{'));
    let r = gemini(
        &h,
        &gemini_body("Summarize.", "日本語のテキスト。とても良い。"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&r.body).is_err(),
        "{}",
        r.body
    );
    assert_eq!(h.stats().malformed, 2);
}

#[tokio::test]
async fn empty_content() {
    let h = server(FakeLlmConfig {
        empty_rate: 1.0,
        ..Default::default()
    })
    .await;
    assert_eq!(
        openai_text(&openai(&h, &openai_body("Summarize.", TEXT)).await),
        ""
    );
    assert_eq!(
        gemini_text(&gemini(&h, &gemini_body("Summarize.", TEXT)).await),
        ""
    );
    let s = h.stats();
    assert_eq!((s.empty, s.ok, s.completion_tokens), (2, 0, 0));
    assert!(s.prompt_tokens > 0);
}

async fn wait_for(h: &FakeLlmHandle, what: impl Fn(&FakeLlmStats) -> bool) -> FakeLlmStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = h.stats();
        if what(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hang_times_out_and_in_flight_recovers() {
    let h = server(FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .post(format!("{}/chat/completions", h.openai_base_url()))
        .json(&openai_body("Summarize.", TEXT))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(client);
    let s = wait_for(&h, |s| s.in_flight == 0).await;
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.hangs, 1);
    assert_eq!(s.requests_total, 1);
}

#[tokio::test]
async fn shutdown_releases_hung_requests() {
    let h = server(FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    })
    .await;
    let url = format!("{}/chat/completions", h.openai_base_url());
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&openai_body("Summarize.", TEXT))
            .send()
            .await
            .map(|r| r.status())
    });
    assert_eq!(wait_for(&h, |s| s.in_flight == 1).await.in_flight, 1);
    let started = Instant::now();
    let addr = h.addr();
    h.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    // Either the 503 made it out before the connection closed, or the
    // client saw the connection go away; it must not hang.
    let outcome = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .unwrap()
        .unwrap();
    if let Ok(status) = outcome {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // The port is no longer served.
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn latency_is_applied() {
    let h = server(FakeLlmConfig {
        latency_ms: 150,
        jitter_ms: 50,
        fail_next: 1,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    openai_text(&openai(&h, &openai_body("Summarize.", TEXT)).await);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
}

async fn status_sequence(seed: u64) -> Vec<u16> {
    let h = server(FakeLlmConfig {
        error_rate: 0.3,
        rate_limit_rate: 0.2,
        empty_rate: 0.2,
        seed,
        ..Default::default()
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..40 {
        let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
        let empty = r.status == StatusCode::OK && openai_text(&r).is_empty();
        out.push(if empty { 204 } else { r.status.as_u16() });
    }
    out
}

#[tokio::test]
async fn seeded_faults_are_deterministic_and_mixed() {
    let a = status_sequence(42).await;
    let b = status_sequence(42).await;
    assert_eq!(a, b);
    for code in [200, 204, 429, 500] {
        assert!(a.contains(&code), "{code} missing from {a:?}");
    }
    assert_ne!(a, status_sequence(7).await);
}

#[tokio::test]
async fn stats_and_runtime_config() {
    let h = server(FakeLlmConfig::default()).await;
    let body = openai_body("Summarize the text in about 4 words.", TEXT);
    openai_text(&openai(&h, &body).await);
    gemini_text(&gemini(&h, &gemini_body("Summarize.", TEXT)).await);
    let s = h.stats();
    assert_eq!(
        (s.requests_total, s.openai_requests, s.gemini_requests, s.ok),
        (2, 1, 1, 2)
    );
    assert_eq!(s.in_flight, 0);
    assert!(s.prompt_tokens > 0 && s.completion_tokens > 0);

    h.set_config(FakeLlmConfig {
        error_rate: 1.0,
        error_status: 502,
        ..Default::default()
    });
    assert_eq!(h.config().error_status, 502);
    assert_eq!(openai(&h, &body).await.status, StatusCode::BAD_GATEWAY);
    h.set_config(FakeLlmConfig::default());
    openai_text(&openai(&h, &body).await);
    let s = h.stats();
    assert_eq!((s.requests_total, s.ok, s.errors), (4, 3, 1));

    h.reset_stats();
    assert_eq!(h.stats(), FakeLlmStats::default());
}

#[tokio::test]
async fn control_endpoints() {
    let h = server(FakeLlmConfig::default()).await;
    let client = client();
    let base = h.base_url();

    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok");

    openai_text(&openai(&h, &openai_body("Summarize.", TEXT)).await);

    let stats: FakeLlmStats = client
        .get(format!("{base}/_fake/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((stats.requests_total, stats.ok), (1, 1));

    let config: FakeLlmConfig = client
        .get(format!("{base}/_fake/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config, FakeLlmConfig::default());

    // Partial document: missing fields take their defaults.
    let r = client
        .put(format!("{base}/_fake/config"))
        .json(&json!({"rate_limit_rate": 1.0, "retry_after_secs": 3, "fail_next": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let config: FakeLlmConfig = r.json().await.unwrap();
    assert_eq!(config.rate_limit_rate, 1.0);
    assert_eq!(config.error_status, 500);
    assert_eq!(h.config(), config);
    assert_eq!(
        openai(&h, &openai_body("Summarize.", TEXT)).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let r = openai(&h, &openai_body("Summarize.", TEXT)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "3");

    let r = client
        .post(format!("{base}/_fake/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats: FakeLlmStats = client
        .get(format!("{base}/_fake/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Control requests themselves are never counted.
    assert_eq!(stats, FakeLlmStats::default());

    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.stats().requests_total, 0);
}

#[tokio::test]
async fn bind_error_is_returned() {
    let h = server(FakeLlmConfig::default()).await;
    assert!(
        FakeLlm::spawn(h.addr(), FakeLlmConfig::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn concurrent_requests_are_all_counted() {
    let h = server(FakeLlmConfig {
        error_rate: 0.5,
        ..Default::default()
    })
    .await;
    let client = client();
    let url = format!("{}/chat/completions", h.openai_base_url());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&openai_body("Generate 2 questions.", TEXT))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::INTERNAL_SERVER_ERROR);
    }
    let s = h.stats();
    assert_eq!(s.requests_total, 50);
    assert_eq!(s.ok + s.errors, 50);
    assert_eq!(s.in_flight, 0);
}

/// Model-metadata GETs (keel's health probes) answer `probe_status`, check
/// the key, and are counted apart from completions.
#[tokio::test]
async fn probes_answer_model_metadata_and_are_counted_apart() {
    let server = server(FakeLlmConfig {
        api_key: Some("k".into()),
        fail_next: 1,
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr());
    let get = |path: &str, auth: Option<(&'static str, String)>| {
        let mut r = client.get(format!("{base}{path}"));
        if let Some((name, value)) = auth {
            r = r.header(name, value);
        }
        r.send()
    };
    let ok = get("/v1/models", Some(("authorization", "Bearer k".into())))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let list: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let gemini = get(
        "/v1beta/models/gemini-x",
        Some(("x-goog-api-key", "k".into())),
    )
    .await
    .unwrap();
    assert_eq!(gemini.status(), 200);
    let model: serde_json::Value = gemini.json().await.unwrap();
    assert_eq!(model["name"], "models/gemini-x");
    assert_eq!(get("/v1/models", None).await.unwrap().status(), 401);

    server.set_config(FakeLlmConfig {
        probe_status: 503,
        fail_next: 1,
        ..Default::default()
    });
    assert_eq!(get("/models", None).await.unwrap().status(), 503);
    let stats = server.stats();
    assert_eq!(stats.probes, 4);
    assert_eq!(stats.requests_total, 0);
    assert_eq!(
        stats.unauthorized, 0,
        "probe refusals are not completion refusals"
    );
    assert_eq!(
        server.config().fail_next,
        1,
        "a probe never consumes fail_next"
    );
}
