//! What the reference FastAPI project's clients do, replayed against the real
//! server: the fields they read and the wording they match on.

use crate::support::{ARTICLE, start};
use serde_json::{Value, json};

#[tokio::test]
async fn a_401_has_fastapi_detail_with_message_and_context() {
    let s = start(&[("API_KEY", "right-key")]).await;
    let r = s.get("/v1/auth/status", None).await;
    r.assert_error(401);
    let detail = &r.body["detail"];
    assert!(
        detail["message"]
            .as_str()
            .unwrap()
            .contains("API key required")
    );
    assert_eq!(detail["context"]["credentials_provided"], json!(false));
    assert_eq!(detail["context"]["environment"], json!("development"));
    assert_eq!(detail["context"]["auth_method"], json!("bearer_token"));

    let r = s.get("/v1/auth/status", Some("wrong-key-123")).await;
    r.assert_error(401);
    assert_eq!(r.body["detail"]["message"], json!("Invalid API key"));
    assert_eq!(r.body["detail"]["context"]["key_prefix"], json!("wrong-ke"));
    assert_eq!(
        r.body["detail"]["context"]["credentials_provided"],
        json!(true)
    );

    let r = s
        .send(
            s.client
                .get(s.url("/v1/auth/status"))
                .header("authorization", "Bearer "),
        )
        .await;
    r.assert_error(401);
    assert!(
        r.body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("API key required"),
        "{}",
        r.body
    );
    // Optional auth: a bad key is still a 401, on the new health route too.
    s.get("/v1/text_processing/health", Some("nope"))
        .await
        .assert_error(401);
}

#[tokio::test]
async fn a_422_detail_is_a_list_of_loc_msg_type_and_others_a_string() {
    let s = start(&[]).await;
    let r = s
        .process(json!({"text": "short", "operation": "summarize"}))
        .await;
    r.assert_error(422);
    let item = &r.body["detail"][0];
    assert_eq!(item["loc"], json!(["body", "text"]));
    assert!(item["msg"].as_str().is_some() && item["type"].as_str().is_some());

    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": []}),
            None,
        )
        .await;
    r.assert_error(422);
    assert!(
        r.body.to_string().contains("should have at least 1 item"),
        "{}",
        r.body
    );
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "requests"]));

    let r = s.get("/v1/no/such/route", None).await;
    r.assert_error(404);
    assert!(r.body["detail"].is_string(), "{}", r.body);
}

#[tokio::test]
async fn unknown_options_are_reported_and_strict_mode_refuses_them() {
    let s = start(&[]).await;
    let r = s
        .process(json!({"text": ARTICLE, "operation": "summarize",
                        "options": {"max_lenght": 30, "max_length": 14.0}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ignored = &r.body["metadata"]["ignored_options"];
    assert_eq!(ignored[0]["name"], json!("max_lenght"), "{}", r.body);
    assert_eq!(ignored[0]["suggestion"], json!("max_length"));
    // Ranges still apply, and fractions are not integers.
    s.process(json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 5000}}))
        .await
        .assert_error(422);
    s.process(json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 14.5}}))
        .await
        .assert_error(422);
    // qa takes its question from options when `question` is absent.
    let r = s
        .process(json!({"text": ARTICLE, "operation": "qa",
                        "options": {"question": "How much did the council approve?"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["result"].as_str().is_some());

    let s = start(&[("STRICT_OPTIONS", "true")]).await;
    let r = s
        .process(json!({"text": ARTICLE, "operation": "summarize", "options": {"max_lenght": 30}}))
        .await;
    r.assert_error(422);
    assert_eq!(r.body["details"]["field"], json!("options.max_lenght"));
    assert_eq!(r.body["details"]["allowed"], json!(["max_length"]));
    assert_eq!(r.body["details"]["suggestion"], json!("max_length"));
    assert!(!r.body["error"].as_str().unwrap().contains("deserialize"));
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "options", "max_lenght"])
    );
}

