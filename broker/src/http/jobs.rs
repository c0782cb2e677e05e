//! The jobs resource: `POST /v1/jobs` (in [`submit`](super::submit)), `GET /v1/jobs`,
//! `GET /v1/jobs/{id}`, and the routes under it (cancel, retry, timeline).

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    access::Caller,
    error::{ApiError, ErrorCode},
    extract::IdPath,
    job_control,
    openapi::{
        examples,
        schemas::{Id, Model},
    },
    submit, timeline,
    views::{JobPage, JobView},
};
use crate::{
    db::{self, files::FileRow},
    domain::{JobId, JobStatus},
};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// The codes `get_job` answers with; the OpenAPI document lists them (`openapi::errors`).
pub(super) const GET_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

/// The codes `list_jobs` answers with.
pub(super) const LIST_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidQuery,
    ErrorCode::InvalidCursor,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit::submit_job, list_jobs))
        .routes(routes!(get_job))
        .merge(job_control::router())
        .merge(timeline::router())
}

/// Get a job: status, timestamps, attempts, files, and result or error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = Id, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView, example = examples::finished_job))
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobView>, ApiError> {
    let job = db::jobs::get(&state.db, &caller.owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    let files = db::files::of_jobs(&state.db, &[id]).await?;
    Ok(Json(JobView::new(job, files)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only jobs for this model.
    #[param(value_type = Option<Model>)]
    model: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<Id>)]
    cursor: Option<String>,
}

/// List jobs, newest first, with filters and cursor pagination.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "A page of jobs", body = JobPage, example = examples::job_page))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(JobStatus::parse(raw).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "`status` must be one of queued, running, succeeded, failed, cancelled",
            )
        })?),
    };
    if let Some(model) = query.model.as_deref()
        && !baton_protocol::queue::is_valid_model(model)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "`model` must match [a-z0-9][a-z0-9._-]{0,63}",
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`limit` must be 1 to {MAX_PAGE}"),
        ));
    }
    let before = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(JobId::parse(raw).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "`cursor` must be a `next_cursor` from a previous page",
            )
        })?),
    };

    let jobs = db::jobs::list(&state.db, &caller.owner, status, query.model.as_deref(), before, limit).await?;
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    let mut files: HashMap<JobId, Vec<FileRow>> = HashMap::new();
    for file in db::files::of_jobs(&state.db, &ids).await? {
        files.entry(file.job_id).or_default().push(file);
    }
    let next_cursor = (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    let jobs = jobs
        .into_iter()
        .map(|job| {
            let job_files = files.remove(&job.id).unwrap_or_default();
            JobView::new(job, job_files)
        })
        .collect();
    Ok(Json(JobPage { jobs, next_cursor }))
}
