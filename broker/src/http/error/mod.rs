//! The one error type handlers return: a registered code (which fixes the status) and a message
//! that says what to fix. Server-side causes are logged once, here, and never sent to the client.

mod code;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

pub use code::ErrorCode;

use crate::{db, telemetry::metrics as m};

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<&'static str>,
    /// Which quota a `quota_exceeded` is about.
    quota: Option<&'static str>,
    /// Seconds for `Retry-After`, where the default does not fit.
    retry_after: Option<u64>,
}

/// Body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `file_too_large`.
    pub code: String,
    /// What went wrong and, for 4xx, what to change.
    pub message: String,
    /// With `quota_exceeded`: `stored_bytes`, `active_jobs` or `submit_rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            challenge: None,
            quota: None,
            retry_after: None,
        }
    }

    /// Sets the `WWW-Authenticate` challenge of a 401.
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// Names the quota a `quota_exceeded` is about, and when to retry (if waiting helps).
    pub fn with_quota(mut self, quota: &'static str, retry_after: Option<u64>) -> Self {
        self.quota = Some(quota);
        self.retry_after = retry_after;
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no {what} with this id"))
    }

    pub fn invalid_id(raw: &str) -> Self {
        let shown: String = raw.chars().take(64).collect();
        Self::new(
            ErrorCode::InvalidId,
            format!(
                "`{}` is not a valid id (expected a UUID such as 0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b)",
                shown.escape_default()
            ),
        )
    }

    /// Postgres (or another dependency) is unreachable; the client may retry.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "Baton cannot reach its database right now; retry shortly",
        )
    }

    /// Baton sheds load rather than queueing without bound.
    pub fn busy(what: &str) -> Self {
        Self::new(
            ErrorCode::Busy,
            format!("Baton is at its limit of {what}; retry shortly"),
        )
    }

    /// An unexpected failure: `cause` is logged, the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error; it has been logged")
    }

    /// A storage failure while writing an upload.
    pub fn storage(cause: std::io::Error) -> Self {
        if let Some(unavailable) = crate::storage::Unavailable::find(&cause) {
            tracing::warn!(error = %unavailable, "storage unavailable");
            return Self::new(
                ErrorCode::StorageUnavailable,
                "the file store cannot be reached right now; nothing was stored, retry later",
            );
        }
        if cause.kind() == std::io::ErrorKind::StorageFull {
            tracing::error!(error = %cause, "storage volume is full");
            return Self::new(ErrorCode::StorageFull, "the storage volume is full; retry later");
        }
        Self::internal(format_args!("storage: {cause}"))
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if db::is_unavailable(&error) {
            tracing::warn!(error = %error, "database unavailable");
            return Self::unavailable();
        }
        if db::is_data_exception(&error) {
            // Input the edge should have refused (a NUL in text, a number out of range): the
            // client's fault, never a 500.
            tracing::warn!(error = %error, "database refused a value");
            return Self::new(
                ErrorCode::InvalidInput,
                "a value in the request cannot be stored; check for NUL characters and out-of-range numbers",
            );
        }
        Self::internal(format_args!("database: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!(m::HTTP_ERRORS, "code" => self.code.as_str()).increment(1);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message,
                quota: self.quota.map(str::to_owned),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let unread_body = matches!(
            self.code,
            ErrorCode::Busy | ErrorCode::QuotaExceeded | ErrorCode::StorageQuotaExceeded
        );
        if matches!(status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) || unread_body {
            // The rest of the body is not read; the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let retry_after = self
            .retry_after
            .or((status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
