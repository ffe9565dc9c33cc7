//! Shared test harness: start keel with a given environment, send requests.

use keel::config::Settings;
use keel::env::MapEnv;
use keel::server::RunningServer;
use keel_testkit::fake_llm::{FakeLlm, FakeLlmConfig, FakeLlmHandle};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A running keel plus a client pointed at it.
pub struct TestServer {
    pub server: RunningServer,
    pub client: reqwest::Client,
    base: String,
}

/// A 20-sentence article used across tests.
pub const ARTICLE: &str = "The city of Riverton launched a new solar energy program this spring. \
The solar program will install panels on two hundred public buildings. \
Officials expect the solar panels to cut the city's energy costs by a third. \
The mayor said the program is the largest investment in clean energy in the city's history. \
Construction crews began work on the first schools in April. \
Parents welcomed the news at a crowded meeting. \
Some residents worried about the cost of the project. \
The council approved a budget of forty million dollars for the program. \
Federal grants will cover half of the solar program's cost. \
Local businesses will supply most of the equipment. \
The program is expected to create three hundred jobs. \
Training courses for installers started at the community college. \
The first buildings will produce power by the end of the summer. \
Engineers will monitor the panels from a central control room. \
Excess energy will be sold back to the regional grid. \
Critics said the timeline was too ambitious. \
The mayor replied that the solar program had been planned for years. \
Neighbouring towns are watching the program closely. \
Several have asked Riverton for advice on similar projects. \
The city hopes the solar program will be finished within three years.";

pub async fn start(vars: &[(&str, &str)]) -> TestServer {
    let mut env = MapEnv::new(vars);
    env.set("BACKEND_PORT", "0");
    let settings = Settings::from_source(&env).expect("test settings are valid");
    start_with_settings(settings).await
}

pub async fn start_with_settings(settings: Settings) -> TestServer {
    let server = keel::server::start(settings).await.expect("server starts");
    let base = format!("http://{}", server.addr());
    TestServer {
        server,
        client: reqwest::Client::new(),
        base,
    }
}

