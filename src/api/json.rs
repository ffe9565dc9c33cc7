//! `Json<T>`: the JSON response body of every handler (requests are read by
//! [`super::extract::JsonBody`]).
//!
//! It serialises straight into one `Vec` sized for a typical answer and hands
//! that to hyper as a single buffer. axum's own `Json` writes through a
//! `BytesMut` writer, one small `put_slice` with its capacity check per JSON
//! token: about 5 000 instructions for a 500-byte process answer, a few
//! percent of a whole cache-miss request.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// First allocation for a body: a process answer is about 500 bytes, and a
/// larger body grows the buffer as usual.
const INITIAL_CAPACITY: usize = 1024;

/// A JSON response: `200` with `content-type: application/json` unless
/// wrapped in a `(StatusCode, Json(..))` tuple.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                let mut response = Response::new(Body::from(body));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            // Only a type that cannot be JSON (a map with non-string keys)
            // gets here; like axum, answer a plain 500, which the request
            // context turns into the common error body.
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the response: {e}"),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::HashMap;

    #[tokio::test]
    async fn a_value_becomes_a_json_200() {
        let response = Json(serde_json::json!({"a": [1, "x\"y"], "b": null})).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"a":[1,"x\"y"],"b":null}"#);
    }

    #[tokio::test]
    async fn a_status_tuple_keeps_the_status() {
        let response = (StatusCode::ACCEPTED, Json(vec![1, 2])).into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn an_unencodable_value_is_a_500_not_a_panic() {
        let mut map = HashMap::new();
        map.insert((1, 2), "tuple keys are not JSON");
        let response = Json(map).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
