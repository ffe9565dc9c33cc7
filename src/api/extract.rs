//! `JsonBody<T>`: axum's `Json` extractor with its rejections turned into
//! [`ApiError`], so a bad body gets the common error body and the right status
//! (400 syntax, 413 size, 415 content type, 422 shape).

use super::AppState;
use super::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(map_rejection(
                rejection,
                state.engine.settings().max_request_size,
            )),
        }
    }
}

fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(e) => ApiError::InvalidJson(e.body_text()),
        JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit }
        }
        other => ApiError::InvalidJson(other.body_text()),
    }
}
