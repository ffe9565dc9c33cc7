//! The authentication matrix: no key, bad key, each valid key in both header
//! styles, optional-auth routes, open development access and the
//! production refusal.

use crate::support::{ARTICLE, start};
use keel::config::Settings;
use keel::env::MapEnv;
use serde_json::json;

const KEYS: [(&str, &str); 2] = [
    ("API_KEY", "primary-key-123"),
    ("ADDITIONAL_API_KEYS", "second-key-456, third-key-789"),
];

fn body() -> serde_json::Value {
    json!({"text": ARTICLE, "operation": "sentiment"})
}

#[tokio::test]
async fn keys_are_required_when_configured() {
    let s = start(&KEYS).await;
    let url = s.url("/v1/text_processing/process");

    let r = s.send(s.client.post(&url).json(&body())).await;
    assert_eq!(r.assert_error(401), "AUTHENTICATION_ERROR");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    for bad in [
        s.client.post(&url).bearer_auth("wrong-key"),
        s.client.post(&url).bearer_auth("PRIMARY-KEY-123"),
        s.client.post(&url).header("authorization", "InvalidFormat"),
        s.client
            .post(&url)
            .header("authorization", "Basic cHJpbWFyeS1rZXktMTIz"),
        s.client.post(&url).header("x-api-key", "nope"),
    ] {
        let r = s.send(bad.json(&body())).await;
        assert_eq!(r.assert_error(401), "AUTHENTICATION_ERROR");
    }

    for key in ["primary-key-123", "second-key-456", "third-key-789"] {
        let r = s
            .send(s.client.post(&url).bearer_auth(key).json(&body()))
            .await;
        assert_eq!(r.status, 200, "bearer {key}: {}", r.body);
        let r = s
            .send(s.client.post(&url).header("x-api-key", key).json(&body()))
            .await;
        assert_eq!(r.status, 200, "x-api-key {key}: {}", r.body);
    }
}

#[tokio::test]
async fn auth_status_and_optional_routes() {
    let s = start(&KEYS).await;
    let r = s.get("/v1/auth/status", None).await;
    r.assert_error(401);
    let r = s.get("/v1/auth/status", Some("second-key-456")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["authenticated"], json!(true));
    assert_eq!(r.body["api_key_prefix"], json!("second-k..."));

    // Optional auth: no key is fine, a bad key is still 401.
    assert_eq!(
        s.get("/v1/text_processing/operations", None).await.status,
        200
    );
    s.get("/v1/text_processing/operations", Some("bad"))
        .await
        .assert_error(401);
    assert_eq!(
        s.get("/v1/text_processing/operations", Some("primary-key-123"))
            .await
            .status,
        200
    );
    // Health needs no key.
    assert_eq!(s.get("/v1/health", None).await.status, 200);
}

#[tokio::test]
async fn development_without_keys_is_open() {
    let s = start(&[("ENVIRONMENT", "development")]).await;
    let r = s.process(body()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.get("/v1/auth/status", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["message"].as_str().unwrap().contains("disabled"));
}

#[test]
fn staging_and_production_without_keys_refuse_to_start() {
    for env in ["staging", "production"] {
        let err = Settings::from_source(&MapEnv::new(&[("ENVIRONMENT", env)])).unwrap_err();
        assert!(err.to_string().contains("API_KEY"), "{err}");
    }
}
