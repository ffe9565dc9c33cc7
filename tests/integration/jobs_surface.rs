//! What operators see of async jobs: the Prometheus series move with real
//! jobs, and a paused queue shows in the metrics.

use crate::support::{ARTICLE, TestServer, start};
use serde_json::json;

/// `GET /internal/metrics` as text.
async fn metrics(s: &TestServer, key: &str) -> String {
    let r = s
        .client
        .get(s.url("/internal/metrics"))
        .bearer_auth(key)
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("metrics body")
}

/// The value of one exposition line `name{labels} value` (or `name value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn job_metrics_follow_real_jobs() {
    let s = start(&[("API_KEY", "alpha"), ("JOB_QUEUE_MAX", "3")]).await;
    let before = metrics(&s, "alpha").await;
    assert_eq!(
        sample(&before, "keel_async_jobs_submitted_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(sample(&before, "keel_async_jobs_store_up"), Some(1.0));

    // Two jobs run to the end.
    for op in ["summarize", "sentiment"] {
        let r = s
            .post(
                "/v1/jobs",
                &json!({"text": ARTICLE, "operation": op}),
                Some("alpha"),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["job_id"].as_str().unwrap();
        let done = s
            .get(&format!("/v1/jobs/{id}?wait=10"), Some("alpha"))
            .await;
        assert_eq!(done.body["status"], json!("succeeded"), "{}", done.body);
    }
    // Paused: three wait in the queue, the fourth is refused as QUEUE_FULL.
    let paused = s
        .post("/internal/jobs/pause", &json!({}), Some("alpha"))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    for i in 0..3 {
        let text = format!("{ARTICLE} Waiting job {i}.");
        let r = s
            .post(
                "/v1/jobs",
                &json!({"text": text, "operation": "summarize"}),
                Some("alpha"),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let full = s
        .post(
            "/v1/jobs",
            &json!({"text": ARTICLE, "operation": "key_points"}),
            Some("alpha"),
        )
        .await;
    assert_eq!(full.assert_error(503), "QUEUE_FULL");
    assert!(full.header("retry-after").is_some());

    let after = metrics(&s, "alpha").await;
    for (series, want) in [
        ("keel_async_jobs_submitted_total", 5.0),
        ("keel_async_jobs_rejected_total{reason=\"queue_full\"}", 1.0),
        ("keel_async_jobs_outcomes_total{status=\"succeeded\"}", 2.0),
        ("keel_async_jobs_outcomes_total{status=\"failed\"}", 0.0),
        ("keel_async_jobs_depth{state=\"queued\"}", 3.0),
        ("keel_async_jobs_depth{state=\"running\"}", 0.0),
        ("keel_async_job_run_seconds_count", 2.0),
        ("keel_async_job_queue_wait_seconds_count", 2.0),
    ] {
        assert_eq!(sample(&after, series), Some(want), "{series} in:\n{after}");
    }
    let age = sample(&after, "keel_async_jobs_oldest_queued_age_seconds").unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
}
