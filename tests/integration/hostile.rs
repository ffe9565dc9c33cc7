//! Bad input and hostile clients (issue 15 C): JSON bodies that are not
//! objects, slow and stalled clients, a saturated public API, bodies declared
//! too large, and malformed heads — mostly over raw TCP, since a normal HTTP
//! client will not send such requests.

use crate::support::{ARTICLE, start};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw socket.
#[derive(Debug)]
struct RawReply {
    status: u16,
    head: String,
    body: String,
}

impl RawReply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("status {}: body is not JSON: {:?}", self.status, self.body))
    }

    /// Asserts the common JSON error body and returns its error_code.
    fn error_code(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.body);
        let body = self.json();
        assert_eq!(body["success"], json!(false), "{body}");
        assert!(body["request_id"].as_str().is_some(), "{body}");
        body["error_code"].as_str().unwrap().to_string()
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connects")
}

/// Reads one response (head, then a `Content-Length` body), or `None` when
/// the connection closes or nothing complete arrives within `within`.
async fn read_reply(stream: &mut TcpStream, within: Duration) -> Option<RawReply> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return Some(RawReply { status, head, body });
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the server closes `stream` (EOF or reset), at most `within`;
/// returns how long that took, or `None` if it stayed open. Bytes the server
/// sends first (an error response) are skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// A POST head for `path` declaring `length` body bytes.
fn post_head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: keel\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Every operation of both OpenAPI documents that takes a JSON body, with
/// path parameters filled in.
async fn routes_with_a_body(s: &crate::support::TestServer) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for doc in ["/openapi.json", "/internal/openapi.json"] {
        let doc = s.get(doc, None).await.body;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if op.get("requestBody").is_some() {
                    let path = path
                        .replace("{name}", "openai:summarize")
                        .replace("{action}", "reset");
                    routes.push((method.to_uppercase(), path));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_json_body_must_be_an_object() {
    let s = start(&[]).await;
    let routes = routes_with_a_body(&s).await;
    for expected in [
        ("POST", "/v1/text_processing/process"),
        ("POST", "/v1/text_processing/batch_process"),
        ("POST", "/internal/cache/invalidate"),
        ("PUT", "/internal/resilience/config"),
        ("POST", "/internal/resilience/config/validate"),
    ] {
        assert!(
            routes
                .iter()
                .any(|(m, p)| m == expected.0 && p == expected.1),
            "{expected:?} is documented with a body: {routes:?}"
        );
    }
    let not_objects = [
        json!([]),
        json!([null, null]),
        json!(["production"]),
        json!([ARTICLE, "sentiment"]),
        json!(["summarize"]),
        json!("text"),
        json!(42),
        json!(true),
        json!(null),
    ];
    for (method, path) in &routes {
        for body in &not_objects {
            let request = s
                .client
                .request(method.parse().unwrap(), s.url(path))
                .json(body);
            let r = s.send(request).await;
            assert_eq!(
                r.assert_error(422),
                "VALIDATION_ERROR",
                "{method} {path} with {body}"
            );
        }
    }
    // Nothing changed state: the preset is still the default.
    let config = s.get("/internal/resilience/config", None).await;
    assert_eq!(
        config.body["preset_name"],
        json!("simple"),
        "{}",
        config.body
    );
    assert_eq!(config.body["last_change"], Value::Null, "{}", config.body);

    // Nested objects follow the same rule: options, custom_config and batch items.
    let r = s
        .process(json!({"text": ARTICLE, "operation": "summarize", "options": [50]}))
        .await;
    r.assert_error(422);
    let r = s
        .send(
            s.client
                .put(s.url("/internal/resilience/config"))
                .json(&json!({"custom_config": [3, 5]})),
        )
        .await;
    r.assert_error(422);
    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": [[ARTICLE, "sentiment"], {"text": ARTICLE, "operation": "sentiment"}]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["status"],
        json!("failed"),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["results"][1]["status"],
        json!("completed"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_stalled_or_trickled_head_is_cut_at_the_header_timeout() {
    let s = start(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("HTTP_KEEPALIVE_IDLE_SECONDS", "30"),
    ])
    .await;
    let addr = s.server.addr();

    // Half a head, then silence.
    let mut half = connect(addr).await;
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: keel\r\n")
        .await
        .unwrap();
    // A head trickled one byte every 200 ms (it would take ~8 s).
    let mut slow = connect(addr).await;
    let trickle = tokio::spawn(async move {
        for b in b"GET /v1/health HTTP/1.1\r\nHost: keel\r\nX-Pad: aaaa\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow
    });
    let took = closed_within(&mut half, Duration::from_secs(4))
        .await
        .expect("a half-sent head does not keep its connection");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    let mut slow = trickle.await.unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(1))
            .await
            .is_some(),
        "a trickled head is cut too"
    );

    // A normal client is unaffected.
    assert_eq!(s.get("/v1/health/live", None).await.status, 200);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_closed() {
    let s = start(&[("HTTP_BODY_READ_TIMEOUT_SECONDS", "1")]).await;
    let mut stream = connect(s.server.addr()).await;
    let started = Instant::now();
    stream
        .write_all(post_head("/v1/text_processing/process", 200).as_bytes())
        .await
        .unwrap();
    stream.write_all(br#"{"text": "half a bo"#).await.unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(4))
        .await
        .expect("an answer");
    assert_eq!(reply.error_code(408), "REQUEST_TIMEOUT");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        closed_within(&mut stream, Duration::from_secs(2))
            .await
            .is_some(),
        "the connection is closed after the 408"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let s = start(&[
        ("HTTP_KEEPALIVE_IDLE_SECONDS", "1"),
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "30"),
    ])
    .await;
    let mut stream = connect(s.server.addr()).await;
    stream
        .write_all(b"GET /v1/health/live HTTP/1.1\r\nHost: keel\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    // Kept alive: a second request on the same connection is served.
    stream
        .write_all(b"GET /v1/health/live HTTP/1.1\r\nHost: keel\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_reply(&mut stream, Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    let idle = closed_within(&mut stream, Duration::from_secs(4))
        .await
        .expect("an idle connection is closed");
    assert!(idle >= Duration::from_millis(800), "{idle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_is_one_budget_and_health_and_operators_stay_reachable() {
    let s = start(&[("MAX_CONCURRENT_REQUESTS", "4")]).await;
    let addr = s.server.addr();
    // Four requests on one route hold the whole budget with half-sent bodies.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(addr).await;
        stream
            .write_all(post_head("/v1/text_processing/process", 500).as_bytes())
            .await
            .unwrap();
        stream.write_all(b"{\"text\": ").await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another route of the public API is refused: the budget is per process.
    let r = s
        .post(
            "/v1/text_processing/batch_process",
            &json!({"requests": [{"text": ARTICLE, "operation": "sentiment"}]}),
            None,
        )
        .await;
    assert_eq!(r.assert_error(503), "SERVICE_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("1"));
    s.get("/v1/auth/status", None).await.assert_error(503);

    // Health and the operator API have their own budget.
    assert_eq!(s.get("/v1/health", None).await.status, 200);
    assert_eq!(s.get("/v1/health/ready", None).await.status, 200);
    assert_eq!(s.get("/internal/resilience/health", None).await.status, 200);

    // Releasing the held requests frees the budget.
    drop(held);
    let mut status = 0;
    for _ in 0..50 {
        status = s.get("/v1/auth/status", None).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_it_is_read() {
    let s = start(&[]).await;
    let addr = s.server.addr();

    let mut stream = connect(addr).await;
    let started = Instant::now();
    stream
        .write_all(post_head("/v1/text_processing/process", 1_000_000_000_000).as_bytes())
        .await
        .unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(2))
        .await
        .expect("413 at once, without waiting for the body");
    assert_eq!(reply.error_code(413), "PAYLOAD_TOO_LARGE");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        reply
            .head
            .to_ascii_lowercase()
            .contains("connection: close")
    );

    // Expect: 100-continue with 20 MB: the 413 comes instead of 100 Continue.
    let mut stream = connect(addr).await;
    stream
        .write_all(
            b"POST /internal/cache/invalidate HTTP/1.1\r\nHost: keel\r\n\
              Content-Type: application/json\r\nContent-Length: 20000000\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let reply = read_reply(&mut stream, Duration::from_secs(2))
        .await
        .expect("an answer");
    assert_eq!(reply.error_code(413), "PAYLOAD_TOO_LARGE");

    // A body within the limit with Expect still gets 100 Continue.
    let mut stream = connect(addr).await;
    let body = json!({"text": ARTICLE, "operation": "sentiment"}).to_string();
    stream
        .write_all(
            format!(
                "POST /v1/text_processing/process HTTP/1.1\r\nHost: keel\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Expect: 100-continue\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut first = [0u8; 25];
    stream.read_exact(&mut first).await.unwrap();
    assert!(first.starts_with(b"HTTP/1.1 100 Continue"), "{first:?}");
}

#[tokio::test]
async fn malformed_heads_get_the_json_error_where_keel_answers() {
    let s = start(&[]).await;
    let addr = s.server.addr();
    let ask = |raw: Vec<u8>| async move {
        let mut stream = connect(addr).await;
        stream.write_all(&raw).await.unwrap();
        read_reply(&mut stream, Duration::from_secs(3))
            .await
            .expect("an answer")
    };

    // RFC 9112 §3.2: HTTP/1.1 without Host, or with two, is a 400.
    let r = ask(b"GET /v1/health HTTP/1.1\r\n\r\n".to_vec()).await;
    assert_eq!(r.error_code(400), "BAD_REQUEST");
    assert!(r.json()["error"].as_str().unwrap().contains("Host"));
    let r = ask(b"GET /v1/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec()).await;
    assert_eq!(r.error_code(400), "BAD_REQUEST");
    // HTTP/1.0 needs no Host.
    let r = ask(b"GET /v1/health/live HTTP/1.0\r\n\r\n".to_vec()).await;
    assert_eq!(r.status, 200);

    // An over-long target is a JSON 414 (below hyper's own 64 KB limit).
    let long = format!(
        "GET /v1/health?q={} HTTP/1.1\r\nHost: keel\r\n\r\n",
        "a".repeat(9000)
    );
    let r = ask(long.into_bytes()).await;
    assert_eq!(r.error_code(414), "URI_TOO_LONG");

    // What hyper refuses before keel sees a request: the status is right,
    // the body is hyper's (empty) — documented in the README.
    let r = ask(b"NOT A REQUEST LINE\r\n\r\n".to_vec()).await;
    assert_eq!(r.status, 400);
    let r = ask(b"GET /v1/health HTTP/1.1\r\nHost: keel\r\nBad Header\r\n\r\n".to_vec()).await;
    assert_eq!(r.status, 400);
}

/// A JSON-schema subset validator over the OpenAPI 3.1 schema objects keel's
/// documents use: `$ref`, `type` (string or list), `properties`, `required`,
/// `additionalProperties`, `items`, `enum`, `oneOf` / `anyOf` / `allOf`.
/// Returns the first mismatch as `path: why`.
fn conforms(doc: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, path);
    }
    for (key, all) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            let ok = list
                .iter()
                .filter(|s| conforms(doc, s, value, path).is_ok())
                .count();
            if (all && ok != list.len()) || (!all && ok == 0) {
                return Err(format!("{path}: matches no branch of {key}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !types.is_empty() && !ok {
            return Err(format!("{path}: {actual} where the schema says {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{path}: {value} not in {allowed:?}"));
    }
    if let Value::Object(map) = value {
        for (key, too_few) in [("minProperties", true), ("maxProperties", false)] {
            if let Some(n) = schema.get(key).and_then(Value::as_u64) {
                let len = map.len() as u64;
                if (too_few && len < n) || (!too_few && len > n) {
                    return Err(format!("{path}: {len} properties where {key} is {n}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(name) {
                return Err(format!("{path}: missing required {name}"));
            }
        }
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => conforms(doc, s, v, &sub)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{sub}: undocumented")),
                (None, Some(s @ Value::Object(_))) => conforms(doc, s, v, &sub)?,
                _ => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            conforms(doc, s, v, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_documented_get_answers_what_its_schema_says() {
    let s = start(&[]).await;
    // One finished job (with metadata and a result), so the job routes answer
    // real content, not an empty list.
    let submitted = s
        .post(
            "/v1/jobs",
            &json!({"text": "The council approved the solar program after a long debate on costs.",
                    "operation": "sentiment", "metadata": {"ticket": "T-7"}}),
            None,
        )
        .await;
    assert_eq!(submitted.status, 202, "{}", submitted.body);
    let job_id = submitted.body["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    let done = s.get(&format!("/v1/jobs/{job_id}?wait=10"), None).await;
    assert_eq!(done.body["status"], json!("succeeded"), "{}", done.body);
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc_path in ["/openapi.json", "/internal/openapi.json"] {
        let doc = s.get(doc_path, None).await.body;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let Some(op) = item.get("get") else { continue };
            let Some(schema) = op["responses"]["200"]["content"]["application/json"].get("schema")
            else {
                continue;
            };
            let name = if path.contains("circuit-breakers") {
                "local:summarize"
            } else {
                "simple"
            };
            let path = path
                .replace("{operation}", "summarize")
                .replace("{name}", name)
                .replace("{environment}", "production")
                .replace("{job_id}", &job_id);
            if path.contains('{') {
                continue;
            }
            let r = s.get(&path, None).await;
            assert_eq!(r.status, 200, "GET {path}: {}", r.body);
            checked += 1;
            if let Err(e) = conforms(&doc, schema, &r.body, "$") {
                failures.push(format!("GET {path}: {e}"));
            }
        }
    }
    assert!(checked >= 18, "only {checked} operations checked");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn documented_request_limits_match_what_keel_enforces() {
    let s = start(&[]).await;
    let doc = s.get("/openapi.json", None).await.body;
    // The derived object is the first part of an allOf whose second part
    // says that qa needs a question.
    let request = &doc["components"]["schemas"]["ProcessRequest"]["allOf"][0];
    assert_eq!(request["properties"]["text"]["maxLength"], json!(10000));
    assert_eq!(request["properties"]["text"]["minLength"], json!(10));
    let internal = s.get("/internal/openapi.json", None).await.body;
    let invalidate = &internal["components"]["schemas"]["InvalidateRequest"];
    assert_eq!(invalidate["minProperties"], json!(1));
    assert_eq!(invalidate["maxProperties"], json!(1));
    // What the schema allows is accepted, what it refuses is refused.
    let r = s
        .post(
            "/internal/cache/invalidate",
            &json!({"pattern": "*", "operation": "qa"}),
            None,
        )
        .await;
    r.assert_error(422);
    let r = s
        .post("/internal/cache/invalidate", &json!({"pattern": "*"}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The request schema a documented route names, resolved.
fn request_schema<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let r =
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} documents a JSON body"));
    &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]
}

/// What a generated client would send is what keel accepts, and what the
/// schema refuses keel refuses: every documented request example conforms
/// to its schema and is accepted by the running server; for the rules the
/// schemas state (qa needs a question, a custom config is a non-empty object
/// of known fields), bodies on both sides of each rule get the same verdict
/// from the schema and from the server.
#[tokio::test]
async fn documented_request_bodies_and_keel_agree() {
    // CHAOS_ENABLED: the documented chaos example must be accepted too.
    let s = start(&[("CHAOS_ENABLED", "true")]).await;
    let public = s.get("/openapi.json", None).await.body;
    let internal = s.get("/internal/openapi.json", None).await.body;
    let mut examples = 0;
    for doc in [&public, &internal] {
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["post", "put"] {
                let Some(op) = item.get(method) else { continue };
                if op.get("requestBody").is_none() || path.contains('{') {
                    continue;
                }
                let schema = request_schema(doc, path, method);
                let Some(example) = schema["examples"].get(0) else {
                    panic!("{method} {path}: the request schema has no example");
                };
                conforms(doc, schema, example, "$")
                    .unwrap_or_else(|e| panic!("{method} {path}: example {example}: {e}"));
                let request = match method {
                    "post" => s.client.post(s.url(path)),
                    _ => s.client.put(s.url(path)),
                };
                let r = s.send(request.json(example)).await;
                assert!(
                    (200..300).contains(&r.status),
                    "{method} {path}: the documented example {example} got {} {}",
                    r.status,
                    r.body
                );
                examples += 1;
            }
        }
    }
    assert!(examples >= 5, "only {examples} documented examples sent");
    // The documented chaos example started a real experiment against
    // `local`; abort it so the rule checks below see a healthy provider.
    let aborted = s.send(s.client.delete(s.url("/internal/chaos"))).await;
    assert_eq!(aborted.status, 200, "abort all: {}", aborted.body);

    let long = "The council approved the solar program after a long debate on costs.";
    let process = request_schema(&public, "/v1/text_processing/process", "post");
    let config = request_schema(&internal, "/internal/resilience/config", "put");
    let cases: Vec<(&str, &Value, Value, bool)> = vec![
        (
            "/v1/text_processing/process",
            process,
            json!({"text": long, "operation": "qa"}),
            false,
        ),
        (
            "/v1/text_processing/process",
            process,
            json!({"text": long, "operation": "qa", "question": "What was approved?"}),
            true,
        ),
        (
            "/v1/text_processing/process",
            process,
            json!({"text": long, "operation": "qa", "options": {"question": "What was approved?"}}),
            true,
        ),
        (
            "/v1/text_processing/process",
            process,
            json!({"text": long, "operation": "sentiment"}),
            true,
        ),
        (
            "/internal/resilience/config",
            config,
            json!({"custom_config": {}}),
            false,
        ),
        (
            "/internal/resilience/config",
            config,
            json!({"custom_config": {"retry_atempts": 3}}),
            false,
        ),
        (
            "/internal/resilience/config",
            config,
            json!({"custom_config": {"retry_attempts": 99}}),
            true, // the bundled checker does not read ranges; the server refuses below
        ),
        (
            "/internal/resilience/config",
            config,
            json!({"preset": "simple", "custom_config": {"retry_attempts": 2}}),
            true,
        ),
    ];
    for (path, schema, body, schema_accepts) in cases {
        let doc = if path.starts_with("/internal") {
            &internal
        } else {
            &public
        };
        let verdict = conforms(doc, schema, &body, "$");
        assert_eq!(
            verdict.is_ok(),
            schema_accepts,
            "{path} {body}: schema says {verdict:?}"
        );
        let request = if path.starts_with("/internal") {
            s.client.put(s.url(path))
        } else {
            s.client.post(s.url(path))
        };
        let r = s.send(request.json(&body)).await;
        let server_accepts = r.status == 200;
        let out_of_range = body["custom_config"]["retry_attempts"] == json!(99);
        if out_of_range {
            // The range is in the schema (maximum 10) and enforced.
            assert_eq!(
                schema["properties"]["custom_config"]["oneOf"][0]["$ref"]
                    .as_str()
                    .or(schema["properties"]["custom_config"]["$ref"].as_str())
                    .map(|r| internal["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]
                        ["properties"]["retry_attempts"]["maximum"]
                        .clone()),
                Some(json!(10)),
                "{}",
                schema["properties"]["custom_config"]
            );
            r.assert_error(422);
            continue;
        }
        assert_eq!(
            server_accepts, schema_accepts,
            "{path} {body}: the server answered {} {}",
            r.status, r.body
        );
        if !server_accepts {
            r.assert_error(422);
        }
    }
    // Put the preset back for tidiness (each test has its own server anyway).
    let _ = s
        .send(
            s.client
                .put(s.url("/internal/resilience/config"))
                .json(&json!({"preset": "simple"})),
        )
        .await;
}
