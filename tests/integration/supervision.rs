//! Supervision: killing actors under traffic does not fail requests; the
//! restart is counted and a new client is published. Also load shedding.

use crate::support::{ARTICLE, start};
use futures::StreamExt;
use keel::actors::provider::ProviderMsg;
use keel::providers::ProviderKind;
use keel_testkit::fake_llm::FakeLlmConfig;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_provider_actor_mid_traffic_loses_no_request() {
    let upstream = crate::support::fake(FakeLlmConfig {
        latency_ms: 5,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
    ])
    .await;
    let engine = s.server.engine().clone();
    let before = engine
        .providers()
        .get(ProviderKind::OpenAi)
        .unwrap()
        .generation;

    let url = s.url("/v1/text_processing/process");
    let client = s.client.clone();
    let traffic = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let bodies = (0..160).map(
            |i| json!({"text": format!("{ARTICLE} Request number {i}."), "operation": "sentiment"}),
        );
        let mut stream = futures::stream::iter(bodies)
            .map(|b| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .post(&url)
                        .json(&b)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                }
            })
            .buffer_unordered(8);
        while let Some(r) = stream.next().await {
            statuses.push(r.expect("request completes"));
        }
        statuses
    });

    // Kill the provider actor twice while traffic flows: once by a crash
    // (error in its handler), once by a hard kill.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let slot = engine.providers().get(ProviderKind::OpenAi).unwrap();
    // The slot holds the provider actor's untyped cell.
    ractor::ActorRef::<ProviderMsg>::from(slot.actor.clone().unwrap())
        .cast(ProviderMsg::Crash)
        .unwrap();
    wait_for_generation(&engine, before + 1).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let slot = engine.providers().get(ProviderKind::OpenAi).unwrap();
    slot.actor.as_ref().unwrap().kill();
    wait_for_generation(&engine, before + 2).await;

    let statuses = traffic.await.unwrap();
    assert_eq!(statuses.len(), 160);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(engine.metrics().restarts("provider:openai"), 2);
    assert!(engine.actors_alive());
    let info = engine
        .describe_provider(ProviderKind::OpenAi)
        .await
        .unwrap();
    assert_eq!(info.generation, before + 2);

    let health = s.get("/v1/health", None).await;
    assert_eq!(
        health.body["components"]["actors"]["restarts"]["provider:openai"],
        json!(2)
    );
}

async fn wait_for_generation(engine: &keel::engine::Engine, generation: u64) {
    for _ in 0..200 {
        if engine
            .providers()
            .get(ProviderKind::OpenAi)
            .unwrap()
            .generation
            >= generation
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("provider actor was not restarted to generation {generation}");
}

#[tokio::test]
async fn the_metrics_aggregator_is_restarted_too() {
    let s = start(&[]).await;
    let engine = s.server.engine().clone();
    let r = s
        .process(json!({"text": ARTICLE, "operation": "sentiment"}))
        .await;
    assert_eq!(r.status, 200);
    let snapshot = engine.metrics_snapshot().await.expect("aggregator answers");
    let sentiment = snapshot
        .operations
        .iter()
        .find(|o| o.operation == keel::job::Operation::Sentiment)
        .unwrap();
    assert_eq!(sentiment.requests, 1);
    assert_eq!(sentiment.succeeded, 1);

    engine.metrics_actor().expect("aggregator running").kill();
    for _ in 0..200 {
        if engine.metrics().restarts("metrics_aggregator") == 1 && engine.actors_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.metrics().restarts("metrics_aggregator"), 1);
    // Counters live outside the actor, so nothing was lost.
    let snapshot = engine
        .metrics_snapshot()
        .await
        .expect("restarted aggregator answers");
    let sentiment = snapshot
        .operations
        .iter()
        .find(|o| o.operation == keel::job::Operation::Sentiment)
        .unwrap();
    assert_eq!(sentiment.requests, 1);
    assert_eq!(
        s.process(json!({"text": ARTICLE, "operation": "sentiment"}))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_load_is_shed_with_503_json() {
    let upstream = crate::support::fake(FakeLlmConfig {
        latency_ms: 300,
        ..Default::default()
    })
    .await;
    let base = upstream.openai_base_url();
    let s = start(&[
        ("OPENAI_BASE_URL", &base),
        ("AI_FALLBACK_PROVIDERS", "none"),
        ("MAX_CONCURRENT_REQUESTS", "2"),
    ])
    .await;
    let body = json!({"text": ARTICLE, "operation": "sentiment"});
    let replies = futures::future::join_all(
        (0..6).map(|_| s.post("/v1/text_processing/process", &body, None)),
    )
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let shed: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 2, "the admitted requests succeed");
    assert!(!shed.is_empty(), "some requests are shed");
    for r in shed {
        assert_eq!(r.assert_error(503), "SERVICE_UNAVAILABLE");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
}

/// The cluster sync is a supervised actor: killed under traffic, it is
/// restarted, its tasks come back (remote transitions reach the instance
/// again) and no request fails meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_cluster_sync_restarts_it_and_sharing_resumes() {
    let Some(redis) = keel_testkit::redis_server::RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "1000"),
        ("INTERNAL_API_KEY", "ops"),
    ];
    let a = start(&[&vars[..], &[("JOB_INSTANCE_ID", "a")]].concat()).await;
    let b = start(&[&vars[..], &[("JOB_INSTANCE_ID", "b")]].concat()).await;
    let engine = a.server.engine().clone();
    let cluster = engine.cluster().expect("breakers are shared").clone();
    let live = |c: &keel::cluster::Cluster| c.is_live();
    for _ in 0..100 {
        if live(&cluster) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live(&cluster), "a never joined the cluster");

    let url = a.url("/v1/text_processing/process");
    let client = a.client.clone();
    let traffic = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for i in 0..60 {
            let r = client
                .post(&url)
                .json(&json!({"text": format!("{ARTICLE} Number {i}."), "operation": "summarize"}))
                .send()
                .await
                .map(|r| r.status().as_u16());
            statuses.push(r.expect("request completes"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        statuses
    });

    engine.cluster_sync_actor().expect("sync running").kill();
    for _ in 0..200 {
        if engine.metrics().restarts("cluster_sync") == 1 && engine.actors_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.metrics().restarts("cluster_sync"), 1);
    for _ in 0..150 {
        if live(&cluster) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live(&cluster), "sharing did not resume after the restart");

    // A transition on b reaches a through the restarted subscriber.
    let r = b
        .client
        .post(b.url("/internal/resilience/circuit-breakers/local:sentiment/force-open"))
        .bearer_auth("ops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let breaker = engine
        .resilience()
        .breakers()
        .iter()
        .find(|x| x.name() == "local:sentiment")
        .cloned()
        .expect("local:sentiment exists");
    let mut state = breaker.state();
    for _ in 0..100 {
        state = breaker.state();
        if state == keel::resilience::breaker::BreakerState::ForcedOpen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, keel::resilience::breaker::BreakerState::ForcedOpen);

    let statuses = traffic.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
