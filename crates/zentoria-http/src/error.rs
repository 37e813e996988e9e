//! The one JSON error shape: `{"error": {"code", "message", "request_id"}}`. Handlers return
//! [`ApiError`] through `?`; [`crate::middleware::normalize_errors`] rewrites every other
//! error response (unknown routes, framework rejections, timeouts) into the same shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use zentoria_core::Error;

tokio::task_local! {
    /// The id of the request being served, for error bodies and logs.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code to branch on.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The request id, also in the `X-Request-Id` header and the server's logs.
    pub request_id: String,
}

/// Builds an error response in the shared shape.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
            request_id: current_request_id(),
        },
    };
    (status, axum::Json(body)).into_response()
}

/// A domain error on its way out over HTTP.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::RateLimited { .. } | Error::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Upstream(_) => StatusCode::BAD_GATEWAY,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        match &self.0 {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, request_id = %current_request_id(), "internal error");
            }
            Error::Unavailable(reason) => tracing::warn!(%reason, "service unavailable"),
            _ => {}
        }
        let mut resp = error_response(status, self.0.code(), self.0.public_message());
        if let Error::RateLimited { retry_after_secs } = self.0 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zentoria\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_internal() {
        let resp = ApiError(Error::internal("password=hunter2 at db.rs:42")).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(resp).await;
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("hunter2"));
        assert!(!body.to_string().contains("db.rs"));
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after_and_request_ids_flow_into_bodies() {
        let resp = REQUEST_ID
            .scope("req-1".into(), async {
                ApiError(Error::RateLimited {
                    retry_after_secs: 7,
                })
                .into_response()
            })
            .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        assert_eq!(body_of(resp).await["error"]["request_id"], "req-1");
    }
}
