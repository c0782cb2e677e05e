//! A client changing its job's course: `POST /v1/jobs/{id}/cancel` and
//! `POST /v1/jobs/{id}/retry`.

use axum::{Json, extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    access::Caller,
    error::{ApiError, ErrorCode},
    extract::IdPath,
    openapi::{examples, schemas::Id},
    views::JobView,
};
use crate::{
    db,
    domain::{JobId, JobStatus, Owner},
    jobs::{ChangeError, cancel, retry},
};

/// The codes `cancel_job` answers with; the OpenAPI document lists them (`openapi::errors`).
pub(super) const CANCEL_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::JobFinished,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

/// The codes `retry_job` answers with.
pub(super) const RETRY_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::JobNotRetryable,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cancel_job))
        .routes(routes!(retry_job))
}

/// Cancel a job. A queued job never starts; a running job's worker is told to stop, and the job
/// ends `cancelled` at once.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = Id, Path, description = "The job's id")),
    responses((
        status = 200,
        description = "Cancelled: the job as it is now",
        body = JobView,
        example = examples::cancelled_job
    ))
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobView>, ApiError> {
    let owner = caller.owner;
    let before = cancel::cancel(&state.db, &owner, id)
        .await
        .map_err(|e| change_error(e, ErrorCode::JobFinished))?;
    // A queued job's message may already be in a queue: whoever takes it is told to stop too.
    state.control.cancel(before.id, before.attempt, None, "cancelled");
    current(&state, &owner, id).await
}

/// Retry a failed or cancelled job: it is queued again with a fresh budget of attempts.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = Id, Path, description = "The job's id")),
    responses((
        status = 202,
        description = "Queued again: the job as it is now",
        body = JobView,
        example = examples::retried_job
    ))
)]
pub async fn retry_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<JobId>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let owner = caller.owner;
    retry::retry(&state.db, &owner, id)
        .await
        .map_err(|e| change_error(e, ErrorCode::JobNotRetryable))?;
    state.dispatch_wake.notify_one();
    Ok((StatusCode::ACCEPTED, current(&state, &owner, id).await?))
}

async fn current(state: &AppState, owner: &Owner, id: JobId) -> Result<Json<JobView>, ApiError> {
    let job = db::jobs::get(&state.db, owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    let files = db::files::of_jobs(&state.db, &[id]).await?;
    Ok(Json(JobView::new(job, files)))
}

fn change_error(error: ChangeError, conflict_code: ErrorCode) -> ApiError {
    match error {
        ChangeError::NotFound => ApiError::not_found("job"),
        ChangeError::Conflict(status) => {
            let message = match status {
                JobStatus::Queued | JobStatus::Running => format!(
                    "the job is {}; only failed or cancelled jobs can be retried",
                    status.as_str()
                ),
                _ => format!("the job already finished ({})", status.as_str()),
            };
            ApiError::new(conflict_code, message)
        }
        ChangeError::Database(e) => ApiError::from(e),
    }
}
