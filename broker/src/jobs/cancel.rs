//! Cancelling a job and retrying a failed one, on a client's request.

use serde_json::json;
use sqlx::PgPool;

use super::lifecycle;
use crate::{
    db::{self, jobs::JobRow, timeline},
    domain::{JobId, JobStatus, Owner, TimelineKind},
};

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no such job")]
    NotFound,
    #[error("the job is {}", .0.as_str())]
    Conflict(JobStatus),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Cancels a queued or running job. Returns the job as it was before, so the caller can tell
/// the worker running it (if any) to stop.
pub async fn cancel(db: &PgPool, owner: &Owner, id: JobId) -> Result<JobRow, ChangeError> {
    let mut tx = db.begin().await?;
    let job = locked(&mut tx, owner, id).await?;
    if job.status.is_terminal() {
        return Err(ChangeError::Conflict(job.status));
    }
    let error = json!({ "code": "cancelled", "message": "cancelled by the client" });
    lifecycle::end(
        &mut tx,
        &job,
        JobStatus::Cancelled,
        Some(error),
        TimelineKind::Cancelled,
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// Queues a failed (or cancelled) job again with a fresh budget of attempts.
pub async fn retry(db: &PgPool, owner: &Owner, id: JobId) -> Result<(), ChangeError> {
    let mut tx = db.begin().await?;
    let job = locked(&mut tx, owner, id).await?;
    if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
        return Err(ChangeError::Conflict(job.status));
    }
    let next_attempt = job.attempt + 1;
    db::jobs::requeue(&mut tx, job.id, next_attempt, job.error.as_ref(), Some(next_attempt)).await?;
    db::outbox::enqueue(&mut tx, job.id, next_attempt, std::time::Duration::ZERO).await?;
    let detail = json!({ "reason": "requested", "next_attempt": next_attempt });
    timeline::record(
        &mut tx,
        job.id,
        TimelineKind::Retried,
        Some(job.attempt),
        None,
        Some(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn locked(conn: &mut sqlx::PgConnection, owner: &Owner, id: JobId) -> Result<JobRow, ChangeError> {
    match db::jobs::lock(conn, id).await? {
        Some(job) if job.owner == owner.as_str() => Ok(job),
        _ => Err(ChangeError::NotFound),
    }
}
