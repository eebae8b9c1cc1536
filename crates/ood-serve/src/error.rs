//! Errors: [`ApiError`] is what one request gets (a status and `{"error": "..."}`; the server
//! keeps serving), [`ServeError`] what stops the server from starting.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A request's failure, mapped to its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed body (undecodable image, bad JSON, broken multipart or .npy).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but not decidable (wrong shape, channel count, columns, non-finite values).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("unsupported content type {0:?}: send image/png, image/jpeg, multipart/form-data, application/x-npy or application/json")]
    UnsupportedMedia(String),
    #[error("no route {0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    QueueFull(#[from] crate::batcher::QueueFull),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::QueueFull(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The worker's error for one request: bad inputs are the client's (422), the rest ours.
    pub fn from_work(e: crate::batcher::WorkError) -> Self {
        use ood_bundle::BundleError as B;
        match &e {
            crate::batcher::WorkError::Bundle(
                B::BadInput { .. } | B::Score(_) | B::Fitted(_) | B::Limit(_) | B::Data(_),
            ) => ApiError::Unprocessable(e.to_string()),
            _ => ApiError::Internal(error_chain(&e)),
        }
    }
}

/// `e: cause: cause`, for errors whose message does not already hold their cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::http::json_response(
            self.status(),
            &serde_json::json!({ "error": self.to_string() }),
        )
    }
}

/// What keeps the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Options(#[from] ood_core::limits::LimitError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Io(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}
