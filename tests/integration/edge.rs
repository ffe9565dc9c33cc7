//! The HTTP edge: security headers, CORS, compression, header limits, a
//! separate operator listener, and graceful shutdown that loses no request.

use crate::support::{ARTICLE, start, start_with_settings};
use keel::config::Settings;
use keel::env::MapEnv;
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn security_headers_cors_and_compression() {
    let s = start(&[("CORS_ORIGINS", "https://app.example.com")]).await;
    let r = s.client.get(s.url("/v1/health")).send().await.unwrap();
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only in production"
    );

    let r = s
        .client
        .request(
            reqwest::Method::OPTIONS,
            s.url("/v1/text_processing/process"),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let r = s
        .client
        .get(s.url("/v1/health"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Large responses are compressed for clients that accept it; small ones are not.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .build()
        .unwrap();
    let r = raw
        .get(s.url("/internal/resilience/config"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let varies_with_encoding = |h: &reqwest::header::HeaderMap| {
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("accept-encoding"))
    };
    assert!(varies_with_encoding(r.headers()));
    assert!(r.headers().get("x-request-id").is_some());
    let gzipped = r.bytes().await.unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut json)
        .unwrap();
    let plain = raw
        .get(s.url("/internal/resilience/config"))
        .send()
        .await
        .unwrap();
    // Without Accept-Encoding: the same JSON, uncompressed, still marked as
    // varying with the header.
    assert!(plain.headers().get("content-encoding").is_none());
    assert!(varies_with_encoding(plain.headers()));
    let plain: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        plain
    );
    let r = raw
        .get(s.url("/internal/resilience/config"))
        .header("accept-encoding", "br;q=1, gzip;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    let r = raw
        .get(s.url("/v1/health/live"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());

    let s = start(&[("ENVIRONMENT", "production"), ("API_KEY", "k")]).await;
    let r = s.client.get(s.url("/v1/health")).send().await.unwrap();
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
}

#[tokio::test]
async fn too_many_headers_is_a_json_431() {
    let s = start(&[]).await;
    let mut req = s.client.get(s.url("/v1/health"));
    for i in 0..70 {
        req = req.header(format!("x-extra-{i}"), "1");
    }
    let r = s.send(req).await;
    assert_eq!(r.assert_error(431), "REQUEST_HEADER_FIELDS_TOO_LARGE");
}

#[tokio::test]
async fn the_operator_api_can_have_its_own_listener() {
    let s = start(&[("INTERNAL_BIND", "127.0.0.1:0")]).await;
    s.get("/internal/", None).await.assert_error(404);
    let internal = s.server.internal_addr().expect("internal listener");
    let r = s
        .client
        .get(format!("http://{internal}/internal/resilience/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
    let r = s
        .client
        .get(format!("http://{internal}/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "the public API is not on the operator port"
    );
}

fn settings(vars: &[(&str, &str)]) -> Settings {
    let mut env = MapEnv::new(vars);
    env.set("BACKEND_PORT", "0");
    Settings::from_source(&env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let fake = crate::support::fake(FakeLlmConfig {
        latency_ms: 600,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let s = start_with_settings(settings(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("SHUTDOWN_GRACE_SECONDS", "10"),
        ("SHUTDOWN_DRAIN_DELAY_SECONDS", "1"),
    ]))
    .await;
    let url = s.url("/v1/text_processing/process");
    let ready = s.url("/v1/health/ready");
    let in_flight: Vec<_> = (0..8)
        .map(|i| {
            let client = s.client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let body =
                    json!({"text": format!("{ARTICLE} In flight {i}."), "operation": "sentiment"});
                client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fake.stats().in_flight,
        8,
        "all requests reached the upstream"
    );
    let client = s.client.clone();
    let started = Instant::now();
    let shutdown = tokio::spawn(s.server.shutdown());

    // During the drain delay readiness says 503 while the port still answers.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = client.get(&ready).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());

    for task in in_flight {
        assert_eq!(
            task.await.unwrap().expect("in-flight request completed"),
            200
        );
    }
    shutdown.await.unwrap().expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let refused = reqwest::Client::new().get(&ready).send().await;
    assert!(
        refused.is_err(),
        "new connections are refused after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_shutdown() {
    let fake = crate::support::fake(FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    })
    .await;
    let base = fake.openai_base_url();
    let s = start_with_settings(settings(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("SHUTDOWN_GRACE_SECONDS", "1"),
    ]))
    .await;
    let client = s.client.clone();
    let url = s.url("/v1/text_processing/process");
    let hung = tokio::spawn(async move {
        client
            .post(&url)
            .json(&json!({"text": ARTICLE, "operation": "sentiment"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    s.server.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let cut = hung.await.unwrap().expect("the hung request got an answer");
    assert_eq!(
        cut.status(),
        503,
        "cut at the end of the grace period with a 503"
    );
    let body: serde_json::Value = cut.json().await.unwrap();
    assert_eq!(body["error_code"], json!("SERVICE_UNAVAILABLE"));
}

#[tokio::test]
async fn openapi_documents_and_offline_docs_are_served() {
    let s = start(&[]).await;
    for path in ["/openapi.json", "/internal/openapi.json"] {
        let r = s.get(path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.body["openapi"].as_str().unwrap().starts_with("3.1"),
            "{path}"
        );
    }
    let public = s.get("/openapi.json", None).await;
    assert!(public.body["paths"]["/v1/text_processing/process"]["post"].is_object());
    let r = s.client.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("swagger") && !html.contains("https://"),
        "served offline"
    );

    let s = start(&[
        ("ENVIRONMENT", "production"),
        ("API_KEY", "k"),
        ("INTERNAL_API_KEY", "ops"),
    ])
    .await;
    assert_eq!(s.get("/openapi.json", None).await.status, 200);
    s.get("/internal/openapi.json", None)
        .await
        .assert_error(404);
    let s = start(&[
        ("ENVIRONMENT", "production"),
        ("API_KEY", "k"),
        ("INTERNAL_API_KEY", "ops"),
        ("INTERNAL_DOCS", "true"),
    ])
    .await;
    assert_eq!(s.get("/internal/openapi.json", None).await.status, 200);
}
