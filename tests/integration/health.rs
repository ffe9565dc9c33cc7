//! Health: every surface tells the same story (one model, same status and
//! reasons), and a dead engine fails liveness and ends the server.

use crate::support::{TestServer, start};
use keel::server::ServeError;
use serde_json::{Value, json};
use std::time::Duration;

const SURFACES: [&str; 3] = [
    "/v1/health",
    "/internal/monitoring/health",
    "/internal/resilience/health",
];

/// `(status, reasons)` of every health surface, asserting they agree.
async fn agreed_verdict(s: &TestServer) -> (Value, Value) {
    let mut seen: Vec<(String, Value, Value)> = Vec::new();
    for path in SURFACES {
        let r = s.get(path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.body["checks"].is_object(), "{path}: {}", r.body);
        seen.push((
            path.to_string(),
            r.body["status"].clone(),
            r.body["reasons"].clone(),
        ));
    }
    let (_, status, reasons) = seen[0].clone();
    for (path, st, rs) in &seen {
        assert_eq!(st, &status, "{path} disagrees on status: {seen:?}");
        assert_eq!(rs, &reasons, "{path} disagrees on reasons: {seen:?}");
    }
    (status, reasons)
}

#[tokio::test]
async fn every_health_surface_tells_the_same_story() {
    let upstream = crate::support::fake(keel_testkit::fake_llm::FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let s = start(&[("OPENAI_BASE_URL", &base)]).await;

    let (status, reasons) = agreed_verdict(&s).await;
    assert_eq!(status, json!("healthy"));
    assert_eq!(reasons, json!([]));

    let r = s
        .post(
            "/internal/resilience/circuit-breakers/openai:summarize/force-open",
            &json!({}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let (status, reasons) = agreed_verdict(&s).await;
    assert_eq!(status, json!("degraded"));
    assert_eq!(
        reasons,
        json!([{
            "component": "circuit_breakers",
            "status": "degraded",
            "code": "breaker_open",
            "message": "circuit breaker openai:summarize is forced open by an operator: calls skip this provider",
        }])
    );
    // The per-surface flags say the same thing.
    let v1 = s.get("/v1/health", None).await;
    assert_eq!(v1.body["resilience_healthy"], json!(false));
    assert_eq!(
        v1.body["checks"]["circuit_breakers"]["status"],
        json!("degraded")
    );
    assert_eq!(v1.body["checks"]["actors"]["status"], json!("healthy"));
    assert_eq!(
        v1.body["degraded_reasons"],
        json!([reasons[0]["message"].clone()])
    );
    let resilience = s.get("/internal/resilience/health", None).await;
    assert_eq!(resilience.body["healthy"], json!(false));
    assert_eq!(
        resilience.body["details"]["open_circuit_breakers"],
        json!(["openai:summarize"])
    );

    // Open the local fallback too: summarize has no provider left.
    s.post(
        "/internal/resilience/circuit-breakers/local:summarize/force-open",
        &json!({}),
        None,
    )
    .await;
    let (status, reasons) = agreed_verdict(&s).await;
    assert_eq!(status, json!("degraded"));
    let codes: Vec<&str> = reasons
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["breaker_open", "breaker_open", "operation_unavailable"]
    );

    for name in ["openai:summarize", "local:summarize"] {
        let r = s
            .post(
                &format!("/internal/resilience/circuit-breakers/{name}/reset"),
                &json!({}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (status, reasons) = agreed_verdict(&s).await;
    assert_eq!(status, json!("healthy"));
    assert_eq!(reasons, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engine_fails_liveness_and_ends_the_server() {
    let s = start(&[]).await;
    let engine = s.server.engine().clone();
    assert_eq!(s.get("/v1/health/live", None).await.status, 200);

    // Kill the metrics aggregator until the supervisor gives up (the
    // default policy allows 10 restarts a minute).
    let mut kills = 0;
    while engine.failure().is_none() {
        assert!(kills < 20, "the supervisor never gave up");
        let Some(actor) = engine.metrics_actor() else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let id = actor.get_id();
        actor.kill();
        kills += 1;
        // Wait for a restart (a new actor) or for the engine to die.
        for _ in 0..400 {
            let restarted = engine.metrics_actor().is_some_and(|a| {
                a.get_id() != id && a.get_status() == ractor::ActorStatus::Running
            });
            if restarted || engine.failure().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(kills, 11, "10 restarts allowed, the 11th failure is fatal");
    let why = engine.failure().unwrap();
    assert!(why.contains("metrics_aggregator"), "{why}");

    let live = s.get("/v1/health/live", None).await;
    assert_eq!(live.status, 503, "{}", live.body);
    assert_eq!(live.body["status"], json!("dead"));
    assert!(
        live.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("metrics_aggregator")),
        "{}",
        live.body
    );
    assert_eq!(s.get("/v1/health/ready", None).await.status, 503);
    let health = s.get("/v1/health", None).await;
    assert_eq!(health.body["status"], json!("unhealthy"), "{}", health.body);
    assert_eq!(health.body["reasons"][0]["code"], json!("engine_stopped"));

    // Nobody asked the server to stop: it ends by itself, with the failure,
    // and `keel serve` turns that into exit status 70.
    let outcome = tokio::time::timeout(Duration::from_secs(10), s.server.wait())
        .await
        .expect("the server ends by itself once the engine is dead");
    assert!(
        matches!(&outcome, Err(ServeError::EngineFailed(w)) if w.contains("metrics_aggregator")),
        "{outcome:?}"
    );
    assert_eq!(
        keel::cli::exit_code(&outcome),
        std::process::ExitCode::from(keel::cli::ENGINE_FAILED_EXIT)
    );
    assert_eq!(
        keel::cli::exit_code(&Ok(())),
        std::process::ExitCode::SUCCESS
    );
}

/// `GET /internal/metrics/history`: the series behind the dashboard's charts
/// fills from real traffic (a sample every 5 s), and a bad window is a 422
/// naming the query parameter.
#[tokio::test]
async fn metrics_history_records_real_traffic() {
    let s = start(&[]).await;
    let r = s.get("/internal/metrics/history?minutes=0", None).await;
    r.assert_error(422);
    assert_eq!(r.body["details"]["field"], json!("minutes"), "{}", r.body);
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["query", "minutes"]),
        "{}",
        r.body
    );
    s.get("/internal/metrics/history?minute=5", None)
        .await
        .assert_error(422);

    let r = s.get("/internal/metrics/history", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interval_seconds"], json!(5));
    assert_eq!(r.body["window_minutes"], json!(15), "default window");
    assert_eq!(r.body["retention_minutes"], json!(60));

    for _ in 0..3 {
        let r = s
            .process(json!({"text": crate::support::ARTICLE, "operation": "sentiment"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The jobs land in the first sample taken after them (at most 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let sample = loop {
        let r = s.get("/internal/metrics/history?minutes=1", None).await;
        let found = r.body["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["operations"]["sentiment"]["requests_per_second"].as_f64() > Some(0.0))
            .cloned();
        if let Some(x) = found {
            break x;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sample with the jobs: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let op = &sample["operations"]["sentiment"];
    assert_eq!(op["error_rate"], json!(0.0), "{sample}");
    assert!(op["p50_ms"].as_f64().is_some(), "{sample}");
    assert!(op["p99_ms"].as_f64() >= op["p50_ms"].as_f64(), "{sample}");
    assert_eq!(
        sample["operations"]["qa"]["error_rate"],
        Value::Null,
        "no qa jobs finished"
    );
    assert!(
        sample["breakers"]["local"]["closed"].as_u64() >= Some(1),
        "{sample}"
    );
}

/// Polls `/v1/health` until `done` holds for its body (at most 5 s).
async fn health_until(s: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get("/v1/health", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never showed {what}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The provider actor probes its upstream (a model-metadata GET) and
/// publishes the verdict: `ai_model_available`, the `provider_unreachable`
/// finding and the per-provider `upstream` reading follow the upstream, a
/// restarted actor keeps the reading, and probes are not completions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_model_available_follows_the_provider_actors_upstream_probe() {
    use keel::actors::provider::ProviderMsg;
    use keel::providers::{ProviderKind, Reachability};
    use keel_testkit::fake_llm::FakeLlmConfig;

    let upstream = crate::support::fake(FakeLlmConfig::default()).await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("PROVIDER_PROBE_INTERVAL_MS", "50"),
    ])
    .await;
    let upstream_of = |b: &Value| b["components"]["providers"][0]["upstream"].clone();

    let body = health_until(&s, "a reachable upstream", |b| {
        upstream_of(b)["state"] == "reachable"
    })
    .await;
    assert_eq!(body["status"], json!("healthy"), "{body}");
    assert_eq!(body["ai_model_available"], json!(true));
    assert!(upstream_of(&body)["checked_at"].is_string(), "{body}");
    let stats = upstream.stats();
    assert!(stats.probes >= 1, "{stats:?}");
    assert_eq!(stats.requests_total, 0, "a probe is not a completion");

    // The upstream starts refusing: the model is reported missing, with why.
    upstream.set_config(FakeLlmConfig {
        probe_status: 503,
        ..Default::default()
    });
    let body = health_until(&s, "the model missing", |b| {
        b["ai_model_available"] == json!(false)
    })
    .await;
    assert_eq!(body["status"], json!("degraded"), "{body}");
    let (_, reasons) = agreed_verdict(&s).await;
    assert_eq!(
        reasons,
        json!([{
            "component": "providers",
            "status": "degraded",
            "code": "provider_unreachable",
            "message": "provider openai failed its health probe (upstream answered HTTP 503): its calls may fail and fall back",
        }])
    );
    let reading = upstream_of(&body);
    assert_eq!(reading["state"], json!("unreachable"));
    assert_eq!(reading["last_error"], json!("upstream answered HTTP 503"));
    assert!(
        reading["consecutive_failures"].as_u64() >= Some(1),
        "{reading}"
    );

    // A restarted actor comes back with the published reading, not a blank one.
    let engine = s.server.engine().clone();
    let slot = engine.providers().get(ProviderKind::OpenAi).unwrap();
    ractor::ActorRef::<ProviderMsg>::from(slot.actor.clone().unwrap())
        .cast(ProviderMsg::Crash)
        .unwrap();
    let restarted = loop {
        let now = engine.providers().get(ProviderKind::OpenAi).unwrap();
        if now.generation > slot.generation {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(std::sync::Arc::ptr_eq(&restarted.health, &slot.health));
    assert_eq!(restarted.health.reachability(), Reachability::Unreachable);

    // Recovery, then the upstream gone altogether.
    upstream.set_config(FakeLlmConfig::default());
    let body = health_until(&s, "the model back", |b| {
        b["ai_model_available"] == json!(true) && b["status"] == json!("healthy")
    })
    .await;
    assert_eq!(upstream_of(&body)["consecutive_failures"], json!(0));
    assert_eq!(upstream_of(&body)["last_error"], Value::Null);
    upstream.shutdown().await;
    let body = health_until(&s, "the upstream gone", |b| {
        b["ai_model_available"] == json!(false)
    })
    .await;
    let error = upstream_of(&body)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(
        !error.contains(&base),
        "the upstream URL stays in the log: {error}"
    );
}

/// With `local` in the chain a model always answers: an unreachable primary
/// degrades the verdict but `ai_model_available` stays true.
#[tokio::test]
async fn an_unreachable_primary_with_a_local_fallback_keeps_the_model_available() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("PROVIDER_PROBE_INTERVAL_MS", "50"),
    ])
    .await;
    let body = health_until(&s, "the primary unreachable", |b| {
        b["components"]["providers"][0]["upstream"]["state"] == "unreachable"
    })
    .await;
    assert_eq!(body["status"], json!("degraded"), "{body}");
    assert_eq!(body["ai_model_available"], json!(true), "{body}");
    assert_eq!(body["reasons"][0]["code"], json!("provider_unreachable"));
    assert_eq!(
        body["components"]["providers"][1]["upstream"]["state"],
        json!("reachable"),
        "local has no upstream: always reachable"
    );
}
