//! Extractors whose rejections are Baton's JSON errors, never the framework's plain text.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use crate::domain::parse_id;

/// The `{id}` of a path as a typed id (`IdPath<JobId>`, `IdPath<FileId>`), in the one spelling
/// Baton accepts (see [`parse_id`]).
#[derive(Debug, Clone, Copy)]
pub struct IdPath<Id>(pub Id);

impl<S: Send + Sync, Id: From<Uuid>> FromRequestParts<S> for IdPath<Id> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    ErrorCode::InvalidId,
                    format!("the id in the path is malformed: {}", rejection.body_text()),
                )
            })?;
        parse_id(&raw)
            .map(|id| Self(Id::from(id)))
            .ok_or_else(|| ApiError::invalid_id(&raw))
    }
}

/// Largest JSON body an admin operation reads.
const MAX_JSON_BODY: usize = 64 * 1024;

/// A JSON request body (at most 64 KiB) whose rejections are `invalid_body`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidBody,
                    format!("cannot read the body (at most 64 KiB): {e}"),
                )
            })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("the body is not the expected JSON: {e}"),
            )
        })
    }
}
