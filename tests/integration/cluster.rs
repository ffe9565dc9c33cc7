//! One resilience picture for several instances: three real `keel serve`
//! processes on one real `redis-server`, calling one fake upstream. The
//! breaker transitions, the failure count, the half-open probe, operator
//! actions and the configuration switch are shared; without Redis each
//! instance keeps working on its own.

use crate::support::{KeelProcess, fake};
use keel_testkit::fake_llm::{FakeLlmConfig, FakeLlmHandle};
use keel_testkit::redis_server::RedisServer;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BREAKER: &str = "openai:sentiment";
const OPS: &str = "ops-key";

/// Three instances `a`, `b`, `c` on `redis`, calling `upstream` with one
/// attempt per request and a breaker threshold of 5.
async fn three(redis: &RedisServer, upstream: &FakeLlmHandle) -> [KeelProcess; 3] {
    let url = redis.url();
    let base = upstream.openai_base_url();
    let start = |id: &'static str| {
        let vars = [
            ("REDIS_URL", url.clone()),
            ("REDIS_TIMEOUT_MS", "500".to_string()),
            ("REDIS_COOLOFF_MS", "300".to_string()),
            ("JOB_INSTANCE_ID", id.to_string()),
            ("API_KEY", "alpha".to_string()),
            ("INTERNAL_API_KEY", OPS.to_string()),
            ("AI_PROVIDER", "openai".to_string()),
            ("OPENAI_BASE_URL", base.clone()),
            ("AI_FALLBACK_PROVIDERS", "none".to_string()),
            ("PROVIDER_TIMEOUT_SECONDS", "1".to_string()),
            ("CACHE_ENABLED", "false".to_string()),
            (
                "RESILIENCE_CUSTOM_CONFIG",
                r#"{"retry_attempts": 1, "circuit_breaker_threshold": 5, "recovery_timeout": 10}"#
                    .to_string(),
            ),
        ];
        async move {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            KeelProcess::start(&vars).await
        }
    };
    let (a, b, c) = tokio::join!(start("a"), start("b"), start("c"));
    let all = [a, b, c];
    for p in &all {
        wait_for(p, Duration::from_secs(5), |v| v["sharing"] == json!("live")).await;
    }
    all
}

