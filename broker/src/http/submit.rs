//! `POST /v1/jobs`.

use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    upload::{self, Form},
    views::JobView,
};
use crate::{
    domain::Owner,
    jobs::submit::{self, Submission},
};

/// How much of a rejected body is read before answering, so the client sees the error.
const DRAIN_BYTES: u64 = 16 << 20;

/// Multipart form of a submission (documentation only; the handler streams the parts).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SubmitForm {
    /// The model to run: `[a-z0-9][a-z0-9._-]{0,63}`.
    model: String,
    /// Optional JSON object of model parameters.
    params: Option<String>,
    /// One or more file parts; each part's name is the input's name.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

/// Submit a job: stream its input files to the shared volume and queue it for its model.
///
/// Answers 202 only once the files are synced to disk and the job is committed.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body(content = SubmitForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored and queued", body = JobView,
         headers(("Location" = String, description = "URL of the job"))),
        (status = 400, description = "Malformed form (invalid_multipart, missing_model, invalid_model, invalid_params, missing_files, ...)", body = ErrorBody),
        (status = 413, description = "A limit was exceeded (file_too_large, job_too_large, too_many_files, params_too_large)", body = ErrorBody),
        (status = 503, description = "Database unavailable; nothing was stored", body = ErrorBody),
        (status = 507, description = "Shared volume full", body = ErrorBody),
    )
)]
pub async fn submit_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, HeaderMap, Json<JobView>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::bad_request(
            "invalid_multipart",
            format!(
                "expected a multipart/form-data body: {}",
                rejection.body_text()
            ),
        )
    })?;
    reject_declared_oversize(&headers, &state)?;

    let form = match upload::read_form(&mut multipart, &state.storage, &state.limits).await {
        Ok(form) => form,
        Err(error) => {
            if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                upload::drain(&mut multipart, DRAIN_BYTES).await;
            }
            return Err(error);
        }
    };
    let Form {
        model,
        params,
        files,
    } = form;
    let submission = Submission {
        owner: Owner::default_owner(),
        model,
        params,
        files,
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
        })?;
    state.dispatch_wake.notify_one();

    let view = JobView::new(submitted.job, submitted.files);
    let mut response_headers = HeaderMap::new();
    let location =
        HeaderValue::from_str(&format!("/v1/jobs/{}", view.id)).map_err(ApiError::internal)?;
    response_headers.insert(header::LOCATION, location);
    Ok((StatusCode::ACCEPTED, response_headers, Json(view)))
}

/// A declared Content-Length beyond what any valid job can be is refused before reading.
fn reject_declared_oversize(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Room for part headers and text parts beside the files themselves.
    let overhead = state.limits.max_params_bytes + 1024 * (u64::from(state.limits.max_files) + 16);
    match declared {
        Some(length) if length > state.limits.max_job_bytes.saturating_add(overhead) => {
            Err(ApiError::too_large(
                "job_too_large",
                format!(
                    "the request declares {length} bytes; a job's files may total at most {} bytes",
                    state.limits.max_job_bytes
                ),
            ))
        }
        _ => Ok(()),
    }
}
