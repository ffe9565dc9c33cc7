//! The HTTP plumbing shared by the remote providers: one [`Upstream`]
//! (endpoint and pooled client) per provider, error mapping from `reqwest`
//! to [`ProviderErrorKind`], and `Retry-After` parsing.
//!
//! Invariant: every non-2xx answer becomes a [`ProviderError`] carrying the
//! status and (for 429/503) the upstream's `Retry-After`, so the resilience layer
//! never has to look at HTTP itself.

use super::{CallOptions, ProviderError, ProviderErrorKind, ProviderKind};
use reqwest::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime};

/// Largest upstream body we read, so a broken upstream cannot exhaust memory.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The proxy variables reqwest honours; see [`client`].
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Builds the pooled client for one provider. `TCP_NODELAY` avoids Nagle
/// stalls on small request bodies; idle connections are kept warm. The
/// resilience layer owns retries, so reqwest's own retry is off; redirects
/// are not followed (a provider answering 3xx is misconfigured, and
/// following one would turn a POST into a GET). The system proxy is looked
/// up per request only when a proxy variable is set. Without a proxy, the
/// system's root certificates are loaded only for an `https` endpoint: a
/// plain-`http` one (a model server on the local network) needs none, and
/// then also starts on an image without a CA bundle.
fn client(kind: ProviderKind, endpoint: &reqwest::Url) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::Client::builder();
    let proxied = PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some());
    if !proxied {
        builder = builder.no_proxy();
        if endpoint.scheme() == "http" {
            builder = builder.tls_certs_only(Vec::new());
        }
    }
    builder
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            let mut message = format!("cannot build the HTTP client: {}", error_chain(&e));
            if endpoint.scheme() == "https" {
                message.push_str(
                    " (an https endpoint needs the system's root certificates: install \
                     the ca-certificates package or point SSL_CERT_FILE at a CA bundle)",
                );
            }
            ProviderError::new(kind, ProviderErrorKind::Transport(message))
        })
}

/// `error: cause: cause…` — reqwest's own message alone ("builder error")
/// does not say what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A header carrying a secret, built once when the provider is built and
/// marked sensitive (hidden from `Debug` output and from HTTP/2 header
/// compression). A key that cannot be a header value is a start-up error,
/// not a failure on every call.
pub(super) fn secret_header(
    kind: ProviderKind,
    setting: &'static str,
    value: &str,
) -> Result<HeaderValue, ProviderError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        ProviderError::new(
            kind,
            ProviderErrorKind::Transport(format!(
                "{setting} contains characters not allowed in an HTTP header \
                 (a control character such as a pasted newline?)"
            )),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Parses an upstream URL; a bad one is a transport error naming it.
pub(super) fn parse_url(kind: ProviderKind, url: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(url).map_err(|e| {
        ProviderError::new(
            kind,
            ProviderErrorKind::Transport(format!("invalid endpoint URL {url:?}: {e}")),
        )
    })
}

/// One provider endpoint and the pooled client that calls it, both built
/// once, when the provider is built.
pub(super) struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
    /// `Host` for a plain-`http` endpoint (always HTTP/1), built here once:
    /// hyper would otherwise format it on every request. Over https the
    /// connection may be HTTP/2, which carries `:authority` instead, so
    /// hyper is left to it.
    host: Option<HeaderValue>,
}

impl Upstream {
    /// Parses `url` and builds its client.
    pub(super) fn new(kind: ProviderKind, url: &str) -> Result<Upstream, ProviderError> {
        let url = parse_url(kind, url)?;
        let host = if url.scheme() == "http" {
            host_header(&url)
        } else {
            None
        };
        Ok(Upstream {
            client: client(kind, &url)?,
            url,
            host,
        })
    }

    /// A `GET` of `url` (on the endpoint's host) through the same pooled
    /// client: the health probe's model-metadata request.
    pub(super) fn get(&self, url: &reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.client.get(url.clone());
        match &self.host {
            Some(host) if url.host_str() == self.url.host_str() => {
                request.header(HOST, host.clone())
            }
            _ => request,
        }
    }

    /// A `POST` of the JSON `body` to the endpoint.
    pub(super) fn post_json(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = match &self.host {
            Some(host) => request.header(HOST, host.clone()),
            None => request,
        };
        // W3C `traceparent` of the attempt span, when tracing is on.
        crate::telemetry::inject_upstream(request).body(body)
    }
}

