//! `GET /v1/jobs/{id}/events`: a job's timeline.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    access::Caller,
    error::{ApiError, ErrorCode},
    extract::IdPath,
    openapi::{examples, schemas::Id},
    views::{EventList, EventView},
};
use crate::{db, domain::JobId};

/// The codes `job_events` answers with; the OpenAPI document lists them (`openapi::errors`).
pub(super) const EVENTS_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_events))
}

/// A job's timeline: received, stored, dispatched, started by a worker, heartbeats, retries,
/// and how it finished.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    params(("id" = Id, Path, description = "The job's id")),
    responses((
        status = 200,
        description = "The job's timeline, oldest first",
        body = EventList,
        example = examples::events
    ))
)]
pub async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<EventList>, ApiError> {
    db::jobs::get(&state.db, &caller.owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    let events = db::timeline::list(&state.db, id)
        .await?
        .into_iter()
        .map(|e| EventView {
            at: e.at,
            kind: e.kind,
            attempt: e.attempt,
            worker: e.worker,
            detail: e.detail,
        })
        .collect();
    Ok(Json(EventList { job_id: id, events }))
}
