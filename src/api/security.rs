//! Edge protections: security headers on every response, CORS from
//! `CORS_ORIGINS`, response compression above 1 KB, and a cap on the number
//! of request headers (431 with the common JSON body).

use super::error::error_response;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use tower::{Layer, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionBody, CompressionLayer};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Most request headers accepted; more is a 431. (hyper itself refuses more
/// than 100 before keel sees the request.)
pub const MAX_REQUEST_HEADERS: usize = 64;

/// The Content-Security-Policy: everything from keel itself; inline script
/// and style for the self-contained dashboard and docs pages.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The 431 answer for a request with more than [`MAX_REQUEST_HEADERS`]
/// headers; `None` when the request is within the cap.
pub fn refuse_many_headers(headers: &HeaderMap) -> Option<Response> {
    (headers.len() > MAX_REQUEST_HEADERS).then(|| {
        error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            &format!("too many request headers (at most {MAX_REQUEST_HEADERS})"),
            None,
        )
    })
}

/// Responses of at least this many bytes (or of unknown size) are
/// compressed for clients that accept gzip or br.
pub const COMPRESS_ABOVE: u64 = 1024;

/// Compresses `response` as the request's `Accept-Encoding` values allow
/// (gzip or br, adding `Vary: accept-encoding`) when it is at least
/// [`COMPRESS_ABOVE`] bytes or of unknown size; smaller responses are
/// returned untouched. tower-http does the encoding, but is applied here to
/// the large responses only rather than as a layer: its body type is ~5.8 KB,
/// and as a layer every response, compressed or not, was built in it and
/// copied with it on its way out. What this pays (callgrind, release build,
/// cache-miss requests): ~3 k of ~168 k instructions per request, 1.8 %, so it
/// stays (issue 16 item 7 keeps hand-written code that pays more than 1 %).
pub async fn compress_if_large(response: Response, accept_encoding: Vec<HeaderValue>) -> Response {
    let predicate = SizeAbove::new(COMPRESS_ABOVE);
    if !predicate.should_compress(&response) {
        return response;
    }
    let mut request = axum::http::Request::new(());
    for value in accept_encoding {
        request.headers_mut().append(header::ACCEPT_ENCODING, value);
    }
    // A one-shot service handing over the response already made.
    let mut response = Some(response);
    let service = tower::service_fn(move |_: axum::http::Request<()>| {
        let response = response
            .take()
            .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let compressed: Result<Response<CompressionBody<Body>>, Infallible> = CompressionLayer::new()
        .compress_when(predicate)
        .layer(service)
        .oneshot(request)
        .await;
    match compressed {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The security headers every response carries, unless the handler set its
/// own value; `hsts` (production) adds `Strict-Transport-Security`.
pub fn add_security_headers(headers: &mut HeaderMap, hsts: bool) {
    const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ];
    for (name, value) in fixed {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if hsts && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// CORS for the configured origins (`*` = any); `None` when no origin is
/// configured (browsers then allow same-origin calls only).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("request-timeout"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-process-time"),
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderName::from_static("x-ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
