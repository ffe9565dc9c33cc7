//! Behaviour tests of the [`Cache`] facade: memory-only (paused tokio clock
//! for TTLs) and over a real `redis-server` (skipped when none is installed).

use super::*;
use crate::job::{Job, JobOptions, JobOutput, Sentiment, SentimentLabel};
use crate::redis_link::RedisLinkOptions;
use keel_testkit::redis_server::RedisServer;
use tokio::time::Instant;

fn job(op: Operation, text: &str) -> Job {
    Job {
        operation: op,
        text: text.into(),
        question: (op == Operation::Qa).then(|| "What does it say?".to_string()),
        options: JobOptions::default(),
    }
}

fn key(op: Operation, text: &str) -> CacheKey {
    CacheKey::new(&job(op, text), "openai", "gpt-test")
}

fn output(op: Operation, text: &str) -> JobOutput {
    match op {
        Operation::Summarize => JobOutput::Summary { text: text.into() },
        Operation::Sentiment => JobOutput::Sentiment(Sentiment {
            sentiment: SentimentLabel::Neutral,
            confidence: 0.5,
            explanation: text.into(),
        }),
        Operation::KeyPoints => JobOutput::KeyPoints {
            points: vec![text.into()],
        },
        Operation::Questions => JobOutput::Questions {
            questions: vec![format!("{text}?")],
        },
        Operation::Qa => JobOutput::Answer {
            text: text.into(),
            confidence: Some(0.8),
        },
    }
}

fn answer(op: Operation, text: &str) -> CachedAnswer {
    CachedAnswer {
        output: output(op, text),
        provider: "openai".into(),
        model: "gpt-test".into(),
        stored_at_unix_ms: 1_700_000_000_000,
    }
}

fn memory_cache() -> Cache {
    Cache::new(CacheConfig::default(), None)
}

async fn put(cache: &Cache, op: Operation, text: &str) -> CacheKey {
    let k = key(op, text);
    cache.put(&k, op, answer(op, text)).await;
    k
}

// ---------------------------------------------------------------- memory only

#[test]
fn the_cache_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Cache>();
    send_sync::<SingleFlight<CacheKey, Option<CachedAnswer>>>();
    let cache = memory_cache();
    let k = key(Operation::Sentiment, "A text for the Send check.");
    send(&cache.get(&k));
    send(&cache.put(&k, Operation::Sentiment, answer(Operation::Sentiment, "x")));
    send(&cache.stats());
}

#[tokio::test]
async fn repeat_gets_hit_and_stats_count_gets_only() {
    let cache = memory_cache();
    let k = key(
        Operation::Summarize,
        "Rust is a systems programming language.",
    );
    assert_eq!(cache.get(&k).await, None);
    cache
        .put(
            &k,
            Operation::Summarize,
            answer(Operation::Summarize, "Rust."),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(
            cache.get(&k).await,
            Some(answer(Operation::Summarize, "Rust."))
        );
    }
    let s = cache.stats().await;
    assert_eq!(
        (s.hits, s.misses, s.memory_hits, s.redis_hits),
        (3, 1, 3, 0)
    );
    assert_eq!(s.hit_rate, 0.75);
    assert_eq!((s.puts, s.puts_rejected), (1, 0));
    assert_eq!(s.memory.entries, 1);
    assert!(s.memory.bytes > ENTRY_OVERHEAD);
    assert!(s.redis.is_none());
    // Serialisable for the operator API.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["memory"]["entries"], 1);
}

#[tokio::test]
async fn keys_normalise_whitespace_and_ignore_irrelevant_options() {
    let cache = memory_cache();
    put(&cache, Operation::Summarize, "Rust is  fast.\n\nAnd safe.").await;

    let mut other = job(Operation::Summarize, "Rust is fast. And safe.");
    other.options.max_points = 1;
    other.options.num_questions = 9;
    let k = CacheKey::new(&other, "openai", "gpt-test");
    assert!(
        cache.get(&k).await.is_some(),
        "same job modulo whitespace and irrelevant options"
    );

    other.options.max_length = 20;
    let k = CacheKey::new(&other, "openai", "gpt-test");
    assert!(
        cache.get(&k).await.is_none(),
        "max_length matters to summarize"
    );
}

