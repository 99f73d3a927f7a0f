//! One error type for every surface: a status and a message that says what is wrong,
//! in a body both client families read (`detail` for Luma clients, `error` for
//! OpenAI-style clients).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::tasks::EngineError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after_secs: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// An internal fault: the caller gets an opaque reference, the log gets the detail once.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error.reference = %reference, error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error (reference {reference})"))
    }

    fn code(&self) -> (&'static str, &'static str) {
        match self.status {
            StatusCode::BAD_REQUEST => ("invalid_request", "invalid_request_error"),
            StatusCode::UNAUTHORIZED => ("invalid_api_key", "authentication_error"),
            StatusCode::FORBIDDEN => ("forbidden", "permission_error"),
            StatusCode::NOT_FOUND => ("not_found", "invalid_request_error"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "invalid_request_error"),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "invalid_request_error"),
            StatusCode::CONFLICT => ("conflict", "invalid_request_error"),
            StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "invalid_request_error"),
            StatusCode::UNPROCESSABLE_ENTITY => ("idempotency_key_reused", "invalid_request_error"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "rate_limit_error"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "server_error"),
            _ => ("internal_error", "server_error"),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::bad_request(m),
            EngineError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            EngineError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            EngineError::NotFound => ApiError::not_found("no such task"),
            EngineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            EngineError::Unprocessable(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            EngineError::Busy { message, retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
            },
            EngineError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            EngineError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// The error body every surface answers with.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for Luma clients.
    pub detail: String,
    pub error: ErrorDetail,
}

/// The same message for OpenAI-style clients, with a stable code.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request`, `invalid_api_key`, `forbidden`, `not_found`, `too_large`, `rate_limited`, ...
    pub code: &'static str,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, kind) = self.code();
        let body = ErrorBody {
            detail: self.message.clone(),
            error: ErrorDetail { code, message: self.message, kind },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