#[tokio::test]
async fn strict_options_is_validated_at_start_up() {
    let mut env = keel::env::MapEnv::new(&[("STRICT_OPTIONS", "maybe")]);
    env.set("BACKEND_PORT", "0");
    let err = keel::config::Settings::from_source(&env).unwrap_err();
    assert!(err.to_string().contains("STRICT_OPTIONS"), "{err}");
}

#[tokio::test]
async fn success_bodies_carry_the_full_field_set_also_in_batches() {
    let s = start(&[]).await;
    let r = s
        .process(json!({"text": ARTICLE, "operation": "sentiment"}))
        .await;
    assert_eq!(r.status, 200);
    for field in ["result", "sentiment", "key_points", "questions"] {
        assert!(r.body.get(field).is_some(), "{field}: {}", r.body);
    }
    assert_eq!(r.body["result"], Value::Null);
    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"batch_id": "ref-1", "requests": [
                {"text": ARTICLE, "operation": "key_points"},
                {"text": "short", "operation": "summarize"}]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ok = &r.body["results"][0];
    assert_eq!(ok["error"], Value::Null);
    for field in ["result", "sentiment", "key_points", "questions"] {
        assert!(ok["response"].get(field).is_some(), "{field}: {ok}");
    }
    assert_eq!(r.body["results"][1]["response"], Value::Null);

    let r = s.get("/v1/text_processing/batch_status/ref-1", None).await;
    assert_eq!(r.body["status"], json!("completed"), "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn auth_status_and_domain_health_as_the_reference_reports_them() {
    let s = start(&[]).await;
    let r = s.get("/v1/auth/status", None).await;
    assert_eq!(r.body["api_key_prefix"], json!("developm..."), "{}", r.body);

    let r = s.get("/v1/text_processing/health", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let health = s.get("/v1/health", None).await;
    assert_eq!(
        r.body["overall_healthy"],
        json!(health.body["status"] == json!("healthy"))
    );
    assert_eq!(r.body["service_type"], json!("domain"));
    assert!(r.body["infrastructure"]["resilience"]["healthy"].is_boolean());
    assert!(r.body["domain_services"]["text_processing"]["healthy"].is_boolean());
}

#[tokio::test]
async fn cache_status_sub_objects_are_never_null() {
    let s = start(&[]).await;
    let cache_status = s.get("/internal/cache/status", None).await.body;
    // The reference frontend's first read.
    assert_eq!(cache_status["redis"]["status"], json!("not_configured"));
    assert!(cache_status["memory"]["status"].is_string());
    assert!(cache_status["memory"]["memory_cache_entries"].is_u64());
    assert!(cache_status["performance"].is_object());
    let metrics = s.get("/internal/cache/metrics", None).await.body;
    assert_eq!(metrics["redis"]["status"], json!("not_configured"));
    let limits = s.get("/internal/rate-limits", None).await.body;
    assert_eq!(limits["redis"]["status"], json!("not_configured"));
    let health = s.get("/internal/monitoring/health", None).await.body;
    assert_eq!(
        health["components"]["cache"]["redis"]["status"],
        json!("not_configured")
    );
}

#[tokio::test]
async fn invalidate_takes_the_reference_query_form() {
    let s = start(&[]).await;
    let body = json!({"text": ARTICLE, "operation": "summarize"});
    s.process(body.clone()).await;
    assert_eq!(s.process(body.clone()).await.body["cache_hit"], json!(true));
    let r = s
        .send(s.client.post(
            s.url("/internal/cache/invalidate?pattern=summarize&operation_context=api_endpoint"),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Cache invalidated for pattern:")
    );
    assert_eq!(s.process(body).await.body["cache_hit"], json!(false));
    // The JSON body still works.
    let r = s
        .post(
            "/internal/cache/invalidate",
            &json!({"operation": "sentiment"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
