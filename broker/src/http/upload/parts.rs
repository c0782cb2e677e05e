//! The parts of the submit form, one by one: which part is which, and the limits of each.

use std::time::Duration;

use multer::{Field, Multipart};
use serde_json::Value;

use super::{metered::Phase, multipart_error};
use crate::{
    config::Limits,
    domain::parse_duration,
    http::{
        error::{ApiError, ErrorCode},
        filename,
    },
    jobs::submit::StagedFile,
    storage::{Storage, sniff},
};

const MAX_MODEL_BYTES: usize = 64;
const MAX_INPUT_NAME_BYTES: usize = 128;
const MAX_OPTION_BYTES: usize = 64;

/// Shortest and longest timeout a submission may ask for.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 86_400);

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

#[derive(Default)]
struct Options {
    model: Option<String>,
    params: Option<Value>,
    max_attempts: Option<u32>,
    queue_timeout: Option<Duration>,
    run_timeout: Option<Duration>,
}

pub(super) async fn read_parts(
    multipart: &mut Multipart<'_>,
    phase: &Phase,
    storage: &Storage,
    limits: &Limits,
) -> Result<Form, ApiError> {
    let mut options = Options::default();
    let mut files: Vec<StagedFile> = Vec::new();
    let mut job_bytes: u64 = 0;

    loop {
        phase.overhead();
        let Some(field) = multipart.next_field().await.map_err(multipart_error)? else {
            break;
        };
        phase.content();
        if is_file_part(&field)? {
            if files.len() >= limits.max_files as usize {
                return Err(ApiError::new(
                    ErrorCode::TooManyFiles,
                    format!("a job may have at most {} files", limits.max_files),
                ));
            }
            let file = read_file(field, storage, limits, &mut job_bytes).await?;
            if files.iter().any(|f| f.name == file.name) {
                return Err(ApiError::new(
                    ErrorCode::DuplicateInputName,
                    format!("two file parts are named `{}`; give each input its own name", file.name),
                ));
            }
            files.push(file);
        } else {
            read_option(field, &mut options, limits).await?;
        }
    }

    let model = options
        .model
        .ok_or_else(|| ApiError::new(ErrorCode::MissingModel, "the text part `model` is required"))?;
    if files.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingFiles,
            "send at least one file part (a part with a filename)",
        ));
    }
    Ok(Form {
        model,
        params: options.params.unwrap_or_else(|| Value::Object(Default::default())),
        files,
        max_attempts: options.max_attempts,
        queue_timeout: options.queue_timeout,
        run_timeout: options.run_timeout,
    })
}

/// A part with a `filename` is a file. A filename that is not UTF-8 is refused rather than
/// taken for a text part.
fn is_file_part(field: &Field<'_>) -> Result<bool, ApiError> {
    if field.file_name().is_some() {
        return Ok(true);
    }
    let disposition = field
        .headers()
        .get(axum::http::header::CONTENT_DISPOSITION)
        .map(|v| v.as_bytes().to_ascii_lowercase())
        .unwrap_or_default();
    if disposition.windows(8).any(|w| w == b"filename") {
        return Err(ApiError::new(
            ErrorCode::InvalidFilename,
            "a file part's `filename` must be UTF-8 (in `filename=\"...\"`)",
        ));
    }
    Ok(false)
}

