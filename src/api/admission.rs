//! Admission: the checks a request passes before any route sees it, run by
//! the request context middleware (so refusals carry the request id and the
//! common JSON error body).
//!
//! - **The request head** ([`refuse_head`]): HTTP/1.1 without exactly one
//!   valid `Host` is a 400 (RFC 9112 §3.2); a URI longer than
//!   [`MAX_URI_LENGTH`] is a 414; a `Content-Length` above `MAX_REQUEST_SIZE`
//!   is a 413 *before the body is read* — so a client announcing a huge body
//!   is refused at once, and one sending `Expect: 100-continue` gets the 413
//!   instead of `100 Continue`.
//! - **The concurrency budget** ([`Budget`]): one process-wide count of
//!   requests in flight (`MAX_CONCURRENT_REQUESTS`), shared by every route;
//!   a request over it is answered 503 at once, never queued. Health and the
//!   operator API draw on a separate reserved budget of [`RESERVED_BUDGET`],
//!   so probes and operators still get answers while the public API is
//!   saturated. Admission is one `try_acquire` (an atomic
//!   compare-and-swap), no lock and no queue.

use super::error::ApiError;
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest request target (path and query) keel accepts; longer is a 414
/// with the JSON body. (hyper refuses targets above 65 534 bytes itself, with
/// an empty 414.)
pub const MAX_URI_LENGTH: usize = 8 * 1024;

/// Requests to health and the operator API served at once, on top of (and
/// independent of) `MAX_CONCURRENT_REQUESTS`.
pub const RESERVED_BUDGET: usize = 64;

/// The process-wide in-flight budgets (see the module docs). Cloning shares
/// them.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Every route but health and `/internal`.
    public: Arc<Semaphore>,
    /// Health and `/internal`.
    reserved: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `public` requests in flight for the public API.
    pub fn new(public: usize) -> Budget {
        Budget {
            public: Arc::new(Semaphore::new(public)),
            reserved: Arc::new(Semaphore::new(RESERVED_BUDGET)),
        }
    }

    /// A slot for a request to `path`, held until the response is made;
    /// `None` when that budget is used up (the caller answers 503).
    pub fn try_admit(&self, path: &str) -> Option<OwnedSemaphorePermit> {
        let pool = if is_reserved(path) {
            &self.reserved
        } else {
            &self.public
        };
        pool.clone().try_acquire_owned().ok()
    }
}

/// Paths that draw on the reserved budget: liveness, readiness and health
/// probes, and the operator API.
fn is_reserved(path: &str) -> bool {
    path.starts_with("/internal")
        || path.starts_with("/v1/health")
        || path == "/health"
        || path == "/v1/text_processing/health"
}

/// The refusal for a request whose head already shows it cannot be served
/// (see the module docs); `None` lets it through.
pub fn refuse_head(request: &Request, max_body: usize) -> Option<Response> {
    let headers = request.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            return Some(bad_request("HTTP/1.1 requests must carry a Host header"));
        }
        (Some(_), Some(_)) => {
            return Some(bad_request("more than one Host header"));
        }
        (Some(host), None) if !valid_host(host) => {
            return Some(bad_request("the Host header is not a valid host[:port]"));
        }
        _ => {}
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_LENGTH {
        return Some(super::error::error_response(
            axum::http::StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            &format!("the request target is longer than {MAX_URI_LENGTH} bytes"),
            None,
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        let mut response = ApiError::PayloadTooLarge { limit: max_body }.into_response();
        // The body stays unread, so the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Some(response);
    }
    None
}

fn bad_request(message: &str) -> Response {
    ApiError::BadRequest(message.to_string()).into_response()
}

/// `host[:port]` without user info, as RFC 9112 allows in `Host`.
fn valid_host(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && !v.contains('@'))
        .is_some_and(|v| v.parse::<axum::http::uri::Authority>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;

    fn request(version: Version, headers: &[(&str, &str)], uri: &str) -> Request {
        let mut builder = Request::builder().uri(uri).version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn status(r: Option<Response>) -> Option<StatusCode> {
        r.map(|r| r.status())
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let ok = request(Version::HTTP_11, &[("host", "example.com:8000")], "/");
        assert_eq!(status(refuse_head(&ok, 10)), None);
        let http10 = request(Version::HTTP_10, &[], "/");
        assert_eq!(status(refuse_head(&http10, 10)), None);
        for headers in [
            &[][..],
            &[("host", "a"), ("host", "b")][..],
            &[("host", "user@example.com")][..],
            &[("host", "exa mple")][..],
        ] {
            let r = request(Version::HTTP_11, headers, "/");
            assert_eq!(
                status(refuse_head(&r, 10)),
                Some(StatusCode::BAD_REQUEST),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn long_targets_and_declared_oversize_bodies_are_refused() {
        let uri = format!("/v1/health?{}", "a".repeat(MAX_URI_LENGTH));
        let r = request(Version::HTTP_11, &[("host", "h")], &uri);
        assert_eq!(status(refuse_head(&r, 10)), Some(StatusCode::URI_TOO_LONG));
        let r = request(
            Version::HTTP_11,
            &[("host", "h"), ("content-length", "11")],
            "/",
        );
        let refused = refuse_head(&r, 10).unwrap();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        let r = request(
            Version::HTTP_11,
            &[("host", "h"), ("content-length", "10")],
            "/",
        );
        assert_eq!(status(refuse_head(&r, 10)), None);
    }

    #[test]
    fn the_budget_is_shared_and_health_has_its_own() {
        let budget = Budget::new(2);
        let a = budget.try_admit("/v1/text_processing/process");
        let b = budget
            .clone()
            .try_admit("/v1/text_processing/batch_process");
        assert!(a.is_some() && b.is_some());
        assert!(budget.try_admit("/v1/auth/status").is_none(), "one budget");
        assert!(budget.try_admit("/v1/health/ready").is_some());
        assert!(budget.try_admit("/internal/resilience/health").is_some());
        drop(a);
        assert!(budget.try_admit("/v1/auth/status").is_some());
    }
}
