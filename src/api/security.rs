//! Edge protections: security headers on every response, CORS from
//! `CORS_ORIGINS`, response compression above 1 KB, and a cap on the number
//! of request headers (431 with the common JSON body).

use super::error::error_response;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
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
