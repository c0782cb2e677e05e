//! `POST /v1/jobs`.

use std::sync::Arc;

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    AppState,
    access::Caller,
    error::{ApiError, ErrorCode},
    openapi::{
        examples,
        form::{SubmitForm, SubmitHeaders},
    },
    upload::{self, Form},
    views::JobView,
};
use crate::{
    jobs::submit::{self, JobOptions, Submission},
    quota::{Exceeded, QuotaError},
    telemetry::metrics as m,
};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The codes `submit_job` answers with; the OpenAPI document lists them (`openapi::errors`).
pub(super) const SUBMIT_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidMultipart,
    ErrorCode::TrailingBytes,
    ErrorCode::MissingModel,
    ErrorCode::InvalidModel,
    ErrorCode::InvalidParams,
    ErrorCode::MissingFiles,
    ErrorCode::InvalidMaxAttempts,
    ErrorCode::InvalidTimeout,
    ErrorCode::InvalidOption,
    ErrorCode::InvalidText,
    ErrorCode::DuplicateField,
    ErrorCode::DuplicateInputName,
    ErrorCode::InvalidInputName,
    ErrorCode::InvalidFilename,
    ErrorCode::UnknownField,
    ErrorCode::InvalidIdempotencyKey,
    ErrorCode::InvalidInput,
    ErrorCode::UploadTooSlow,
    ErrorCode::FileTooLarge,
    ErrorCode::JobTooLarge,
    ErrorCode::TooManyFiles,
    ErrorCode::ParamsTooLarge,
    ErrorCode::PartHeadersTooLarge,
    ErrorCode::RequestTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::IdempotencyKeyReused,
    ErrorCode::QuotaExceeded,
    ErrorCode::StorageQuotaExceeded,
    ErrorCode::Internal,
    ErrorCode::Busy,
    ErrorCode::Unavailable,
    ErrorCode::StorageFull,
    ErrorCode::StorageUnavailable,
];

