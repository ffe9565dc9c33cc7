//! `JsonBody<T>`: the one JSON request-body extractor of every route with a
//! body, so a bad body gets the common error body and the right status on
//! every route: 400 syntax, 408 body too slow, 413 size, 415 content type,
//! 422 shape.
//!
//! What it adds to axum's `Json`:
//! - **objects only**: a body (and every struct inside it) must be a JSON
//!   object; an array where an object is expected is a 422 (see
//!   [`super::strict_json`]; plain serde would fill the struct's fields from
//!   the array in order);
//! - **a body-read deadline** (`HTTP_BODY_READ_TIMEOUT_SECONDS`): a client
//!   that sends part of its body and stops, or trickles it, is answered 408
//!   with the JSON body and the connection is closed.
//!
//! The size limit is the route's `DefaultBodyLimit` (`MAX_REQUEST_SIZE`); a
//! declared `Content-Length` above it was already refused before any handler
//! ran ([`super::admission`]). Error messages keep axum's wording.

use super::AppState;
use super::error::ApiError;
use super::strict_json::ObjectsOnly;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON request body of type `T` (an object).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let settings = state.engine.settings();
        let deadline = settings.http_body_read_timeout;
        let bytes = match tokio::time::timeout(deadline, Bytes::from_request(req, state)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(rejection)) => return Err(map_rejection(rejection, settings.max_request_size)),
            Err(_) => return Err(ApiError::RequestTimeout(deadline)),
        };
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a request body: JSON whose structs are objects, nothing after it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(ObjectsOnly(&mut de)).map_err(|e| {
        use serde_json::error::Category;
        match e.inner().classify() {
            Category::Data => ApiError::validation(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            )),
            Category::Syntax | Category::Eof | Category::Io => syntax_error(e),
        }
    })?;
    de.end().map_err(syntax_error)?;
    Ok(value)
}

fn syntax_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidJson(format!("Failed to parse the request body as JSON: {e}"))
}

/// `application/json`, with parameters, or any `application/*+json`.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

fn map_rejection(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::InvalidJson(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        text: String,
        #[serde(default)]
        n: Option<u32>,
    }

    #[test]
    fn only_objects_parse() {
        assert!(parse::<Body>(br#"{"text": "t", "n": 1}"#).is_ok());
        for body in [&b"[]"[..], br#"["t", 1]"#, b"null", b"3", br#""t""#] {
            let err = parse::<Body>(body).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let err = parse::<Body>(br#"{"text": "t", "n": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("n: invalid type"), "{err}");
    }

    #[test]
    fn syntax_errors_and_trailing_bytes_are_400() {
        for body in [&b"{"[..], b"", br#"{"text": "t"} x"#] {
            let err = parse::<Body>(body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            json_content_type(&h)
        };
        assert!(check("application/json"));
        assert!(check("application/json; charset=utf-8"));
        assert!(check("Application/JSON"));
        assert!(check("application/cloudevents+json"));
        assert!(!check("text/json"));
        assert!(!check("application/jsonx"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
