//! Batches: per-item results, one item's failure never fails the batch,
//! limits, and a real `batch_status`.

use crate::support::{ARTICLE, start};
use serde_json::json;

#[tokio::test]
async fn mixed_items_succeed_and_fail_independently() {
    let s = start(&[("API_KEY", "k1"), ("ADDITIONAL_API_KEYS", "k2")]).await;
    let batch = json!({
        "batch_id": "mixed-1",
        "requests": [
            {"text": ARTICLE, "operation": "summarize"},
            {"text": "short", "operation": "summarize"},
            {"text": ARTICLE, "operation": "qa"},
            {"text": ARTICLE, "operation": "sentiment"},
            {"nonsense": true},
            {"text": ARTICLE, "operation": "key_points", "options": {"max_points": 2}}
        ]
    });
    let r = s
        .post("/v1/text_processing/batch_process", &batch, Some("k1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["batch_id"], json!("mixed-1"));
    assert_eq!(r.body["total_requests"], json!(6));
    assert_eq!(r.body["completed"], json!(3));
    assert_eq!(r.body["failed"], json!(3));
    let results = r.body["results"].as_array().unwrap();
    let statuses: Vec<_> = results
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "completed",
            "failed",
            "failed",
            "completed",
            "failed",
            "completed"
        ]
    );
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["request_index"], json!(i));
    }
    assert_eq!(results[1]["error_code"], json!("VALIDATION_ERROR"));
    assert!(results[2]["error"].as_str().unwrap().contains("question"));
    assert_eq!(
        results[5]["response"]["key_points"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let r = s
        .get("/v1/text_processing/batch_status/mixed-1", Some("k1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], json!("completed"));
    assert_eq!(r.body["completed"], json!(3));
    assert_eq!(r.body["failed"], json!(3));
    assert!(r.body["total_processing_time"].as_f64().is_some());

    // Another tenant cannot see it.
    s.get("/v1/text_processing/batch_status/mixed-1", Some("k2"))
        .await
        .assert_error(404);
    s.get("/v1/text_processing/batch_status/mixed-1", None)
        .await
        .assert_error(401);
}

#[tokio::test]
async fn batch_limits_are_enforced() {
    let s = start(&[("MAX_BATCH_REQUESTS_PER_CALL", "3")]).await;
    let item = json!({"text": ARTICLE, "operation": "sentiment"});
    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": [item, item, item, item]}),
            None,
        )
        .await;
    assert_eq!(r.assert_error(422), "VALIDATION_ERROR");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("maximum limit of 3")
    );

    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": []}),
            None,
        )
        .await;
    r.assert_error(422);

    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": [item], "batch_id": "bad id!"}),
            None,
        )
        .await;
    r.assert_error(422);

    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": [item, item]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.body["batch_id"].as_str().unwrap();
    assert!(id.starts_with("batch_"), "{id}");
    let status = s
        .get(&format!("/v1/text_processing/batch_status/{id}"), None)
        .await;
    assert_eq!(status.body["total_requests"], json!(2));
}
