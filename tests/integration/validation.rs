//! Every bad request gets the common JSON error body with the right status —
//! including axum's own rejections — and request ids are echoed.

use crate::support::{ARTICLE, start};
use serde_json::json;

#[tokio::test]
async fn field_rules_answer_422_naming_the_field() {
    let s = start(&[]).await;
    let cases = [
        (json!({"operation": "summarize"}), "text"),
        (json!({"text": ARTICLE}), "operation"),
        (
            json!({"text": ARTICLE, "operation": "translate"}),
            "operation",
        ),
        (
            json!({"text": "   \n\t   ", "operation": "summarize"}),
            "text",
        ),
        (
            json!({"text": "too short", "operation": "summarize"}),
            "text",
        ),
        (
            json!({"text": "x".repeat(10_001), "operation": "summarize"}),
            "text",
        ),
        (json!({"text": 12345, "operation": "summarize"}), "text"),
        (json!({"text": ARTICLE, "operation": "qa"}), "question"),
        (
            json!({"text": ARTICLE, "operation": "qa", "question": "   "}),
            "question",
        ),
        (
            json!({"text": ARTICLE, "operation": "qa", "question": "q".repeat(1001)}),
            "question",
        ),
        (
            json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 5}}),
            "max_length",
        ),
        (
            json!({"text": ARTICLE, "operation": "key_points", "options": {"max_points": 0}}),
            "max_points",
        ),
        (
            json!({"text": ARTICLE, "operation": "questions", "options": {"num_questions": 99}}),
            "num_questions",
        ),
        (
            json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": "x"}}),
            "max_length",
        ),
    ];
    for (body, field) in cases {
        let r = s.process(body.clone()).await;
        assert_eq!(r.assert_error(422), "VALIDATION_ERROR", "{body}");
        assert!(
            r.body["error"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn transport_level_mistakes_have_json_bodies() {
    let s = start(&[("MAX_REQUEST_SIZE", "2048")]).await;
    let url = s.url("/v1/text_processing/process");

    let r = s
        .send(
            s.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(r.assert_error(400), "BAD_REQUEST");

    let r = s
        .send(
            s.client
                .post(&url)
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    assert_eq!(r.assert_error(415), "UNSUPPORTED_MEDIA_TYPE");

    let r = s.send(s.client.post(&url).body(r#"{"text":"x"}"#)).await;
    assert_eq!(r.assert_error(415), "UNSUPPORTED_MEDIA_TYPE");

    let big = json!({"text": "y".repeat(5000), "operation": "summarize"});
    let r = s.send(s.client.post(&url).json(&big)).await;
    assert_eq!(r.assert_error(413), "PAYLOAD_TOO_LARGE");

    let r = s.get("/v1/no/such/route", None).await;
    assert_eq!(r.assert_error(404), "NOT_FOUND");

    let r = s.get("/v1/text_processing/process", None).await;
    assert_eq!(r.assert_error(405), "METHOD_NOT_ALLOWED");

    let r = s.send(s.client.delete(s.url("/v1/health"))).await;
    assert_eq!(r.assert_error(405), "METHOD_NOT_ALLOWED");

    let r = s.get("/v1/text_processing/batch_status/nope", None).await;
    assert_eq!(r.assert_error(404), "NOT_FOUND");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let s = start(&[]).await;
    let r = s
        .send(
            s.client
                .get(s.url("/v1/health"))
                .header("x-request-id", "client-id-42"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    assert!(r.header("x-process-time").unwrap().parse::<f64>().unwrap() >= 0.0);

    let r = s
        .send(
            s.client
                .post(s.url("/v1/text_processing/process"))
                .header("x-request-id", "err-id-7")
                .json(&json!({"text": "short", "operation": "summarize"})),
        )
        .await;
    r.assert_error(422);
    assert_eq!(r.body["request_id"], json!("err-id-7"));

    let r = s.get("/v1/health", None).await;
    let generated = r.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    // A header that could inject into logs is replaced, not echoed.
    let r = s
        .send(
            s.client
                .get(s.url("/v1/health"))
                .header("x-request-id", "bad id with spaces"),
        )
        .await;
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
}

#[tokio::test]
async fn legacy_paths_redirect_to_v1() {
    let s = start(&[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 301);
    assert_eq!(r.headers()["location"], "/v1/health");
}