#[tokio::test]
async fn question_provider_and_model_change_the_key() {
    let cache = memory_cache();
    let text = "The meeting is on Tuesday at noon in room 4.";
    let base = job(Operation::Qa, text);
    let k = CacheKey::new(&base, "openai", "gpt-test");
    cache
        .put(&k, Operation::Qa, answer(Operation::Qa, "Tuesday"))
        .await;
    assert!(cache.get(&k).await.is_some());

    let mut asked = base.clone();
    asked.question = Some("Where is the meeting?".into());
    assert!(
        cache
            .get(&CacheKey::new(&asked, "openai", "gpt-test"))
            .await
            .is_none()
    );
    assert!(
        cache
            .get(&CacheKey::new(&base, "gemini", "gpt-test"))
            .await
            .is_none()
    );
    assert!(
        cache
            .get(&CacheKey::new(&base, "openai", "gpt-other"))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn ttls_follow_the_operation_on_tokio_time() {
    let cache = memory_cache();
    assert_eq!(cache.ttl_for(Operation::Qa), Duration::from_secs(1800));
    assert_eq!(
        cache.ttl_for(Operation::Sentiment),
        Duration::from_secs(86_400)
    );
    let qa = put(&cache, Operation::Qa, "A text about qa that will expire.").await;
    let sentiment = put(
        &cache,
        Operation::Sentiment,
        "A text about sentiment that stays.",
    )
    .await;
    let questions = put(
        &cache,
        Operation::Questions,
        "A text about questions: 1 hour.",
    )
    .await;

    tokio::time::advance(Duration::from_secs(1799)).await;
    assert!(cache.get(&qa).await.is_some());

    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(cache.get(&qa).await.is_none(), "qa expires after 1800 s");
    assert!(
        cache.get(&sentiment).await.is_some(),
        "sentiment lives 24 h"
    );
    assert!(cache.get(&questions).await.is_some());

    tokio::time::advance(Duration::from_secs(3600 - 1801 + 1)).await;
    assert!(
        cache.get(&questions).await.is_none(),
        "questions expire after 3600 s"
    );
    tokio::time::advance(Duration::from_secs(86_400 - 3601 - 1)).await;
    assert!(cache.get(&sentiment).await.is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        cache.get(&sentiment).await.is_none(),
        "sentiment expires after 86400 s"
    );
    assert_eq!(cache.stats().await.memory.expirations, 3);
}

#[tokio::test]
async fn entry_bound_evicts_and_counts() {
    let config = CacheConfig {
        memory_max_entries: 5,
        ..CacheConfig::default()
    };
    let cache = Cache::new(config, None);
    let mut keys = Vec::new();
    for i in 0..8 {
        keys.push(
            put(
                &cache,
                Operation::Summarize,
                &format!("Text number {i} for the bound."),
            )
            .await,
        );
    }
    let s = cache.stats().await;
    assert_eq!((s.memory.entries, s.memory.evictions), (5, 3));
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(cache.get(k).await.is_some(), i >= 3, "entry {i}");
    }
}

#[tokio::test]
async fn byte_bound_evicts() {
    let long = "word ".repeat(400); // ~2 KB of JSON per entry
    let config = CacheConfig {
        memory_max_bytes: 5_000,
        ..CacheConfig::default()
    };
    let cache = Cache::new(config, None);
    for i in 0..5 {
        let k = key(
            Operation::Summarize,
            &format!("Text {i} for the byte bound."),
        );
        cache
            .put(
                &k,
                Operation::Summarize,
                answer(Operation::Summarize, &long),
            )
            .await;
    }
    let s = cache.stats().await;
    assert_eq!(s.memory.entries, 2, "{s:?}");
    assert_eq!(s.memory.evictions, 3);
    assert!(s.memory.bytes <= 5_000 && s.memory.bytes > 4_000, "{s:?}");
}

#[tokio::test]
async fn invalidation_by_operation_and_pattern_and_clear() {
    let cache = memory_cache();
    let mut summaries = Vec::new();
    for i in 0..4 {
        summaries.push(
            put(
                &cache,
                Operation::Summarize,
                &format!("Summary text {i} here."),
            )
            .await,
        );
    }
    let sentiment = put(&cache, Operation::Sentiment, "A sentiment text here.").await;
    let qa = put(&cache, Operation::Qa, "A qa text right here.").await;

    let report = cache.invalidate_operation(Operation::Summarize).await;
    assert_eq!(report.memory_removed, 4);
    assert_eq!(report.redis_removed, None);
    assert_eq!(report.pattern, "summarize:*");
    for k in &summaries {
        assert!(cache.get(k).await.is_none());
    }
    assert!(cache.get(&sentiment).await.is_some() && cache.get(&qa).await.is_some());

    let report = cache.invalidate_pattern("s?ntiment:*").await.unwrap();
    assert_eq!(report.memory_removed, 1);
    assert!(cache.get(&sentiment).await.is_none());

    // By hash prefix: the one qa entry.
    let by_hash = format!("{}*", &qa.suffix()[..10]);
    assert_eq!(
        cache
            .invalidate_pattern(&by_hash)
            .await
            .unwrap()
            .memory_removed,
        1
    );

    put(&cache, Operation::Qa, "Another qa text here.").await;
    put(&cache, Operation::KeyPoints, "A key points text here.").await;
    assert_eq!(
        cache
            .invalidate_pattern("nothing:*")
            .await
            .unwrap()
            .memory_removed,
        0
    );
    let report = cache.clear().await;
    assert_eq!(report.memory_removed, 2);
    assert_eq!(cache.stats().await.memory.entries, 0);

    assert!(matches!(
        cache.invalidate_pattern("*the text*").await,
        Err(InvalidPattern::BadChar { ch: ' ', .. })
    ));
    assert_eq!(
        cache.invalidate_pattern("").await,
        Err(InvalidPattern::Empty)
    );
}

#[tokio::test]
async fn empty_and_mismatched_answers_are_not_stored() {
    let cache = memory_cache();
    let k = key(Operation::Summarize, "A text whose answer is empty.");
    cache
        .put(&k, Operation::Summarize, answer(Operation::Summarize, "  "))
        .await;
    cache
        .put(
            &k,
            Operation::Summarize,
            answer(Operation::Qa, "wrong kind"),
        )
        .await;
    cache
        .put(&k, Operation::Qa, answer(Operation::Qa, "wrong key"))
        .await;
    let kp = key(Operation::KeyPoints, "A text whose answer is empty.");
    let none = CachedAnswer {
        output: JobOutput::KeyPoints { points: vec![] },
        ..answer(Operation::KeyPoints, "x")
    };
    cache.put(&kp, Operation::KeyPoints, none).await;
    assert!(cache.get(&k).await.is_none() && cache.get(&kp).await.is_none());
    let s = cache.stats().await;
    assert_eq!((s.puts, s.puts_rejected, s.memory.entries), (0, 4, 0));
    assert!(should_store(false) && !should_store(true));
}

#[tokio::test]
async fn a_disabled_cache_stores_nothing() {
    let config = CacheConfig {
        enabled: false,
        ..CacheConfig::default()
    };
    let cache = Cache::new(config, None);
    let k = put(&cache, Operation::Summarize, "A text for a disabled cache.").await;
    assert!(cache.get(&k).await.is_none());
    let s = cache.stats().await;
    assert!(!s.enabled);
    assert_eq!((s.hits, s.misses, s.puts, s.memory.entries), (0, 0, 0, 0));
}

// ---------------------------------------------------------------- with Redis

fn link(server: &RedisServer, timeout_ms: u64, cooloff_ms: u64) -> Arc<RedisLink> {
    let options = RedisLinkOptions {
        timeout: Duration::from_millis(timeout_ms),
        cooloff: Duration::from_millis(cooloff_ms),
    };
    Arc::new(RedisLink::new(&server.url(), options).unwrap())
}

/// A cache over `server` with a generous timeout (tests share 2 cores).
fn redis_cache(server: &RedisServer) -> Cache {
    Cache::new(CacheConfig::default(), Some(link(server, 1000, 1000)))
}

#[tokio::test]
async fn a_redis_hit_on_another_instance_warms_its_memory() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = redis_cache(&server);
    let b = redis_cache(&server);
    let long = "A long summary sentence that repeats itself. ".repeat(60);
    let k = key(
        Operation::Summarize,
        "A text both instances are asked about.",
    );
    a.put(
        &k,
        Operation::Summarize,
        answer(Operation::Summarize, &long),
    )
    .await;

    let got = b.get(&k).await.expect("hit from the shared Redis tier");
    assert_eq!(got, answer(Operation::Summarize, &long));
    let s = b.stats().await;
    assert_eq!((s.redis_hits, s.memory_hits, s.memory.entries), (1, 0, 1));
    assert!(b.memory.remaining_ttl(k.as_str()).unwrap() <= Duration::from_secs(7200));

    assert_eq!(b.get(&k).await, Some(got));
    let s = b.stats().await;
    assert_eq!(
        (s.redis_hits, s.memory_hits),
        (1, 1),
        "second get served by warmed memory"
    );
    let redis = s.redis.unwrap();
    assert_eq!(redis.link.status, "connected");
    assert_eq!((redis.keys, redis.keys_exact), (Some(1), true));
    assert!(redis.ping_ms.is_some());

    // The value in Redis is compressed (JSON > 1000 bytes) and expires.
    let inspect = link(&server, 1000, 1000);
    let raw: Vec<u8> = inspect
        .query(redis::cmd("GET").arg(k.as_str()))
        .await
        .unwrap();
    assert_eq!(raw[0], b'z');
    assert!(raw.len() < long.len() / 4);
    let ttl: i64 = inspect
        .query(redis::cmd("TTL").arg(k.as_str()))
        .await
        .unwrap();
    assert!((7100..=7200).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_warmed_entry_keeps_the_remaining_redis_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = redis_cache(&server);
    let b = redis_cache(&server);
    let k = put(&a, Operation::Qa, "A text about the remaining lifetime.").await;
    let inspect = link(&server, 1000, 1000);
    inspect
        .query::<()>(redis::cmd("EXPIRE").arg(k.as_str()).arg(60))
        .await
        .unwrap();
    assert!(b.get(&k).await.is_some());
    let left = b.memory.remaining_ttl(k.as_str()).unwrap();
    assert!(
        left <= Duration::from_secs(60) && left > Duration::from_secs(55),
        "{left:?}"
    );
}

#[tokio::test]
async fn invalidation_over_redis_scans_in_batches() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis_link = link(&server, 1000, 1000);
    let a = Cache::new(CacheConfig::default(), Some(Arc::clone(&redis_link)));
    let b = redis_cache(&server);
    for i in 0..700 {
        put(
            &a,
            Operation::Summarize,
            &format!("Summary text number {i}."),
        )
        .await;
    }
    for i in 0..600 {
        put(
            &a,
            Operation::Sentiment,
            &format!("Sentiment text number {i}."),
        )
        .await;
    }
    for i in 0..30 {
        put(&a, Operation::Qa, &format!("Qa text number {i}.")).await;
    }
    // Unrelated data in the same database survives everything below.
    let inspect = link(&server, 1000, 1000);
    inspect
        .query::<()>(redis::cmd("SET").arg("other:summarize:x").arg("1"))
        .await
        .unwrap();
    let sample = key(Operation::Sentiment, "Sentiment text number 7.");
    assert!(
        b.get(&sample).await.is_some(),
        "B warmed one sentiment entry"
    );

    let before = redis_link.status().commands;
    let report = a.invalidate_operation(Operation::Summarize).await;
    let commands = redis_link.status().commands - before;
    assert_eq!(report.memory_removed, 700);
    assert_eq!(report.redis_removed, Some(700));
    assert_eq!(report.redis_error, None);
    assert!(
        commands >= 4,
        "1330 keys / COUNT 500 = several SCAN pages ({commands} commands)"
    );

    // B's memory copy is its own: invalidation on A reaches Redis, not B.
    let report = b.invalidate_pattern("sentiment:*").await.unwrap();
    assert_eq!(
        (report.memory_removed, report.redis_removed),
        (1, Some(600))
    );
    assert!(
        a.get(&sample).await.is_some(),
        "A's memory tier still has it"
    );
    let report = a.invalidate_pattern("sentiment:*").await.unwrap();
    assert_eq!(
        (report.memory_removed, report.redis_removed),
        (600, Some(0))
    );

    let stats = a.stats().await;
    assert_eq!(stats.redis.unwrap().keys, Some(30));
    let report = a.clear().await;
    assert_eq!(
        (report.memory_removed, report.redis_removed),
        (30, Some(30))
    );
    let dbsize: u64 = inspect.query(&redis::cmd("DBSIZE")).await.unwrap();
    assert_eq!(dbsize, 1, "only the unrelated key is left");
}

