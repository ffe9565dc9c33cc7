//! Identities over real HTTP: JWTs (HS256 secret, and a JWKS served by a
//! local axum server that rotates during the test), client keys issued,
//! used, limited and revoked across two keel instances on one real
//! redis-server, `jti` revocation, roles (403) and the audit trail.

use crate::support::{KeelProcess, TestServer, start};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keel::config::Settings;
use keel::env::MapEnv;
use keel_testkit::redis_server::RedisServer;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
const ISSUER: &str = "https://issuer.keel.test";
const AUDIENCE: &str = "keel-api";
const RSA_A: &[u8] = include_bytes!("../fixtures/jwt/rsa_a.pem");
const RSA_B: &[u8] = include_bytes!("../fixtures/jwt/rsa_b.pem");
const RSA_A_PUBLIC: &[u8] = include_bytes!("../fixtures/jwt/rsa_a.pub.pem");
const EC_A: &[u8] = include_bytes!("../fixtures/jwt/ec_a.pem");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(extra: Value) -> Value {
    let mut c =
        json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn hs256(extra: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims(extra),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, extra: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, &claims(extra), key).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A token with `alg: none` and no signature.
fn alg_none() -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims(json!({})).to_string().as_bytes())
    )
}

/// The algorithm-confusion attack: HS256 "signed" with the RSA public key's PEM.
fn hs256_with_rsa_public_key(kid: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(RSA_A_PUBLIC).unwrap(),
    )
    .unwrap()
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn jwt_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("API_KEY", "public-key"),
        ("INTERNAL_API_KEY", "ops-key"),
        ("JWT_HS256_SECRET", SECRET),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("JWT_LEEWAY_SECONDS", "5"),
        ("JWT_TENANT_CLAIM", "org"),
    ]
}

