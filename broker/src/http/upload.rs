//! Reading the submit form: text parts `model` and `params`, and file parts streamed to disk
//! with every limit enforced as the bytes arrive.

use std::time::Duration;

use axum::extract::multipart::{Field, Multipart, MultipartError};
use serde_json::Value;

use super::{error::ApiError, filename};
use crate::{
    config::{Limits, parse_duration},
    jobs::submit::StagedFile,
    storage::{BlobWriter, Storage, sniff},
};

const MAX_MODEL_BYTES: usize = 64;
const MAX_INPUT_NAME_BYTES: usize = 128;

/// A fully received form whose files are written and synced in `tmp/`.
#[derive(Debug)]
pub struct Form {
    pub model: String,
    pub params: Value,
    pub files: Vec<StagedFile>,
    pub max_attempts: Option<u32>,
    pub queue_timeout: Option<Duration>,
    pub run_timeout: Option<Duration>,
}

/// Longest timeout a submission may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 86_400);

pub async fn read_form(multipart: &mut Multipart, storage: &Storage, limits: &Limits) -> Result<Form, ApiError> {
    let mut model: Option<String> = None;
    let mut params: Option<Value> = None;
    let mut max_attempts: Option<u32> = None;
    let mut queue_timeout: Option<Duration> = None;
    let mut run_timeout: Option<Duration> = None;
    let mut files: Vec<StagedFile> = Vec::new();
    let mut job_bytes: u64 = 0;

    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.file_name().is_some() {
            if files.len() >= limits.max_files as usize {
                return Err(ApiError::too_large(
                    "too_many_files",
                    format!("a job may have at most {} files", limits.max_files),
                ));
            }
            let file = read_file(field, storage, limits, &mut job_bytes).await?;
            if files.iter().any(|f| f.name == file.name) {
                return Err(ApiError::bad_request(
                    "duplicate_input_name",
                    format!("two file parts are named `{}`; give each input its own name", file.name),
                ));
            }
            files.push(file);
            continue;
        }
        let part = field.name().unwrap_or_default().to_owned();
        match part.as_str() {
            "model" => {
                if model.is_some() {
                    return Err(duplicate_field("model"));
                }
                let raw = read_text(field, MAX_MODEL_BYTES, || {
                    ApiError::bad_request("invalid_model", "`model` must be at most 64 characters")
                })
                .await?;
                if !baton_protocol::queue::is_valid_model(&raw) {
                    return Err(ApiError::bad_request(
                        "invalid_model",
                        "`model` must match [a-z0-9][a-z0-9._-]{0,63}",
                    ));
                }
                model = Some(raw);
            }
            "params" => {
                if params.is_some() {
                    return Err(duplicate_field("params"));
                }
                let max = usize::try_from(limits.max_params_bytes).unwrap_or(usize::MAX);
                let raw = read_text(field, max, || {
                    ApiError::too_large(
                        "params_too_large",
                        format!("`params` may be at most {} bytes", limits.max_params_bytes),
                    )
                })
                .await?;
                params = Some(parse_params(&raw)?);
            }
            "max_attempts" => {
                let raw = read_option(field, "max_attempts", &max_attempts).await?;
                let value = raw.trim().parse::<u32>().ok().filter(|n| (1..=20).contains(n));
                max_attempts = Some(value.ok_or_else(|| {
                    ApiError::bad_request("invalid_max_attempts", "`max_attempts` must be an integer from 1 to 20")
                })?);
            }
            name @ ("queue_timeout" | "run_timeout") => {
                let slot = if name == "queue_timeout" {
                    &mut queue_timeout
                } else {
                    &mut run_timeout
                };
                let raw = read_option(field, name, slot).await?;
                let value = parse_duration(&raw).ok().filter(|d| !d.is_zero() && *d <= MAX_TIMEOUT);
                *slot = Some(value.ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_timeout",
                        format!("`{name}` must be a duration such as 90s, 30m or 12h, at most 30d"),
                    )
                })?);
            }
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "unexpected text part `{other}`: send `model`, optional `params`, `max_attempts`, \
                         `queue_timeout`, `run_timeout`, and file parts (with a filename)"
                    ),
                ));
            }
        }
    }

    let model = model.ok_or_else(|| ApiError::bad_request("missing_model", "the text part `model` is required"))?;
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "missing_files",
            "send at least one file part (a part with a filename)",
        ));
    }
    Ok(Form {
        model,
        params: params.unwrap_or_else(|| Value::Object(Default::default())),
        files,
        max_attempts,
        queue_timeout,
        run_timeout,
    })
}