#[tokio::test]
async fn a_corrupt_redis_value_is_a_miss_and_is_overwritten() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = redis_cache(&server);
    let inspect = link(&server, 1000, 1000);
    let k = key(
        Operation::KeyPoints,
        "A text whose cached value is corrupt.",
    );
    for junk in [&b"zgarbage"[..], b"j{\"not\":\"an answer\"}", b"\x00\x01"] {
        inspect
            .query::<()>(redis::cmd("SET").arg(k.as_str()).arg(junk))
            .await
            .unwrap();
        assert_eq!(a.get(&k).await, None);
    }
    // A well-formed value of another operation under this key is corrupt too.
    let wrong = codec::encode(&answer(Operation::Summarize, "x"), 1000).unwrap();
    inspect
        .query::<()>(redis::cmd("SET").arg(k.as_str()).arg(wrong))
        .await
        .unwrap();
    assert_eq!(a.get(&k).await, None);
    let s = a.stats().await;
    assert_eq!((s.misses, s.decode_errors), (4, 4));

    a.put(
        &k,
        Operation::KeyPoints,
        answer(Operation::KeyPoints, "point"),
    )
    .await;
    let fresh = redis_cache(&server);
    assert_eq!(
        fresh.get(&k).await,
        Some(answer(Operation::KeyPoints, "point"))
    );
    assert_eq!(fresh.stats().await.redis_hits, 1);
}