/// Redis, an upstream failing every call, and [`three`] instances on them
/// (`None` when redis-server is missing and the test may skip).
async fn three_on_a_dead_upstream() -> Option<(RedisServer, FakeLlmHandle, [KeelProcess; 3])> {
    let redis = RedisServer::start()?;
    let upstream = fake(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let all = three(&redis, &upstream).await;
    Some((redis, upstream, all))
}

/// `GET /internal/cluster` on `p` until `ok` holds (panics after `within`).
async fn wait_for(p: &KeelProcess, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (status, body) = p.send(Method::GET, "/internal/cluster", OPS, None).await;
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(t0.elapsed() < within, "cluster view never matched: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /internal/resilience/circuit-breakers/{name}/{action}` (with an
/// optional `?scope=`) on `p`; asserts 200 and returns the scope answered.
async fn command(p: &KeelProcess, name: &str, action: &str) -> String {
    let (status, body) = p
        .send(
            Method::POST,
            &format!("/internal/resilience/circuit-breakers/{name}/{action}"),
            OPS,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["scope"].as_str().unwrap_or("?").to_string()
}

async fn breaker(p: &KeelProcess) -> Value {
    let (status, body) = p
        .send(
            Method::GET,
            &format!("/internal/resilience/circuit-breakers/{BREAKER}"),
            OPS,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn state(p: &KeelProcess) -> String {
    breaker(p).await["state"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// Polls until every instance's breaker is in `want`; the time it took.
async fn all_in(ps: &[&KeelProcess], want: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let mut states = Vec::new();
        for p in ps {
            states.push(state(p).await);
        }
        if states.iter().all(|s| s == want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "not all {want} within {within:?}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sentiment(p: &KeelProcess, i: usize) -> (u16, Value) {
    p.send(
        Method::POST,
        "/v1/text_processing/process",
        "alpha",
        Some(&json!({"operation": "sentiment", "text": format!("Request {i} is fine.")})),
    )
    .await
}

/// Milliseconds of an RFC 3339 timestamp.
fn ms(at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|e| panic!("bad timestamp {at}: {e}"))
}

/// The time of the last transition of `p`'s breaker to `to`.
async fn last_transition_to(p: &KeelProcess, to: &str) -> (i64, String) {
    let b = breaker(p).await;
    let t = b["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["to"] == json!(to))
        .unwrap_or_else(|| panic!("no transition to {to}: {b}"))
        .clone();
    (
        ms(t["at"].as_str().unwrap()),
        t["origin"].as_str().unwrap().to_string(),
    )
}

/// Sends one request to every instance at once, `per` times each; the
/// statuses.
async fn burst(ps: &[&KeelProcess], per: usize) -> Vec<u16> {
    let mut calls = Vec::new();
    for (n, p) in ps.iter().enumerate() {
        for i in 0..per {
            calls.push(sentiment(p, 1000 + n * 100 + i));
        }
    }
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_open_together_and_share_one_probe_per_recovery() {
    let Some((_redis, upstream, [a, b, c])) = three_on_a_dead_upstream().await else {
        return;
    };
    let all = [&a, &b, &c];

    // Sequential requests, round-robin: the shared count opens every
    // breaker after about `threshold` failures in total, not 3 × threshold.
    for i in 0..15 {
        let (status, body) = sentiment(all[i % 3], i).await;
        assert!(status >= 500, "the upstream is down: {status} {body}");
    }
    let calls = upstream.stats().requests_total;
    assert!(
        (5..=7).contains(&calls),
        "upstream calls until all three are open: {calls} (want ≤ 5 + 2)"
    );
    all_in(&all, "open", Duration::from_secs(1)).await;
    let mut opened = Vec::new();
    for p in all {
        opened.push(last_transition_to(p, "open").await);
    }
    let first = opened.iter().map(|(t, _)| *t).min().unwrap();
    let last = opened.iter().map(|(t, _)| *t).max().unwrap();
    assert!(
        last - first <= 100,
        "all three open within 100 ms of the first: {opened:?}"
    );
    assert_eq!(
        opened.iter().filter(|(_, o)| o == "local").count(),
        1,
        "one instance opened, the others followed it: {opened:?}"
    );
    assert!(
        opened.iter().any(|(_, o)| o.starts_with("remote:")),
        "{opened:?}"
    );

    // Recovery 1: the upstream is still down. Exactly one probe reaches it
    // cluster-wide, and on its failure all three re-open.
    upstream.reset_stats();
    tokio::time::sleep(Duration::from_millis(10_400)).await;
    let statuses = burst(&all, 3).await;
    assert_eq!(
        upstream.stats().requests_total,
        1,
        "one probe per recovery, cluster-wide (statuses {statuses:?})"
    );
    all_in(&all, "open", Duration::from_secs(1)).await;
    let reopened = last_transition_to(&b, "open").await.0;
    assert!(
        reopened > last,
        "re-opened after the failed probe, not the first opening"
    );

    // Recovery 2: the upstream is back. One probe, then all three close.
    upstream.set_config(FakeLlmConfig {
        latency_ms: 200,
        ..Default::default()
    });
    upstream.reset_stats();
    tokio::time::sleep(Duration::from_millis(10_400)).await;
    let statuses = burst(&all, 3).await;
    assert_eq!(
        upstream.stats().requests_total,
        1,
        "one probe per recovery, cluster-wide (statuses {statuses:?})"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    all_in(&all, "closed", Duration::from_secs(1)).await;
    for (i, p) in all.iter().enumerate() {
        let (status, body) = sentiment(p, 5000 + i).await;
        assert_eq!(status, 200, "closed everywhere: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_killed_mid_probe_hands_the_probe_to_another_instance() {
    let Some((_redis, upstream, [a, b, c])) = three_on_a_dead_upstream().await else {
        return;
    };
    let mut all = vec![a, b, c];
    for i in 0..9 {
        sentiment(&all[i % 3], i).await;
    }
    all_in(
        &all.iter().collect::<Vec<_>>(),
        "open",
        Duration::from_secs(1),
    )
    .await;

    // The probe hangs; kill its instance while it runs.
    upstream.set_config(FakeLlmConfig {
        hang_rate: 1.0,
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_millis(10_300)).await;
    let mut prober = None;
    let t0 = Instant::now();
    while prober.is_none() {
        for (i, p) in all.iter().enumerate() {
            let b = breaker(p).await;
            if b["state"] == json!("half_open") && b.get("probe_on").is_none() {
                prober = Some(i);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let prober = prober.unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != prober).collect();
    let probe = {
        let base = all[prober].base.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/text_processing/process"))
                .bearer_auth("alpha")
                .json(&json!({"operation": "sentiment", "text": "The probe hangs."}))
                .send()
                .await
        })
    };
    let t0 = Instant::now();
    while upstream.stats().in_flight == 0 {
        assert!(t0.elapsed() < Duration::from_secs(2), "the probe never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The others refuse while the probe runs elsewhere.
    let (status, body) = sentiment(&all[others[0]], 77).await;
    assert_eq!(status, 503, "{body}");
    let mut dead = all.remove(prober);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let _ = probe.await;
    upstream.set_config(FakeLlmConfig::default());
    upstream.reset_stats();

    // After the lease (the 1 s call timeout) another instance probes, and
    // both survivors close.
    let t0 = Instant::now();
    let mut answered = false;
    while !answered {
        for (i, p) in all.iter().enumerate() {
            if sentiment(p, 100 + i).await.0 == 200 {
                answered = true;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "no instance took over the probe"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "the lease was respected"
    );
    all_in(
        &all.iter().collect::<Vec<_>>(),
        "closed",
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_and_the_config_switch_reach_every_instance() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let upstream = fake(FakeLlmConfig::default()).await;
    let [a, b, c] = three(&redis, &upstream).await;
    let all = [&a, &b, &c];

    // Force-open on a: b and c refuse within 100 ms.
    let t0 = Instant::now();
    assert_eq!(command(&a, BREAKER, "force-open").await, "cluster");
    loop {
        let (sb, _) = sentiment(&b, 1).await;
        let (sc, _) = sentiment(&c, 2).await;
        if sb == 503 && sc == 503 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(100),
            "b and c still answer {sb}/{sc} after {:?}",
            t0.elapsed()
        );
    }
    let (_, origin) = last_transition_to(&c, "forced_open").await;
    assert_eq!(origin, "remote:a");
    // The metrics name the origin too: operator on a, remote on c.
    let http = reqwest::Client::new();
    for (p, origin) in [(&a, "operator"), (&c, "remote")] {
        let text = http
            .get(format!("{}/internal/metrics", p.base))
            .bearer_auth(OPS)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!(
            "keel_breaker_transitions_total{{breaker=\"{BREAKER}\",to=\"forced_open\",origin=\"{origin}\"}} 1"
        );
        assert!(text.contains(&series), "{}: {text}", p.base);
        assert!(text.contains("keel_cluster_sharing_live 1"), "{text}");
    }
    // Every instance shows the same picture.
    for p in all {
        let view = wait_for(p, Duration::from_secs(3), |v| {
            v["instances"].as_array().is_some_and(|i| {
                i.len() == 3
                    && i.iter()
                        .all(|i| i["breakers"][BREAKER] == json!("forced_open"))
            })
        })
        .await;
        assert_eq!(view["agreed"], json!(true), "{view}");
    }
    // Instance scope: only b changes, and the cluster view says so.
    assert_eq!(
        command(&b, BREAKER, "reset?scope=instance").await,
        "instance"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state(&a).await, "forced_open");
    assert_eq!(state(&b).await, "closed");
    let view = wait_for(&c, Duration::from_secs(3), |v| v["agreed"] == json!(false)).await;
    assert_eq!(view["disagreements"][0]["instance"], json!("b"), "{view}");
    // A cluster reset sent to b, already closed there, still reaches a and c.
    command(&b, BREAKER, "reset").await;
    all_in(&all, "closed", Duration::from_millis(500)).await;

    // A configuration switch on a is in force on all three: the upstream
    // sees three attempts per request from b and c.
    let (status, body) = a
        .send(
            Method::PUT,
            "/internal/resilience/config",
            OPS,
            Some(&json!({"custom_config": {"retry_attempts": 3, "circuit_breaker_threshold": 20,
                                            "exponential_min": 0.5, "exponential_max": 5.0,
                                            "exponential_multiplier": 0.1, "jitter_enabled": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], json!("cluster"));
    // The answer says every instance acknowledged the new version.
    assert_eq!(
        body["instances"]["applied"],
        json!(["a", "b", "c"]),
        "{body}"
    );
    assert_eq!(body["instances"]["pending"], json!([]), "{body}");
    let version = body["config_version"].clone();
    for p in all {
        wait_for(p, Duration::from_secs(3), |v| {
            v["instances"]
                .as_array()
                .is_some_and(|i| i.len() == 3 && i.iter().all(|i| i["config_version"] == version))
        })
        .await;
    }
    upstream.set_config(FakeLlmConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    for p in [&b, &c] {
        upstream.reset_stats();
        let (status, _) = sentiment(p, 9).await;
        assert!(status >= 500);
        assert_eq!(upstream.stats().requests_total, 3, "three attempts");
    }
    let (_, cfg) = c
        .send(Method::GET, "/internal/resilience/config", OPS, None)
        .await;
    assert!(
        cfg["last_change"]["by"]
            .as_str()
            .is_some_and(|by| by.ends_with("(on a)")),
        "{cfg}"
    );

    // Redis killed under load: no request fails because of it, actions are
    // local (and say so); Redis back: the instances re-join and share again.
    upstream.set_config(FakeLlmConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut load = Vec::new();
    for (n, p) in all.iter().enumerate() {
        let base = p.base.clone();
        let stop = stop_rx.clone();
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut bad) = (0u32, Vec::new());
            let mut i = 0;
            while !*stop.borrow() {
                i += 1;
                let r = client
                    .post(format!("{base}/v1/text_processing/process"))
                    .bearer_auth("alpha")
                    .json(&json!({"operation": "sentiment", "text": format!("Load {n} {i} is fine.")}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 200 {
                    ok += 1;
                } else {
                    bad.push(r.status().as_u16());
                }
            }
            (ok, bad)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    for p in all {
        wait_for(p, Duration::from_secs(3), |v| {
            v["sharing"] == json!("local")
        })
        .await;
    }
    assert_eq!(
        command(&a, "openai:summarize", "force-open").await,
        "instance",
        "Redis is gone"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    for p in all {
        wait_for(p, Duration::from_secs(5), |v| v["sharing"] == json!("live")).await;
    }
    stop_tx.send(true).unwrap();
    for task in load {
        let (ok, bad) = task.await.unwrap();
        assert!(ok > 10, "load ran: {ok}");
        assert!(bad.is_empty(), "requests failed with Redis gone: {bad:?}");
    }
    // The local action stayed local; a cluster action reaches everyone again.
    assert_eq!(
        b.send(
            Method::GET,
            "/internal/resilience/circuit-breakers/openai:summarize",
            OPS,
            None
        )
        .await
        .1["state"],
        json!("closed")
    );
    assert_eq!(command(&b, BREAKER, "force-open").await, "cluster");
    all_in(&all, "forced_open", Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_sharing_off_keeps_each_instance_on_its_own() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("BREAKER_SHARING", "off"),
        ("INTERNAL_API_KEY", OPS),
        ("API_KEY", "alpha"),
    ];
    let (a, b) = tokio::join!(KeelProcess::start(&vars), KeelProcess::start(&vars));
    assert_eq!(
        command(&a, "local:sentiment", "force-open").await,
        "instance"
    );
    let (_, view) = b.send(Method::GET, "/internal/cluster", OPS, None).await;
    assert_eq!(view["sharing"], json!("off"), "{view}");
    assert_eq!(view["instances"].as_array().map(Vec::len), Some(1));
    let (_, other) = b
        .send(
            Method::GET,
            "/internal/resilience/circuit-breakers/local:sentiment",
            OPS,
            None,
        )
        .await;
    assert_eq!(other["state"], json!("closed"));
}
