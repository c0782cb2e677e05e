//! Reading the submit form from the request body: text parts `model`, `params` and options, and
//! file parts streamed to storage with every limit enforced as the bytes arrive.
//!
//! The body is read to its end before anything is committed: a form is accepted only if the
//! body ends with its closing boundary (and at most a line break), so a `Content-Length` that
//! promises more than the form, or bytes after it, never yield a 202.

mod close_delimiter;
mod metered;
mod parts;

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, BodyDataStream},
    http::{HeaderMap, header},
};
use futures::StreamExt;

pub use metered::Rules;
pub use parts::Form;

use self::metered::{Cut, MeteredBody, Phase};
use super::error::{ApiError, ErrorCode};
use crate::{config::Limits, storage::Storage};

/// Bytes allowed between two parts' contents: the preamble or a boundary, plus part headers.
pub const MAX_PART_OVERHEAD: u64 = 16 * 1024;

/// How much of a rejected body is read before answering, so the client sees the error (many
/// clients report a reset connection instead of a 413 they did not read).
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads the whole form. On an error, files written so far are already removed.
pub async fn read_form(headers: &HeaderMap, body: Body, storage: &Storage, limits: &Limits) -> Result<Form, ApiError> {
    let boundary = boundary(headers)?;
    let phase = Arc::new(Phase::default());
    let mut body =
        MeteredBody::new(body.into_data_stream(), limits.body_rules(), Arc::clone(&phase)).with_boundary(&boundary);
    let read = {
        let mut multipart = multer::Multipart::new(&mut body, boundary.as_str());
        parts::read_parts(&mut multipart, &phase, storage, limits).await
    };
    match read {
        Ok(form) => {
            read_to_end(&mut body).await?;
            Ok(form)
        }
        Err(error) => {
            if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                drain(body.into_inner()).await;
            }
            Err(error)
        }
    }
}

fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the job as `Content-Type: multipart/form-data; boundary=...`",
        )
    })
}

/// Reads what follows the closing boundary and checks that it is nothing but a line break.
async fn read_to_end<S>(body: &mut MeteredBody<S>) -> Result<(), ApiError>
where
    MeteredBody<S>: futures::Stream<Item = Result<bytes::Bytes, Cut>> + Unpin,
{
    let mut after: u64 = 0;
    while let Some(chunk) = body.next().await {
        after += chunk.map_err(cut_error)?.len() as u64;
        if after > MAX_PART_OVERHEAD {
            break;
        }
    }
    // Nothing may follow the first close delimiter but one line break.
    let clean = match body.after_close() {
        Some(0) => true,
        Some(2) => body.tail().ends_with(b"\r\n"),
        _ => false,
    };
    if body.ended() && clean {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::TrailingBytes,
        "the body goes on after the form's closing boundary; send exactly the form",
    ))
}

/// Reads and discards what is left of a rejected body, within a bound in bytes and in time.
async fn drain(mut body: BodyDataStream) {
    let mut drained: u64 = 0;
    let drain = async {
        while let Some(Ok(chunk)) = body.next().await {
            drained += chunk.len() as u64;
            if drained > DRAIN_BYTES {
                return;
            }
        }
    };
    if tokio::time::timeout(DRAIN_TIME, drain).await.is_err() {
        tracing::debug!("gave up draining a rejected request");
    }
}

fn multipart_error(error: multer::Error) -> ApiError {
    match error {
        multer::Error::StreamReadFailed(source) => match source.downcast::<Cut>() {
            Ok(cut) => cut_error(*cut),
            Err(other) => ApiError::new(ErrorCode::InvalidMultipart, format!("reading the body failed: {other}")),
        },
        other => ApiError::new(
            ErrorCode::InvalidMultipart,
            format!("malformed multipart body: {other}"),
        ),
    }
}

fn cut_error(cut: Cut) -> ApiError {
    let code = match cut {
        Cut::TooSlow { .. } => ErrorCode::UploadTooSlow,
        Cut::TooLarge(_) => ErrorCode::RequestTooLarge,
        Cut::PartHeadersTooLarge(_) => ErrorCode::PartHeadersTooLarge,
        Cut::Read(_) => ErrorCode::InvalidMultipart,
    };
    ApiError::new(code, cut.to_string())
}