#[tokio::test]
async fn a_dead_redis_costs_one_bounded_miss_then_recovers_by_itself() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    // Default link timeout (50 ms); a cool-off long enough that a busy test
    // machine cannot see it end in the middle of the checks below.
    let cooloff = Duration::from_millis(1000);
    let cache = Cache::new(CacheConfig::default(), Some(link(&server, 50, 1000)));
    let held = put(
        &cache,
        Operation::Summarize,
        "A text cached before the outage.",
    )
    .await;
    assert_eq!(cache.stats().await.redis.unwrap().keys, Some(1));

    server.kill();
    let started = Instant::now();
    assert!(cache.get(&held).await.is_some(), "memory still answers");
    assert!(started.elapsed() < Duration::from_millis(50));

    let missing = key(Operation::Summarize, "A text nobody cached yet.");
    let started = Instant::now();
    assert_eq!(
        cache.get(&missing).await,
        None,
        "a failed Redis read is a miss"
    );
    let first = started.elapsed();
    assert!(
        first < Duration::from_millis(200),
        "first call bounded: {first:?}"
    );

    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(cache.get(&missing).await, None);
    }
    let during = started.elapsed();
    // 100 calls well under one 50 ms timeout: no network during the cool-off.
    assert!(
        during < Duration::from_millis(50),
        "cool-off answers at once: {during:?}"
    );

    // Writes during the outage land in memory, silently.
    let during_outage = put(&cache, Operation::Qa, "A text cached during the outage.").await;
    assert!(cache.get(&during_outage).await.is_some());
    let s = cache.stats().await;
    let redis = s.redis.unwrap();
    assert_eq!(redis.link.status, "unavailable");
    assert_eq!((redis.keys, redis.ping_ms), (None, None));
    assert!(redis.read_errors >= 1);

    server.restart();
    let mut recovered = false;
    let mut after = None;
    for _ in 0..20 {
        tokio::time::sleep(cooloff + Duration::from_millis(50)).await;
        let k = put(
            &cache,
            Operation::Sentiment,
            "A text cached after the restart.",
        )
        .await;
        let other = redis_cache(&server);
        if other.get(&k).await.is_some() {
            recovered = true;
            after = Some(k);
            break;
        }
    }
    assert!(
        recovered,
        "the same cache writes to Redis again: {:?}",
        cache.stats().await
    );
    assert_eq!(cache.stats().await.redis.unwrap().link.status, "connected");

    // And reads from it again: clear memory, the entry comes back from Redis.
    let k = after.unwrap();
    cache.memory.clear();
    assert!(cache.get(&k).await.is_some());
    assert!(cache.stats().await.redis_hits >= 1);
}
