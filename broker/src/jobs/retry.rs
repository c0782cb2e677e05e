//! Retrying a failed or cancelled job on a client's request.

use serde_json::json;
use sqlx::PgPool;

use super::{ChangeError, locked};
use crate::{
    db::{self, timeline},
    domain::{JobId, JobStatus, Owner, TimelineKind},
};

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