/// Asserts a 401 whose message names `reason` and does not echo the token.
fn assert_refused(s: &crate::support::Reply, token: &str, reason: &str) {
    assert_eq!(s.assert_error(401), "AUTHENTICATION_ERROR", "{}", s.body);
    let text = s.body.to_string();
    assert!(text.contains(reason), "reason {reason:?} in {text}");
    assert!(!text.contains(token), "token echoed: {text}");
    assert!(!text.contains(&token[..20]), "token prefix echoed: {text}");
    assert_eq!(s.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn jwt_hs256_valid_token_has_its_identity_and_bad_ones_get_a_reason() {
    let s = start(&jwt_env()).await;
    let token = hs256(json!({"roles": ["client"], "org": "acme", "rate_limit_per_minute": 7}));
    let r = s.get("/v1/auth/status", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["identity"]["kind"], "jwt");
    assert_eq!(r.body["identity"]["id"], "jwt:alice");
    assert_eq!(r.body["identity"]["roles"], json!(["client"]));
    assert_eq!(r.body["identity"]["tenant"], "acme");
    assert_eq!(r.body["identity"]["limits"]["rate_limit_per_minute"], 7);
    assert_eq!(
        r.header("x-ratelimit-limit"),
        Some("7"),
        "the identity's own limit applies"
    );

    for (token, reason) in [
        (hs256(json!({"exp": now() - 60})), "expired"),
        (hs256(json!({"nbf": now() + 600})), "not yet valid"),
        (hs256(json!({"iss": "https://evil.test"})), "wrong issuer"),
        (hs256(json!({"aud": "other-api"})), "wrong audience"),
        (alg_none(), "algorithm not allowed"),
        (
            encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(b"another-secret-0123456789abcdef!!").unwrap(),
            )
            .unwrap(),
            "bad signature",
        ),
    ] {
        let r = s.get("/v1/auth/status", Some(&token)).await;
        assert_refused(&r, &token, reason);
    }

    // Roles: a client token is 403 on /internal, an operator token is 200 there.
    let r = s.get("/internal/keys", Some(&token)).await;
    assert_eq!(r.assert_error(403), "AUTHORIZATION_ERROR");
    let operator = hs256(json!({"roles": "operator", "sub": "ops-bot"}));
    let r = s.get("/internal/keys", Some(&operator)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["jwt"]["source"], "hs256");
    // An operator-only token has no client role: 403 on /v1.
    let r = s.get("/v1/auth/status", Some(&operator)).await;
    r.assert_error(403);

    // Static keys behave as before.
    assert_eq!(
        s.get("/v1/auth/status", Some("public-key")).await.status,
        200
    );
    s.get("/internal/keys", Some("public-key"))
        .await
        .assert_error(401);
    assert_eq!(s.get("/internal/keys", Some("ops-key")).await.status, 200);
}

#[tokio::test]
async fn a_revoked_jti_is_refused_and_the_revocation_is_audited() {
    let s = start(&jwt_env()).await;
    let token = hs256(json!({"jti": "tok-1"}));
    assert_eq!(s.get("/v1/auth/status", Some(&token)).await.status, 200);
    let r = s
        .post(
            "/internal/tokens/revoke",
            &json!({"jti": "tok-1", "exp": now() + 600}),
            Some("ops-key"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Refused at once, though its verification was cached.
    let r = s.get("/v1/auth/status", Some(&token)).await;
    assert_refused(&r, &token, "revoked");
    // Another token of the same subject is unaffected.
    let other = hs256(json!({"jti": "tok-2"}));
    assert_eq!(s.get("/v1/auth/status", Some(&other)).await.status, 200);

    let audit = s.get("/internal/audit", Some("ops-key")).await;
    let entry = &audit.body["entries"][0];
    assert_eq!(entry["action"], "token.revoked");
    assert_eq!(entry["target"], "tok-1");
    assert_eq!(entry["actor_kind"], "static_key");
    assert!(entry["actor"].as_str().unwrap().starts_with("key:"));
}

/// A JWKS document the test can change while keel runs.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<Value>>,
    hits: Arc<std::sync::atomic::AtomicU64>,
}

async fn jwks_server(keys: Vec<Value>) -> JwksServer {
    let doc = Arc::new(Mutex::new(json!({ "keys": keys })));
    let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (d, h) = (doc.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let (d, h) = (d.clone(), h.clone());
            async move {
                h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                axum::Json(d.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer { url, doc, hits }
}

async fn until_status(s: &TestServer, token: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = s.get("/v1/auth/status", Some(token)).await;
        if r.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {} after {within:?}: {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jwks_keys_verify_rs256_and_es256_rotate_and_refuse_algorithm_confusion() {
    let rsa_a = EncodingKey::from_rsa_pem(RSA_A).unwrap();
    let rsa_b = EncodingKey::from_rsa_pem(RSA_B).unwrap();
    let ec_a = EncodingKey::from_ec_pem(EC_A).unwrap();
    let jwks = jwks_server(vec![
        jwk(&rsa_a, Algorithm::RS256, "rsa-a"),
        jwk(&ec_a, Algorithm::ES256, "ec-a"),
    ])
    .await;
    let s = start(&[
        ("API_KEY", "public-key"),
        ("JWT_JWKS_URL", jwks.url.as_str()),
        ("JWT_JWKS_REFRESH_SECONDS", "1"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ])
    .await;
    let token_a = signed(Algorithm::RS256, "rsa-a", &rsa_a, json!({}));
    let token_ec = signed(Algorithm::ES256, "ec-a", &ec_a, json!({}));
    let token_b = signed(Algorithm::RS256, "rsa-b", &rsa_b, json!({}));
    assert_eq!(s.get("/v1/auth/status", Some(&token_a)).await.status, 200);
    assert_eq!(s.get("/v1/auth/status", Some(&token_ec)).await.status, 200);
    assert_refused(
        &s.get("/v1/auth/status", Some(&token_b)).await,
        &token_b,
        "unknown kid",
    );
    // HS256 with the RSA public key as the HMAC secret: the key's type fixes RS256.
    let confused = hs256_with_rsa_public_key("rsa-a");
    assert_refused(
        &s.get("/v1/auth/status", Some(&confused)).await,
        &confused,
        "algorithm not allowed",
    );
    // RS256 header on the EC key: refused the same way.
    let mismatched = signed(Algorithm::RS256, "ec-a", &rsa_a, json!({}));
    assert_refused(
        &s.get("/v1/auth/status", Some(&mismatched)).await,
        &mismatched,
        "algorithm not allowed",
    );
    assert_refused(
        &s.get("/v1/auth/status", Some(&alg_none())).await,
        &alg_none(),
        "algorithm not allowed",
    );

    // Rotation: B is added; after a refresh it is accepted and A still is.
    *jwks.doc.lock().unwrap() = json!({"keys": [
        jwk(&rsa_a, Algorithm::RS256, "rsa-a"),
        jwk(&rsa_b, Algorithm::RS256, "rsa-b"),
    ]});
    until_status(&s, &token_b, 200, Duration::from_secs(5)).await;
    assert_eq!(s.get("/v1/auth/status", Some(&token_a)).await.status, 200);
    // A is removed: its tokens stop at the next refresh (cached results too).
    *jwks.doc.lock().unwrap() = json!({"keys": [jwk(&rsa_b, Algorithm::RS256, "rsa-b")]});
    until_status(&s, &token_a, 401, Duration::from_secs(5)).await;
    assert_refused(
        &s.get("/v1/auth/status", Some(&token_a)).await,
        &token_a,
        "unknown kid",
    );
    assert_eq!(s.get("/v1/auth/status", Some(&token_b)).await.status, 200);

    // The JWKS server goes bad: the last good set stays in force.
    *jwks.doc.lock().unwrap() = json!({"not": "a jwks"});
    let hits = jwks.hits.load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    while jwks.hits.load(std::sync::atomic::Ordering::Relaxed) < hits + 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "no refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.get("/v1/auth/status", Some(&token_b)).await.status, 200);
    // ...and the failed refresh is visible in health and metrics.
    let h = s
        .get("/internal/monitoring/health", Some("public-key"))
        .await;
    let jwt = &h.body["components"]["identity"]["jwt"];
    assert!(jwt["refresh_failures"].as_u64().unwrap() >= 1, "{jwt}");
    assert!(
        jwt["last_error"].as_str().unwrap().contains("no \"keys\""),
        "{jwt}"
    );
    assert_eq!(jwt["kids"], json!(["rsa-b"]));
    let metrics = s
        .client
        .get(s.url("/internal/metrics"))
        .bearer_auth("public-key")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keel_jwks_refresh_failures_total"),
        "{metrics}"
    );
    assert!(metrics.contains("keel_jwks_keys 1"), "{metrics}");
    // The one health verdict says so too, on every surface...
    assert_eq!(h.body["status"], json!("degraded"), "{}", h.body);
    assert_eq!(h.body["checks"]["identity"]["status"], json!("degraded"));
    let v1 = s.get("/v1/health", Some("public-key")).await;
    assert_eq!(v1.body["status"], json!("degraded"), "{}", v1.body);
    assert!(
        v1.body["degraded_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("JWKS refresh is failing")),
        "{}",
        v1.body
    );
    // ...until a refresh succeeds again.
    *jwks.doc.lock().unwrap() = json!({"keys": [jwk(&rsa_b, Algorithm::RS256, "rsa-b")]});
    let started = Instant::now();
    loop {
        let v1 = s.get("/v1/health", Some("public-key")).await;
        if v1.body["checks"]["identity"]["status"] == json!("healthy") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still degraded: {}",
            v1.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jwks_unreachable_at_start_up_stops_keel_naming_the_setting() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let mut env = MapEnv::new(&[
        ("JWT_JWKS_URL", url.as_str()),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ]);
    env.set("BACKEND_PORT", "0");
    let settings = Settings::from_source(&env).unwrap();
    let error = match keel::server::start(settings).await {
        Ok(_) => panic!("keel started without its JWKS"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("JWT_JWKS_URL") && error.contains(&url),
        "{error}"
    );

    // And JWT without JWT_ISSUER is a configuration error naming it.
    let e = Settings::from_source(&MapEnv::new(&[
        ("JWT_HS256_SECRET", SECRET),
        ("JWT_AUDIENCE", "a"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("JWT_ISSUER"), "{e}");
}

#[tokio::test]
async fn client_key_create_use_limit_revoke_across_two_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "2000"),
        ("API_KEY", "public-key"),
        ("INTERNAL_API_KEY", "ops-key"),
        ("RATE_LIMIT_PER_MINUTE", "1000"),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;

    let r = a
        .post(
            "/internal/keys",
            &json!({"name": "ci", "rate_limit_per_minute": 3, "tenant": "acme"}),
            Some("ops-key"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("keel_") && secret.len() >= 5 + 22,
        "{secret}"
    );
    assert_eq!(r.body["store"], "redis");

    // The other instance lists it (metadata only) and accepts it.
    let listed = {
        let started = Instant::now();
        loop {
            let l = b.get("/internal/keys", Some("ops-key")).await;
            if l.body["client_keys"]
                .as_array()
                .is_some_and(|k| !k.is_empty())
            {
                break l;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "not shared: {}",
                l.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    assert!(
        !listed.body.to_string().contains(&secret),
        "secret never listed"
    );
    assert_eq!(listed.body["client_keys"][0]["id"], id.as_str());
    assert!(
        listed.body["static_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kind"] == "static_key" && k["revocable"] == false)
    );

    // Its own limit (3/min) overrides the global 1000, shared by both instances.
    for (n, s) in [(1, &a), (2, &b), (3, &a)] {
        let r = s.get("/v1/auth/status", Some(&secret)).await;
        assert_eq!(r.status, 200, "request {n}: {}", r.body);
        assert_eq!(r.body["identity"]["kind"], "client_key");
        assert_eq!(r.body["identity"]["tenant"], "acme");
    }
    assert_eq!(
        b.get("/v1/auth/status", Some(&secret))
            .await
            .assert_error(429),
        "RATE_LIMIT_EXCEEDED"
    );
    // A client key is not an operator.
    a.get("/internal/keys", Some(&secret))
        .await
        .assert_error(403);
    // The static key still has its own (global) budget.
    assert_eq!(
        a.get("/v1/auth/status", Some("public-key")).await.status,
        200
    );

    // Revoke on A; B refuses it within a second.
    let d = a
        .send(
            a.client
                .delete(a.url(&format!("/internal/keys/{id}")))
                .bearer_auth("ops-key"),
        )
        .await;
    assert_eq!(d.status, 200, "{}", d.body);
    let started = Instant::now();
    let elapsed = loop {
        let r = b.get("/v1/text_processing/operations", Some(&secret)).await;
        if r.status == 401 {
            assert!(
                r.body["error"].as_str().unwrap().contains("revoked"),
                "{}",
                r.body
            );
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still accepts: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("revocation reached the second instance in {elapsed:?}");
    a.get("/v1/text_processing/operations", Some(&secret))
        .await
        .assert_error(401);

    // Static keys cannot be revoked at runtime.
    let static_id = listed.body["static_keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a
        .send(
            a.client
                .delete(a.url(&format!("/internal/keys/{static_id}")))
                .bearer_auth("ops-key"),
        )
        .await;
    r.assert_error(409);

    // Both actions are in A's audit trail, newest first, with the actor.
    let audit = a.get("/internal/audit", Some("ops-key")).await;
    let actions: Vec<&str> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.created"]);
    assert_eq!(audit.body["entries"][0]["target"], id.as_str());
}

#[tokio::test]
async fn memory_store_keys_validation_and_tenant_owned_jobs() {
    let s = start(&[("API_KEY", "public-key"), ("INTERNAL_API_KEY", "ops-key")]).await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "roles": ["admin"]}), "roles"),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "rate_limit_per_minute": 0}),
            "rate_limit_per_minute",
        ),
        (json!({"name": "x", "tenant": "a b"}), "tenant"),
    ] {
        let r = s.post("/internal/keys", &body, Some("ops-key")).await;
        assert_eq!(
            r.assert_error(422),
            "VALIDATION_ERROR",
            "{field}: {}",
            r.body
        );
    }
    let make = |tenant: &'static str| {
        let s = &s;
        async move {
            let r = s
                .post(
                    "/internal/keys",
                    &json!({"name": tenant, "tenant": tenant}),
                    Some("ops-key"),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            assert_eq!(r.body["store"], "memory");
            r.body["secret"].as_str().unwrap().to_string()
        }
    };
    let acme1 = make("acme").await;
    let acme2 = make("acme").await;
    let other = make("globex").await;
    let r = s
        .post(
            "/v1/jobs",
            &json!({"text": crate::support::ARTICLE, "operation": "summarize"}),
            Some(&acme1),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_string();
    // Same tenant, other key: visible. Other tenant: not.
    assert_eq!(
        s.get(&format!("/v1/jobs/{job}"), Some(&acme2)).await.status,
        200
    );
    s.get(&format!("/v1/jobs/{job}"), Some(&other))
        .await
        .assert_error(404);
    s.get(&format!("/v1/jobs/{job}"), Some("public-key"))
        .await
        .assert_error(404);
}

#[tokio::test]
async fn a_jti_revoked_on_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let mut vars = jwt_env();
    vars.push(("REDIS_URL", url.as_str()));
    vars.push(("REDIS_TIMEOUT_MS", "2000"));
    let a = start(&vars).await;
    let b = start(&vars).await;
    let token = hs256(json!({"jti": "shared-1"}));
    assert_eq!(b.get("/v1/auth/status", Some(&token)).await.status, 200);
    let r = a
        .post(
            "/internal/tokens/revoke",
            &json!({"jti": "shared-1", "exp": now() + 600}),
            Some("ops-key"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["store"], "redis");
    let elapsed = until_status(&b, &token, 401, Duration::from_secs(1)).await;
    eprintln!("jti revocation reached the second instance in {elapsed:?}");
    assert_refused(
        &b.get("/v1/auth/status", Some(&token)).await,
        &token,
        "revoked",
    );
}

/// Polls `GET /v1/auth/status` on a keel process with `credential` until it
/// answers `status`; how long that took (fails after `within`).
async fn until_process_status(
    p: &KeelProcess,
    credential: &str,
    status: u16,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let (got, body) = p
            .send(reqwest::Method::GET, "/v1/auth/status", credential, None)
            .await;
        if got == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {got} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two real `keel serve` processes on one redis-server: a client key issued
/// on A works on B, and once A revokes it B refuses it within 1 s; a JWT
/// `jti` revoked on A is refused by B within 1 s. Prints both delays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_on_one_keel_process_reach_another_within_a_second() {
    use reqwest::Method;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let mut vars = jwt_env();
    vars.push(("REDIS_URL", url.as_str()));
    vars.push(("REDIS_TIMEOUT_MS", "2000"));
    let (a, b) = tokio::join!(KeelProcess::start(&vars), KeelProcess::start(&vars));

    let (status, created) = a
        .send(
            Method::POST,
            "/internal/keys",
            "ops-key",
            Some(&json!({"name": "two-processes"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    until_process_status(&b, &secret, 200, Duration::from_secs(1)).await;

    let token = hs256(json!({"jti": "two-processes-1"}));
    assert_eq!(
        b.send(Method::GET, "/v1/auth/status", &token, None).await.0,
        200
    );

    let (status, body) = a
        .send(
            Method::DELETE,
            &format!("/internal/keys/{id}"),
            "ops-key",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key_delay = until_process_status(&b, &secret, 401, Duration::from_secs(1)).await;

    let (status, body) = a
        .send(
            Method::POST,
            "/internal/tokens/revoke",
            "ops-key",
            Some(&json!({"jti": "two-processes-1", "exp": now() + 600})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let jti_delay = until_process_status(&b, &token, 401, Duration::from_secs(1)).await;
    eprintln!("revocation across two keel processes: client key {key_delay:?}, jti {jti_delay:?}");
    // Both stay refused on A as well.
    assert_eq!(
        a.send(Method::GET, "/v1/auth/status", &secret, None)
            .await
            .0,
        401
    );
    assert_eq!(
        a.send(Method::GET, "/v1/auth/status", &token, None).await.0,
        401
    );
}

#[tokio::test]
async fn an_unknown_kid_triggers_an_early_jwks_refresh() {
    let rsa_a = EncodingKey::from_rsa_pem(RSA_A).unwrap();
    let rsa_b = EncodingKey::from_rsa_pem(RSA_B).unwrap();
    let jwks = jwks_server(vec![jwk(&rsa_a, Algorithm::RS256, "rsa-a")]).await;
    let s = start(&[
        ("API_KEY", "public-key"),
        ("JWT_JWKS_URL", jwks.url.as_str()),
        ("JWT_JWKS_REFRESH_SECONDS", "300"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ])
    .await;
    *jwks.doc.lock().unwrap() = json!({"keys": [
        jwk(&rsa_a, Algorithm::RS256, "rsa-a"),
        jwk(&rsa_b, Algorithm::RS256, "rsa-b"),
    ]});
    let token_b = signed(Algorithm::RS256, "rsa-b", &rsa_b, json!({}));
    // The first sight of the new kid is refused and wakes the refresher;
    // it is accepted long before the 300 s schedule.
    assert_refused(
        &s.get("/v1/auth/status", Some(&token_b)).await,
        &token_b,
        "unknown kid",
    );
    until_status(&s, &token_b, 200, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn redis_down_refuses_to_create_a_key_and_revokes_locally() {
    let Some(mut redis) = RedisServer::start_durable() else {
        return;
    };
    let url = redis.url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "2000"),
        ("API_KEY", "public-key"),
        ("INTERNAL_API_KEY", "ops-key"),
    ];
    let s = start(&vars).await;
    let r = s
        .post(
            "/internal/keys",
            &json!({"name": "before"}),
            Some("ops-key"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (id, secret) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    );
    redis.kill();
    let started = Instant::now();
    let r = s
        .post(
            "/internal/keys",
            &json!({"name": "during"}),
            Some("ops-key"),
        )
        .await;
    assert_eq!(r.assert_error(503), "IDENTITY_STORE_UNAVAILABLE");
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The known key keeps working from the local view, and a revocation
    // still applies here at once (503: not shared yet).
    assert_eq!(s.get("/v1/auth/status", Some(&secret)).await.status, 200);
    let d = s
        .send(
            s.client
                .delete(s.url(&format!("/internal/keys/{id}")))
                .bearer_auth("ops-key"),
        )
        .await;
    assert_eq!(d.assert_error(503), "IDENTITY_STORE_UNAVAILABLE");
    s.get("/v1/auth/status", Some(&secret))
        .await
        .assert_error(401);
    // Redis comes back holding the stale (unrevoked) record: the key stays
    // revoked here, and the revocation reaches Redis (a new instance refuses it).
    redis.restart();
    let b = start(&vars).await;
    let started = Instant::now();
    loop {
        let r = b.get("/v1/auth/status", Some(&secret)).await;
        if r.status == 401 {
            assert!(
                r.body["error"].as_str().unwrap().contains("revoked"),
                "{}",
                r.body
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never shared: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.get("/v1/auth/status", Some(&secret))
        .await
        .assert_error(401);
}
