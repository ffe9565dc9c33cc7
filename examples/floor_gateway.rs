//! `floor_gateway`: the thinnest gateway that can answer keel's API, used as
//! a reference in the load benchmark, e.g.
//! `cargo run --release --example loadgen -- --keel-bin target/release/examples/floor_gateway`.
//!
//! It does only what any gateway in front of an LLM must do for one
//! cache-miss request, on the same stack as keel (tokio, axum server,
//! reqwest client configured like keel's providers): read and parse the
//! JSON request, build the provider's chat body, make one upstream call,
//! parse the upstream's JSON answer and write a JSON response. No
//! validation, cache, breaker, retry, rate limit, metrics, request id or
//! logging. Whatever keel costs beyond this binary is keel's own code; what
//! this binary costs is the floor of the stack.
//!
//! `FLOOR_CLIENT=hyper` swaps reqwest for a minimal pool of hyper HTTP/1
//! connections, to measure what reqwest (and hyper-util's pooled client
//! under it) adds on top of hyper itself.
//!
//! It takes keel's command line (`serve --host H --port P`) and reads
//! `OPENAI_BASE_URL`, so the load generator starts it as it starts keel.
//! Not a product: it has no error handling beyond a 502.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use keel::job::{Job, JobOptions, Operation};
use keel::providers::prompt::{SYSTEM_PROMPT, build_prompt};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct ProcessRequest {
    text: String,
    operation: Operation,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    temperature: f32,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// One upstream call: the chat body in, the upstream's body out.
enum Upstream {
    Reqwest {
        client: reqwest::Client,
        url: reqwest::Url,
    },
    Hyper(HyperPool),
}

/// A minimal keep-alive pool of hyper HTTP/1 connections to one address.
struct HyperPool {
    addr: SocketAddr,
    uri: http::Uri,
    authority: http::HeaderValue,
    idle: Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
}

impl HyperPool {
    async fn checkout(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        loop {
            let idle = self.idle.lock().map_err(|e| e.to_string())?.pop();
            match idle {
                Some(mut sender) => {
                    if sender.is_closed() {
                        continue;
                    }
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn post(&self, body: Vec<u8>) -> Result<Bytes, String> {
        let mut sender = self.checkout().await?;
        let request = http::Request::post(self.uri.clone())
            .header(http::header::HOST, self.authority.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.idle.lock().map_err(|e| e.to_string())?.push(sender);
        Ok(body)
    }
}

impl Upstream {
    async fn post(&self, body: Vec<u8>) -> Result<Bytes, String> {
        match self {
            Upstream::Reqwest { client, url } => {
                let response = client
                    .post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                response.bytes().await.map_err(|e| e.to_string())
            }
            Upstream::Hyper(pool) => pool.post(body).await,
        }
    }
}

async fn process(
    State(upstream): State<Arc<Upstream>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_GATEWAY, e);
    let request: ProcessRequest =
        serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let prompt = build_prompt(&Job {
        operation: request.operation,
        text: request.text,
        question: None,
        options: JobOptions::default(),
    });
    let chat = serde_json::to_vec(&ChatRequest {
        model: "gpt-4o-mini",
        messages: [
            Message {
                role: "system",
                content: SYSTEM_PROMPT,
            },
            Message {
                role: "user",
                content: &prompt.user,
            },
        ],
        temperature: 0.2,
    })
    .map_err(|e| bad(e.to_string()))?;
    let answer = upstream.post(chat).await.map_err(bad)?;
    let answer: ChatResponse = serde_json::from_slice(&answer).map_err(|e| bad(e.to_string()))?;
    let content = answer
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .unwrap_or_default();
    let result: serde_json::Value =
        serde_json::from_str(&content).unwrap_or(serde_json::Value::String(content));
    Ok(Json(json!({
        "operation": request.operation,
        "success": true,
        "result": result,
        "model": answer.model,
    })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let host = flag("--host").unwrap_or_else(|| "127.0.0.1".into());
    let port = flag("--port").unwrap_or_else(|| "8000".into());
    let base = std::env::var("OPENAI_BASE_URL")?;
    let url = reqwest::Url::parse(&format!("{base}/chat/completions"))?;
    let upstream = if std::env::var("FLOOR_CLIENT").as_deref() == Ok("hyper") {
        let addr = url
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .ok_or("OPENAI_BASE_URL has no address")?;
        Upstream::Hyper(HyperPool {
            addr,
            uri: url.path().parse()?,
            authority: http::HeaderValue::from_str(&addr.to_string())?,
            idle: Mutex::new(Vec::new()),
        })
    } else {
        Upstream::Reqwest {
            client: reqwest::Client::builder()
                .no_proxy()
                .tls_certs_only(Vec::new())
                .retry(reqwest::retry::never())
                .redirect(reqwest::redirect::Policy::none())
                .tcp_nodelay(true)
                .pool_max_idle_per_host(256)
                .build()?,
            url,
        }
    };
    let app = Router::new()
        .route("/v1/health/ready", get(|| async { "ready" }))
        .route("/v1/text_processing/process", post(process))
        .with_state(Arc::new(upstream));
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}"))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await?;
    Ok(())
}
