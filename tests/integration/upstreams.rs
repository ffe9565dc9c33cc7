//! The same operations against the fake OpenAI-compatible and Gemini
//! upstreams (real HTTP servers), including upstream failures.

use crate::support::{all_operations, assert_answer_shape, fake, start};
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;

/// No retries: these tests look at one call's classification.
const ONE_ATTEMPT: &str = r#"{"retry_attempts": 1}"#;

#[tokio::test]
async fn openai_compatible_upstream_answers_every_operation() {
    let upstream = fake(FakeLlmConfig {
        api_key: Some("sk-test".into()),
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("AI_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &base),
        ("OPENAI_API_KEY", "sk-test"),
        ("AI_MODEL", "gpt-test"),
        ("AI_FALLBACK_PROVIDERS", "none"),
    ])
    .await;
    for body in all_operations() {
        let r = s.process(body.clone()).await;
        assert_eq!(r.status, 200, "{body} -> {}", r.body);
        assert_answer_shape(&r.body);
        assert_eq!(r.body["metadata"]["provider"], json!("openai"));
        assert_eq!(r.body["metadata"]["model"], json!("gpt-test"));
        assert!(
            r.body["metadata"]["usage"]["prompt_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
    let stats = upstream.stats();
    assert_eq!(stats.openai_requests, 5);
    assert_eq!(stats.ok, 5);
    assert_eq!(stats.unauthorized, 0);
}

#[tokio::test]
async fn gemini_upstream_answers_every_operation() {
    let upstream = fake(FakeLlmConfig {
        api_key: Some("g-key".into()),
        ..Default::default()
    })
    .await;
    let base = upstream.base_url();
    let s = start(&[
        ("AI_PROVIDER", "gemini"),
        ("GEMINI_BASE_URL", &base),
        ("GEMINI_API_KEY", "g-key"),
        ("AI_FALLBACK_PROVIDERS", "none"),
    ])
    .await;
    for body in all_operations() {
        let r = s.process(body.clone()).await;
        assert_eq!(r.status, 200, "{body} -> {}", r.body);
        assert_answer_shape(&r.body);
        assert_eq!(r.body["metadata"]["provider"], json!("gemini"));
    }
    let stats = upstream.stats();
    assert_eq!(stats.gemini_requests, 5);
    assert_eq!(stats.ok, 5);
}

#[tokio::test]
async fn a_rejected_key_is_a_permanent_502_without_fallback() {
    let upstream = fake(FakeLlmConfig {
        api_key: Some("right".into()),
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("OPENAI_API_KEY", "wrong"),
        ("AI_FALLBACK_PROVIDERS", "none"),
    ])
    .await;
    let r = s.process(all_operations()[0].clone()).await;
    assert_eq!(r.assert_error(502), "AI_SERVICE_ERROR");
    assert_eq!(r.body["details"]["class"], json!("permanent"));
    // The upstream's own error text ("Incorrect API key provided") and its
    // address are the operator's business: the client sees keel's wording.
    let text = r.body.to_string();
    assert!(!text.contains("Incorrect API key"), "{text}");
    assert!(!text.contains(&base), "{text}");
    assert!(text.contains("upstream answered HTTP 401"), "{text}");
}

#[tokio::test]
async fn an_unreachable_upstream_does_not_reveal_its_address() {
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("RESILIENCE_CUSTOM_CONFIG", ONE_ATTEMPT),
    ])
    .await;
    let r = s.process(all_operations()[1].clone()).await;
    assert_eq!(r.assert_error(503), "SERVICE_UNAVAILABLE");
    let text = r.body.to_string();
    assert!(!text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("could not connect"), "{text}");
}

#[tokio::test]
async fn a_failing_upstream_is_a_503_with_retry_after() {
    let upstream = fake(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("RESILIENCE_CUSTOM_CONFIG", ONE_ATTEMPT),
    ])
    .await;
    let r = s.process(all_operations()[1].clone()).await;
    assert_eq!(r.assert_error(503), "SERVICE_UNAVAILABLE");
    assert!(r.header("retry-after").is_some());

    // Malformed and empty answers are transient failures too.
    upstream.set_config(FakeLlmConfig {
        malformed_rate: 1.0,
        ..Default::default()
    });
    let r = s.process(all_operations()[1].clone()).await;
    r.assert_error(503);
    upstream.set_config(FakeLlmConfig {
        empty_rate: 1.0,
        ..Default::default()
    });
    let r = s.process(all_operations()[0].clone()).await;
    r.assert_error(503);
}

#[tokio::test]
async fn a_failing_primary_falls_back_to_local_and_says_so() {
    let upstream = fake(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("RESILIENCE_CUSTOM_CONFIG", ONE_ATTEMPT),
    ])
    .await;
    let r = s.process(all_operations()[0].clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["provider"], json!("local"));
    assert_eq!(r.body["metadata"]["degraded"], json!(true));
    assert_eq!(r.body["metadata"]["attempts"], json!(2));
    assert!(
        r.body["metadata"]["degraded_reason"]
            .as_str()
            .unwrap()
            .contains("500")
    );
}

#[tokio::test]
async fn a_hanging_upstream_times_out_as_504() {
    let upstream = fake(FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("PROVIDER_TIMEOUT_SECONDS", "1"),
        ("RESILIENCE_CUSTOM_CONFIG", ONE_ATTEMPT),
    ])
    .await;
    let started = std::time::Instant::now();
    let r = s.process(all_operations()[0].clone()).await;
    assert_eq!(r.assert_error(504), "GATEWAY_TIMEOUT");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// A provider URL that redirects is misconfigured: keel must not follow the
/// redirect (a 307 would replay the POST with the API key to another host, a
/// 301/302 would turn it into a GET), nor retry it.
#[tokio::test]
async fn an_upstream_redirect_is_not_followed_and_is_permanent() {
    let upstream = fake(FakeLlmConfig::default()).await;
    let target = format!("{}/chat/completions", upstream.openai_base_url());
    let redirector = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, target)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind redirector");
    let addr = listener.local_addr().expect("redirector address");
    tokio::spawn(async move { axum::serve(listener, redirector).await });

    let s = start(&[
        ("OPENAI_BASE_URL", &format!("http://{addr}/v1")),
        ("AI_FALLBACK_PROVIDERS", "none"),
        // Three attempts allowed: a permanent error must still make one call.
        ("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 3}"#),
    ])
    .await;
    let r = s.process(all_operations()[1].clone()).await;
    assert_eq!(r.assert_error(502), "AI_SERVICE_ERROR", "{}", r.body);
    assert_eq!(r.body["details"]["class"], json!("permanent"));
    assert_eq!(r.body["details"]["attempts"], json!(1), "{}", r.body);
    assert!(
        r.body["details"]["reasons"].to_string().contains("307"),
        "{}",
        r.body
    );
    assert_eq!(
        upstream.stats().openai_requests,
        0,
        "the redirect was followed"
    );
}