async fn read_file(
    mut field: Field<'_>,
    storage: &Storage,
    limits: &Limits,
    job_bytes: &mut u64,
) -> Result<StagedFile, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    if name.is_empty() || name.len() > MAX_INPUT_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_input_name",
            "each file part needs a name of 1 to 128 printable characters (the input's name)",
        ));
    }
    let filename = filename::sanitize(field.file_name().unwrap_or_default());
    let hint = field.content_type().map(str::to_owned);

    let mut writer = BlobWriter::create(storage.temp_path());
    let mut head: Vec<u8> = Vec::with_capacity(sniff::SNIFF_LEN);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        let len = chunk.len() as u64;
        if writer.size() + len > limits.max_file_bytes {
            // Dropping the writer removes the partial file now, before anything else.
            drop(writer);
            return Err(ApiError::too_large(
                "file_too_large",
                format!(
                    "file `{name}` exceeds the limit of {} bytes per file",
                    limits.max_file_bytes
                ),
            ));
        }
        if *job_bytes + len > limits.max_job_bytes {
            drop(writer);
            return Err(ApiError::too_large(
                "job_too_large",
                format!(
                    "the job's files exceed the limit of {} bytes per job",
                    limits.max_job_bytes
                ),
            ));
        }
        *job_bytes += len;
        if head.len() < sniff::SNIFF_LEN {
            let take = (sniff::SNIFF_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        writer.write(chunk).await.map_err(ApiError::storage)?;
    }
    let written = writer.finish().await.map_err(ApiError::storage)?;
    Ok(StagedFile {
        name,
        filename,
        content_type: sniff::content_type(&head, hint.as_deref()),
        written,
    })
}

async fn read_text(mut field: Field<'_>, max: usize, too_long: impl Fn() -> ApiError) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > max {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("invalid_text", "text parts must be UTF-8"))
}

/// Reads a short option part, refusing it twice.
async fn read_option<T>(field: Field<'_>, name: &str, seen: &Option<T>) -> Result<String, ApiError> {
    if seen.is_some() {
        return Err(duplicate_field(name));
    }
    read_text(field, 64, || {
        ApiError::bad_request("invalid_option", format!("`{name}` is too long"))
    })
    .await
}

fn parse_params(raw: &str) -> Result<Value, ApiError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_params",
            "`params` must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_params",
            format!("`params` is not valid JSON: {e}"),
        )),
    }
}

fn duplicate_field(name: &str) -> ApiError {
    ApiError::bad_request(
        "duplicate_field",
        format!("the text part `{name}` was sent more than once"),
    )
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large("request_too_large", "the request body is larger than Baton accepts");
    }
    ApiError::bad_request(
        "invalid_multipart",
        format!("malformed multipart body: {}", error.body_text()),
    )
}

/// Reads and discards what is left of a rejected request, up to a bound, so that the client
/// is reading when the error arrives (browsers and many HTTP clients otherwise report a reset
/// connection instead of the 413).
pub async fn drain(multipart: &mut Multipart, max_bytes: u64) {
    let mut drained: u64 = 0;
    let drain = async {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                drained += chunk.len() as u64;
                if drained > max_bytes {
                    return;
                }
            }
        }
    };
    // A bound in time as well, for clients that trickle.
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::debug!("gave up draining a rejected request");
    }
}
