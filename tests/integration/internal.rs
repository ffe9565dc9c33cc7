//! The operator API: auth, shapes, 404s, breaker control that changes what
//! traffic does, runtime preset switching, presets and validation.

use crate::support::{ARTICLE, start};
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;

#[tokio::test]
async fn operator_routes_need_the_operator_key() {
    let s = start(&[("API_KEY", "public-key"), ("INTERNAL_API_KEY", "ops-key")]).await;
    for path in [
        "/internal/",
        "/internal/monitoring/health",
        "/internal/metrics/summary",
        "/internal/resilience/health",
        "/internal/resilience/config",
        "/internal/resilience/circuit-breakers",
        "/internal/resilience/config/presets",
    ] {
        assert_eq!(
            s.get(path, None).await.assert_error(401),
            "AUTHENTICATION_ERROR",
            "{path}"
        );
        s.get(path, Some("public-key")).await.assert_error(401);
        let r = s.get(path, Some("ops-key")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = s
        .post(
            "/internal/resilience/circuit-breakers/local:summarize/reset",
            &json!({}),
            None,
        )
        .await;
    r.assert_error(401);
}

#[tokio::test]
async fn development_uses_public_keys_and_production_needs_its_own() {
    let s = start(&[("API_KEY", "public-key")]).await;
    assert_eq!(s.get("/internal/", Some("public-key")).await.status, 200);
    s.get("/internal/", None).await.assert_error(401);

    let s = start(&[("API_KEY", "public-key"), ("ENVIRONMENT", "production")]).await;
    let r = s.get("/internal/", Some("public-key")).await;
    assert_eq!(r.assert_error(403), "AUTHORIZATION_ERROR");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("INTERNAL_API_KEY")
    );
}

#[tokio::test]
async fn shapes_and_not_found_names() {
    let s = start(&[]).await;
    let r = s.get("/internal/monitoring/health", None).await;
    assert_eq!(r.body["status"], json!("healthy"));
    assert!(
        r.body["system"]["memory_total_bytes"].as_u64().unwrap() > 0,
        "{}",
        r.body
    );
    assert!(
        r.body["system"]["process_rss_bytes"].as_u64().unwrap() > 0,
        "{}",
        r.body
    );

    let r = s.get("/internal/resilience/circuit-breakers", None).await;
    let names: Vec<&str> = r.body["circuit_breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "one per operation for the local provider: {names:?}"
    );
    assert!(names.contains(&"local:qa"));

    let r = s
        .get(
            "/internal/resilience/circuit-breakers/local:summarize",
            None,
        )
        .await;
    assert_eq!(r.body["state"], json!("closed"));
    assert_eq!(r.body["failure_threshold"], json!(5));

    s.get("/internal/resilience/circuit-breakers/nope:summarize", None)
        .await
        .assert_error(404);
    s.get(
        "/internal/resilience/circuit-breakers/local:translate",
        None,
    )
    .await
    .assert_error(404);
    s.post(
        "/internal/resilience/circuit-breakers/local:qa/explode",
        &json!({}),
        None,
    )
    .await
    .assert_error(404);
    s.get("/internal/resilience/metrics/translate", None)
        .await
        .assert_error(404);
    s.get("/internal/resilience/config/presets/fast", None)
        .await
        .assert_error(404);
    s.get("/internal/no-such-thing", None)
        .await
        .assert_error(404);

    let r = s.get("/internal/resilience/config/presets", None).await;
    assert_eq!(r.body["presets"].as_array().unwrap().len(), 3);
    let r = s
        .get("/internal/resilience/config/presets/production", None)
        .await;
    assert_eq!(r.body["preset"]["retry_attempts"], json!(5));
    assert_eq!(
        r.body["resolved"]["operations"]["qa"]["max_attempts"],
        json!(7)
    );
    let r = s
        .get("/internal/resilience/config/presets-summary", None)
        .await;
    assert_eq!(
        r.body["development"]["default_strategy"],
        json!("aggressive")
    );
    let r = s
        .get("/internal/resilience/config/recommend-preset/staging", None)
        .await;
    assert_eq!(r.body["recommended_preset"], json!("production"));
    let r = s
        .get("/internal/resilience/config/recommend-preset-auto", None)
        .await;
    assert!(r.body["recommended_preset"].as_str().is_some());

    let r = s
        .post(
            "/internal/resilience/config/validate",
            &json!({"configuration": {"retry_attempts": 15}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["is_valid"], json!(false));
    assert!(
        r.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("retry_attempts")
    );
    let r = s
        .post(
            "/internal/resilience/config/validate",
            &json!({"configuration": {"retry_attempts": 4}}),
            None,
        )
        .await;
    assert_eq!(r.body["is_valid"], json!(true));

    // Traffic shows up in the summaries.
    let r = s
        .process(json!({"text": ARTICLE, "operation": "sentiment"}))
        .await;
    assert_eq!(r.status, 200);
    let r = s.get("/internal/metrics/summary", None).await;
    let route = r.body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["route"] == json!("/v1/text_processing/process"))
        .expect("process route counted");
    assert_eq!(route["requests"], json!(1));
    let sentiment = r.body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == json!("sentiment"))
        .unwrap();
    assert_eq!(sentiment["succeeded"], json!(1));
    assert!(sentiment["latency"]["p95_ms"].as_f64().is_some());

    let r = s.get("/internal/resilience/metrics/sentiment", None).await;
    assert_eq!(r.body["metrics"]["requests"], json!(1));
    let r = s
        .post("/internal/resilience/metrics/reset", &json!({}), None)
        .await;
    assert_eq!(r.status, 200);
    let r = s.get("/internal/resilience/metrics/sentiment", None).await;
    assert_eq!(r.body["metrics"]["requests"], json!(0));
}

#[tokio::test]
async fn breaker_commands_change_what_traffic_does() {
    let upstream = crate::support::fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let s = start(&[("OPENAI_BASE_URL", &base)]).await;
    let body = json!({"text": ARTICLE, "operation": "summarize"});

    let r = s
        .post(
            "/internal/resilience/circuit-breakers/openai:summarize/force-open",
            &json!({}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["new_state"], json!("forced_open"));
    let r = s.process(body.clone()).await;
    assert_eq!(r.body["metadata"]["provider"], json!("local"));
    assert_eq!(upstream.stats().requests_total, 0);
    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["status"], json!("degraded"));

    let r = s
        .post(
            "/internal/resilience/circuit-breakers/openai:summarize/reset",
            &json!({}),
            None,
        )
        .await;
    assert_eq!(r.body["new_state"], json!("closed"));
    let transitions = r.body["breaker"]["transitions"].as_array().unwrap();
    assert!(
        transitions.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("reset")
    );
    let r = s.process(body.clone()).await;
    assert_eq!(r.body["metadata"]["provider"], json!("openai"));
    assert_eq!(upstream.stats().requests_total, 1);

    for action in ["disable", "metrics-only", "force-closed"] {
        let r = s
            .post(
                &format!("/internal/resilience/circuit-breakers/openai:summarize/{action}"),
                &json!({}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{action}");
    }
}

#[tokio::test]
async fn the_preset_can_be_switched_at_runtime() {
    let s = start(&[]).await;
    let r = s.get("/internal/resilience/config", None).await;
    assert_eq!(r.body["preset_name"], json!("simple"));
    assert_eq!(
        r.body["configuration"]["operations"]["qa"]["max_attempts"],
        json!(3)
    );
    assert!(r.body["configuration"]["operations"]["qa"]["sources"].is_object());

    let put = |body: serde_json::Value| {
        let client = s.client.clone();
        let url = s.url("/internal/resilience/config");
        async move {
            let r = client.put(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = put(json!({"preset": "production"})).await;
    assert_eq!(status, 200, "{body}");
    let r = s.get("/internal/resilience/config", None).await;
    assert_eq!(r.body["preset_name"], json!("production"));
    assert_eq!(
        r.body["configuration"]["operations"]["qa"]["max_attempts"],
        json!(7)
    );
    assert_eq!(r.body["last_change"]["preset"], json!("production"));
    let r = s
        .get("/internal/resilience/circuit-breakers/local:qa", None)
        .await;
    assert_eq!(
        r.body["failure_threshold"],
        json!(10),
        "breakers took the new threshold"
    );

    let (status, _) =
        put(json!({"preset": "production", "custom_config": {"retry_attempts": 2}})).await;
    assert_eq!(status, 200);
    let r = s.get("/internal/resilience/config", None).await;
    assert_eq!(
        r.body["configuration"]["operations"]["qa"]["max_attempts"],
        json!(2)
    );

    let (status, body) = put(json!({"preset": "fast"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = put(json!({"custom_config": {"retry_attempts": 99}})).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("retry_attempts"),
        "{body}"
    );
    let (status, _) = put(json!({"presett": "simple"})).await;
    assert_eq!(status, 422);
    // Rejected changes changed nothing.
    let r = s.get("/internal/resilience/config", None).await;
    assert_eq!(
        r.body["configuration"]["operations"]["qa"]["max_attempts"],
        json!(2)
    );
}

#[tokio::test]
async fn prometheus_metrics_name_what_happened() {
    let s = start(&[]).await;
    for i in 0..3 {
        let text = format!("{ARTICLE} Variant {i}.");
        let body = json!({"text": text, "operation": "qa", "question": "What was launched?"});
        assert_eq!(s.process(body).await.status, 200);
    }
    s.process(json!({"text": "short", "operation": "qa"}))
        .await
        .assert_error(422);
    let r = s
        .client
        .get(s.url("/internal/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = r.text().await.unwrap();
    for needle in [
        "keel_http_requests_total{route=\"/v1/text_processing/process\",status=\"200\"} 3",
        "keel_http_requests_total{route=\"/v1/text_processing/process\",status=\"422\"} 1",
        "keel_http_request_duration_seconds_bucket{",
        "keel_overhead_seconds_count 3",
        "keel_jobs_total{operation=\"qa\",outcome=\"succeeded\"} 3",
        "keel_provider_calls_total{provider=\"local\",outcome=\"success\"} 3",
        "keel_provider_call_duration_seconds_bucket{",
        "keel_circuit_breaker_state{breaker=\"local:qa\"} 0",
        "keel_circuit_breaker_opens_total{breaker=\"local:qa\"} 0",
        "keel_retries_total 0",
        "keel_fallbacks_total 0",
        "keel_bulkhead_rejections_total 0",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "EOF last:\n{text}");
    assert!(
        text.contains("keel_http_request_duration_seconds_bucket{route=\"/v1/text_processing/process\",le=\"+Inf\"} 4\n"),
        "+Inf counts each request once:\n{text}"
    );
    assert!(
        !text.contains(" # {"),
        "no exemplars with tracing off:\n{text}"
    );
}