async fn read_option(field: Field<'_>, options: &mut Options, limits: &Limits) -> Result<(), ApiError> {
    let part = field.name().unwrap_or_default().to_owned();
    match part.as_str() {
        "model" => {
            once(&options.model, "model")?;
            let raw = read_text(field, MAX_MODEL_BYTES, || {
                ApiError::new(ErrorCode::InvalidModel, "`model` must be at most 64 characters")
            })
            .await?;
            if !baton_protocol::queue::is_valid_model(&raw) {
                return Err(ApiError::new(
                    ErrorCode::InvalidModel,
                    "`model` must match [a-z0-9][a-z0-9._-]{0,63}",
                ));
            }
            options.model = Some(raw);
        }
        "params" => {
            once(&options.params, "params")?;
            let max = usize::try_from(limits.max_params_bytes).unwrap_or(usize::MAX);
            let raw = read_text(field, max, || {
                ApiError::new(
                    ErrorCode::ParamsTooLarge,
                    format!("`params` may be at most {} bytes", limits.max_params_bytes),
                )
            })
            .await?;
            options.params = Some(parse_params(&raw)?);
        }
        "max_attempts" => {
            once(&options.max_attempts, "max_attempts")?;
            let raw = read_short(field, "max_attempts").await?;
            let value = raw.trim().parse::<u32>().ok().filter(|n| (1..=20).contains(n));
            options.max_attempts = Some(value.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidMaxAttempts,
                    "`max_attempts` must be an integer from 1 to 20",
                )
            })?);
        }
        name @ ("queue_timeout" | "run_timeout") => {
            let slot = if name == "queue_timeout" {
                &mut options.queue_timeout
            } else {
                &mut options.run_timeout
            };
            once(slot, name)?;
            let raw = read_short(field, name).await?;
            let value = parse_duration(raw.trim())
                .ok()
                .filter(|d| (MIN_TIMEOUT..=MAX_TIMEOUT).contains(d));
            *slot = Some(value.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidTimeout,
                    format!("`{name}` must be a duration such as 90s, 30m or 12h, from 1s to 30d"),
                )
            })?);
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(ApiError::new(
                ErrorCode::UnknownField,
                format!(
                    "unexpected text part `{}`: send `model`, optional `params`, `max_attempts`, \
                     `queue_timeout`, `run_timeout`, and file parts (with a filename)",
                    shown.escape_default()
                ),
            ));
        }
    }
    Ok(())
}

async fn read_file(
    mut field: Field<'_>,
    storage: &Storage,
    limits: &Limits,
    job_bytes: &mut u64,
) -> Result<StagedFile, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    if name.is_empty() || name.len() > MAX_INPUT_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidInputName,
            "each file part needs a name of 1 to 128 printable characters (the input's name)",
        ));
    }
    let filename = filename::sanitize(field.file_name().unwrap_or_default());
    let hint = field.content_type().map(ToString::to_string);

    // Dropping the writer on any error below removes the partial upload.
    let backend = storage.write_backend();
    let mut writer = backend.upload();
    let mut head: Vec<u8> = Vec::with_capacity(sniff::SNIFF_LEN);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        let len = chunk.len() as u64;
        if writer.size() + len > limits.max_file_bytes {
            return Err(ApiError::new(
                ErrorCode::FileTooLarge,
                format!(
                    "file `{name}` exceeds the limit of {} bytes per file",
                    limits.max_file_bytes
                ),
            ));
        }
        if *job_bytes + len > limits.max_job_bytes {
            return Err(ApiError::new(
                ErrorCode::JobTooLarge,
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
    let written = writer.finish(backend.name()).await.map_err(ApiError::storage)?;
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
    String::from_utf8(bytes).map_err(|_| ApiError::new(ErrorCode::InvalidText, "text parts must be UTF-8"))
}

async fn read_short(field: Field<'_>, name: &str) -> Result<String, ApiError> {
    read_text(field, MAX_OPTION_BYTES, || {
        ApiError::new(ErrorCode::InvalidOption, format!("`{name}` is too long"))
    })
    .await
}

fn once<T>(seen: &Option<T>, name: &str) -> Result<(), ApiError> {
    match seen {
        Some(_) => Err(ApiError::new(
            ErrorCode::DuplicateField,
            format!("the text part `{name}` was sent more than once"),
        )),
        None => Ok(()),
    }
}

/// `params` must be a JSON object that Postgres can store: jsonb refuses NUL in any string.
fn parse_params(raw: &str) -> Result<Value, ApiError> {
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParams,
                "`params` must be a JSON object",
            ));
        }
        Err(e) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParams,
                format!("`params` is not valid JSON: {e}"),
            ));
        }
    };
    if has_nul(&value) {
        return Err(ApiError::new(
            ErrorCode::InvalidParams,
            "`params` may not contain NUL (\\u0000) in a key or a string",
        ));
    }
    Ok(value)
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_nul_anywhere() {
        assert!(parse_params(r#"{"a":"b"}"#).is_ok());
        for bad in [
            r#"{"a":"\u0000"}"#,
            r#"{"\u0000":1}"#,
            r#"{"a":[{"b":"x\u0000y"}]}"#,
            "[]",
            "1",
            "{",
        ] {
            let error = parse_params(bad).expect_err(bad);
            assert_eq!(error.code(), ErrorCode::InvalidParams, "{bad}");
        }
    }
}