/// Submit a job: stream its input files to the shared volume and queue it for its model.
///
/// Answers 202 only once the files are synced to disk and the job is committed. With an
/// `Idempotency-Key` header, repeating the same request returns the original job (with
/// `Idempotent-Replayed: true`) and stores nothing new.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    params(SubmitHeaders),
    request_body(
        description = "The job: text parts and one or more file parts",
        content(
            (SubmitForm = "multipart/form-data", example = examples::form,
             encoding(("params" = (content_type = "application/json"))))
        ),
    ),
    responses(
        (status = 202, description = "Stored and queued; or, with `Idempotent-Replayed: true`, the job an \
         earlier request with the same `Idempotency-Key` created", body = JobView,
         headers(
             ("Location" = String, description = "The job's URL, `/v1/jobs/{id}`"),
             ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with \
              the same `Idempotency-Key` (nothing new was stored); absent otherwise"),
         ),
         example = examples::job),
    )
)]
pub async fn submit_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, HeaderMap, Json<JobView>), ApiError> {
    // Shed load at once rather than queue: a client told `busy` retries after `Retry-After`.
    let _upload = InProgress::enter(&state.uploads).ok_or_else(|| ApiError::busy("uploads in progress"))?;
    let received_at = time::OffsetDateTime::now_utc();
    reject_declared_oversize(&headers, &state)?;
    let idempotency_key = idempotency_key(&headers)?;
    let limits = state.quotas.limits(&state.db, &caller.owner).await?;
    state
        .quotas
        .admit(&state.db, &caller.owner, &limits)
        .await
        .map_err(|error| match error {
            QuotaError::Exceeded(exceeded) => quota_exceeded(&exceeded),
            QuotaError::Database(e) => ApiError::from(e),
        })?;

    let form = upload::read_form(&headers, body, &state.storage, &state.limits).await?;
    let defaults = &state.job_defaults;
    let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let options = JobOptions {
        max_attempts: i32::try_from(form.max_attempts.unwrap_or(defaults.max_attempts)).unwrap_or(1),
        queue_timeout_ms: millis(form.queue_timeout.unwrap_or(defaults.queue_timeout)),
        run_timeout_ms: millis(form.run_timeout.unwrap_or(defaults.run_timeout)),
    };
    let Form {
        model, params, files, ..
    } = form;
    let submission = Submission {
        owner: caller.owner,
        model,
        params,
        options,
        files,
        idempotency_key,
        received_at,
        submitted_by: caller.identity.subject,
        limits,
    };

    // Committing runs in its own task: if the client disconnects now, the job still either
    // commits completely or not at all, and temp files are still removed.
    let task_state = state.clone();
    let submitted = state
        .tasks
        .spawn(async move { submit::commit(&task_state.db, &task_state.storage, submission).await })
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| match error {
            submit::SubmitError::Database(e) => ApiError::from(e),
            submit::SubmitError::Storage(e) => ApiError::storage(e),
            submit::SubmitError::KeyReused => ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request; use a new key",
            ),
            submit::SubmitError::Quota(exceeded) => quota_exceeded(&exceeded),
        })?;
    let mut response_headers = HeaderMap::new();
    if submitted.replayed {
        response_headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    } else {
        state.dispatch_wake.notify_one();
        let model = submitted.job.model.clone();
        let bytes: i64 = submitted.files.iter().map(|f| f.size).sum();
        metrics::counter!(m::JOBS_SUBMITTED, "model" => model).increment(1);
        metrics::counter!(m::UPLOAD_FILES).increment(submitted.files.len() as u64);
        metrics::counter!(m::UPLOAD_BYTES).increment(u64::try_from(bytes).unwrap_or_default());
        metrics::counter!(m::DEDUP_HITS).increment(submitted.deduplicated as u64);
    }

    let view = JobView::new(submitted.job, submitted.files);
    let location = HeaderValue::from_str(&format!("/v1/jobs/{}", view.id)).map_err(ApiError::internal)?;
    response_headers.insert(header::LOCATION, location);
    Ok((StatusCode::ACCEPTED, response_headers, Json(view)))
}

/// 429 for the rate and jobs quotas (with `Retry-After` for the rate), 507 for bytes.
fn quota_exceeded(exceeded: &Exceeded) -> ApiError {
    let message = format!("quota exceeded: {exceeded}");
    match exceeded {
        Exceeded::StoredBytes { .. } => {
            ApiError::new(ErrorCode::StorageQuotaExceeded, message).with_quota(exceeded.quota(), None)
        }
        Exceeded::ActiveJobs { .. } => {
            ApiError::new(ErrorCode::QuotaExceeded, message).with_quota(exceeded.quota(), None)
        }
        Exceeded::SubmitRate { retry_after, .. } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            ApiError::new(ErrorCode::QuotaExceeded, message).with_quota(exceeded.quota(), Some(seconds))
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// A declared Content-Length beyond what any valid job can be is refused before reading.
fn reject_declared_oversize(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > state.limits.max_body_bytes() => Err(ApiError::new(
            ErrorCode::JobTooLarge,
            format!(
                "the request declares {length} bytes; a job's files may total at most {} bytes",
                state.limits.max_job_bytes
            ),
        )),
        _ => Ok(()),
    }
}

/// An upload in progress: holds one of `BATON_MAX_UPLOADS` permits and counts itself.
struct InProgress {
    _permit: OwnedSemaphorePermit,
}

impl InProgress {
    fn enter(uploads: &Arc<Semaphore>) -> Option<Self> {
        let permit = Arc::clone(uploads).try_acquire_owned().ok()?;
        metrics::gauge!(m::UPLOADS_IN_PROGRESS).increment(1.0);
        Some(Self { _permit: permit })
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        metrics::gauge!(m::UPLOADS_IN_PROGRESS).decrement(1.0);
    }
}
