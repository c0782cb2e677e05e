//! Cancelling a job on a client's request.

use serde_json::json;
use sqlx::PgPool;

use super::{ChangeError, lifecycle, locked};
use crate::{
    db::jobs::JobRow,
    domain::{JobId, JobStatus, Owner, TimelineKind},
};

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