/// `host[:port]`, the port only when it is not the scheme's default: the
/// value hyper would send.
fn host_header(url: &reqwest::Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

/// Sends `request`, enforces `opts.timeout` over the whole exchange (headers
/// and body), and decodes a 2xx JSON body as `T`.
pub(super) async fn send_json<T: DeserializeOwned>(
    kind: ProviderKind,
    request: reqwest::RequestBuilder,
    opts: CallOptions,
) -> Result<T, ProviderError> {
    let exchange = async {
        let response = request.send().await.map_err(|e| map_reqwest(kind, e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_body(kind, response).await?;
        if !status.is_success() {
            // The upstream's message is for the operator's log only; the
            // client gets keel's own wording (see `ProviderErrorKind::Status`).
            tracing::warn!(
                provider = kind.as_str(),
                status = status.as_u16(),
                upstream_message = %error_message(&body),
                "upstream refused the call"
            );
            let kind_err = if status.as_u16() == 429 {
                ProviderErrorKind::RateLimited
            } else {
                ProviderErrorKind::Status {
                    status: status.as_u16(),
                }
            };
            return Err(ProviderError {
                provider: kind,
                kind: kind_err,
                retry_after,
            });
        }
        serde_json::from_slice::<T>(&body)
            .map_err(|e| ProviderError::new(kind, ProviderErrorKind::Malformed(e.to_string())))
    };
    match tokio::time::timeout(opts.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ProviderError::new(
            kind,
            ProviderErrorKind::Timeout(opts.timeout),
        )),
    }
}

async fn read_body(
    kind: ProviderKind,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| map_reqwest(kind, e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProviderError::new(
                kind,
                ProviderErrorKind::Malformed(format!("body larger than {MAX_BODY_BYTES} bytes")),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn map_reqwest(kind: ProviderKind, e: reqwest::Error) -> ProviderError {
    // reqwest's text names the upstream URL, which is the operator's
    // business, not the client's: log it whole, keep it out of the error.
    tracing::debug!(provider = kind.as_str(), error = %e, "upstream call failed");
    let e = e.without_url();
    let err = if e.is_connect() {
        ProviderErrorKind::Connect(describe(&e))
    } else if e.is_timeout() {
        ProviderErrorKind::Timeout(Duration::ZERO)
    } else {
        ProviderErrorKind::Transport(describe(&e))
    };
    ProviderError::new(kind, err)
}

/// reqwest's message plus the innermost cause ("connection refused"), which
/// is what tells a reader what happened; `e` has had its URL removed.
fn describe(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    if std::ptr::addr_eq(root, e) {
        e.to_string()
    } else {
        format!("{e}: {root}")
    }
}

/// Parses and checks a model's answer; an unusable answer is a transient
/// `InvalidOutput` error of `kind`.
pub(super) fn parse_content(
    kind: ProviderKind,
    job: &crate::job::Job,
    content: &str,
) -> Result<crate::job::JobOutput, ProviderError> {
    super::parse::parse_output(job, content)
        .map_err(|e| ProviderError::new(kind, ProviderErrorKind::InvalidOutput(e.to_string())))
}

/// The upstream's error message from an OpenAI- or Gemini-style error body
/// (`{"error":{"message":...}}`), else the start of the raw body.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    message.chars().take(300).collect()
}

/// Parses `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(115) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn the_host_header_is_what_hyper_would_send() {
        let host = |url: &str| host_header(&reqwest::Url::parse(url).unwrap()).unwrap();
        assert_eq!(host("http://127.0.0.1:8089/v1"), "127.0.0.1:8089");
        assert_eq!(host("http://Example.COM:80/v1"), "example.com");
        assert_eq!(host("http://[::1]:9000/x"), "[::1]:9000");
        let https = Upstream::new(ProviderKind::OpenAi, "https://api.example.com/v1").unwrap();
        assert!(https.host.is_none());
    }

    /// Over a real socket: a plain-http request carries exactly one `Host`.
    #[tokio::test]
    async fn a_plain_http_request_carries_one_host_header() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed mid-request");
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let upstream =
            Upstream::new(ProviderKind::OpenAi, &format!("http://127.0.0.1:{port}/v1")).unwrap();
        let response = upstream.post_json(b"{}".to_vec()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let head = server.await.unwrap().to_ascii_lowercase();
        let hosts: Vec<&str> = head.lines().filter(|l| l.starts_with("host:")).collect();
        assert_eq!(hosts, [format!("host: 127.0.0.1:{port}")], "{head}");
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(error_message(b"plain failure"), "plain failure");
    }
}