/// A response with its status, headers and parsed JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body readable");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the common error body and returns its error_code.
    pub fn assert_error(&self, status: u16) -> &str {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(self.body["success"], json!(false), "{}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            self.body
        );
        assert!(
            self.body.get("details").is_some(),
            "details key present: {}",
            self.body
        );
        assert!(self.body["timestamp"].as_str().is_some(), "{}", self.body);
        // FastAPI's `detail`, for the reference's clients.
        let detail = &self.body["detail"];
        match status {
            401 => assert!(detail["message"].is_string(), "{}", self.body),
            422 => assert!(detail[0]["loc"].is_array(), "{}", self.body),
            _ => assert!(detail.is_string(), "{}", self.body),
        }
        let id = self.body["request_id"].as_str().expect("request_id");
        assert_eq!(
            Some(id),
            self.header("x-request-id"),
            "body id matches header"
        );
        self.body["error_code"].as_str().expect("error_code")
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut r = self.client.get(self.url(path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        Reply::from(r.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        Reply::from(r.send().await.expect("request sent")).await
    }

    pub async fn process(&self, body: Value) -> Reply {
        self.post("/v1/text_processing/process", &body, None).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request sent")).await
    }
}

/// One request body per operation over [`ARTICLE`].
pub fn all_operations() -> Vec<Value> {
    vec![
        json!({"text": ARTICLE, "operation": "summarize", "options": {"max_length": 40}}),
        json!({"text": ARTICLE, "operation": "sentiment"}),
        json!({"text": ARTICLE, "operation": "key_points", "options": {"max_points": 3}}),
        json!({"text": ARTICLE, "operation": "questions", "options": {"num_questions": 3}}),
        json!({"text": ARTICLE, "operation": "qa", "question": "How much did the council approve for the program?"}),
    ]
}

/// Asserts that a successful response has the shape its operation promises.
pub fn assert_answer_shape(body: &Value) {
    assert_eq!(body["success"], json!(true), "{body}");
    let op = body["operation"].as_str().expect("operation");
    match op {
        "summarize" | "qa" => {
            assert!(
                body["result"]
                    .as_str()
                    .is_some_and(|r| !r.trim().is_empty()),
                "{body}"
            )
        }
        "sentiment" => {
            let s = &body["sentiment"];
            assert!(
                ["positive", "negative", "neutral"]
                    .contains(&s["sentiment"].as_str().unwrap_or("")),
                "{body}"
            );
            let c = s["confidence"].as_f64().expect("confidence");
            assert!((0.0..=1.0).contains(&c), "{body}");
            // Two decimals at most, as the README's examples show.
            assert_eq!((c * 100.0).round() / 100.0, c, "{body}");
        }
        "key_points" => {
            let points = body["key_points"].as_array().expect("key_points");
            assert!(!points.is_empty() && points.len() <= 3, "{body}");
        }
        "questions" => {
            let qs = body["questions"].as_array().expect("questions");
            assert!(!qs.is_empty() && qs.len() <= 3, "{body}");
            for q in qs {
                assert!(q.as_str().is_some_and(|q| q.ends_with('?')), "{body}");
            }
        }
        other => panic!("unexpected operation {other}"),
    }
    let meta = &body["metadata"];
    assert!(meta["word_count"].as_u64().is_some_and(|n| n > 0), "{body}");
    assert!(meta["model"].as_str().is_some(), "{body}");
    assert!(meta["attempts"].as_u64().is_some_and(|n| n >= 1), "{body}");
    assert!(body["processing_time"].as_f64().is_some(), "{body}");
    assert!(body["timestamp"].as_str().is_some(), "{body}");
    assert_eq!(body["cache_hit"], json!(false));
}

/// Starts the fake LLM upstream on a free loopback port.
pub async fn fake(config: FakeLlmConfig) -> FakeLlmHandle {
    FakeLlm::spawn("127.0.0.1:0".parse().expect("valid address"), config)
        .await
        .expect("fake upstream starts")
}

/// A real `keel serve` process on a free port (killed when dropped).
pub struct KeelProcess {
    /// The process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    client: reqwest::Client,
}

impl KeelProcess {
    /// Starts `keel serve` with only `vars` (no inherited settings, no
    /// `.env`) and waits until it is ready.
    pub async fn start(vars: &[(&str, &str)]) -> KeelProcess {
        KeelProcess::start_inner(vars, None).await
    }

    /// Like [`KeelProcess::start`], with stdout (the log lines) collected
    /// into the returned buffer by a reader thread.
    pub async fn start_capturing(
        vars: &[(&str, &str)],
    ) -> (KeelProcess, std::sync::Arc<std::sync::Mutex<String>>) {
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let p = KeelProcess::start_inner(vars, Some(out.clone())).await;
        (p, out)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    async fn start_inner(
        vars: &[(&str, &str)],
        capture: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    ) -> KeelProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_LEVEL", "warn")
            .current_dir(std::env::temp_dir())
            .args(["serve", "--port", &port.to_string()])
            .stdout(if capture.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            });
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("keel starts");
        if let (Some(out), Some(mut stdout)) = (capture, child.stdout.take()) {
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut p = KeelProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("keel exited early with {status}");
            }
            let ready = p
                .client
                .get(format!("{}/v1/health/ready", p.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return p;
            }
            assert!(Instant::now() < deadline, "keel did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `method path` with `key` as the bearer token and an optional JSON
    /// body: (status, JSON body or null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with the key `alpha`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, "alpha", None).await
    }

    /// `POST /v1/jobs` with the key `alpha`.
    pub async fn submit(&self, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, "/v1/jobs", "alpha", Some(body))
            .await
    }
}

impl Drop for KeelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
