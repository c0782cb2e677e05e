//! Applying worker events. Idempotent and monotonic: each update only matches a job still in an
//! earlier state *and* on the event's attempt, so duplicates and stale events change nothing.

use baton_protocol::{EventKind, WorkerEvent};
use serde_json::json;
use sqlx::PgPool;

use super::retry::backoff;
use crate::{db, domain::JobStatus};

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The job moved to this status.
    Moved(JobStatus),
    /// A retryable failure: the job is queued again for its next attempt.
    Retrying { next_attempt: i32 },
    /// Duplicate, stale, out of order or about an unknown job: nothing changed.
    Ignored,
}

#[tracing::instrument(skip_all, fields(job_id = %event.job_id, attempt = event.attempt, kind = event.type_name()))]
pub async fn apply(db: &PgPool, event: &WorkerEvent) -> sqlx::Result<Applied> {
    let Ok(attempt) = i32::try_from(event.attempt) else {
        return Ok(Applied::Ignored);
    };
    let moved = match &event.kind {
        EventKind::Started => {
            sqlx::query!(
                "UPDATE jobs SET status = 'running', started_at = now(), worker = $3, updated_at = now()
                 WHERE id = $1 AND attempt = $2 AND status = 'queued'",
                event.job_id,
                attempt,
                event.worker,
            )
            .execute(db)
            .await?
            .rows_affected()
                == 1
        }
        EventKind::Succeeded { result } => {
            sqlx::query!(
                "UPDATE jobs SET status = 'succeeded', result = $3, error = NULL, worker = $4,
                        started_at = COALESCE(started_at, now()), finished_at = now(), updated_at = now()
                 WHERE id = $1 AND attempt = $2 AND status IN ('queued', 'running')",
                event.job_id,
                attempt,
                result,
                event.worker,
            )
            .execute(db)
            .await?
            .rows_affected()
                == 1
        }
        EventKind::Failed { error, retryable } => {
            return fail(db, event, attempt, json!(error), *retryable).await;
        }
    };
    Ok(if moved {
        Applied::Moved(match event.kind {
            EventKind::Started => JobStatus::Running,
            _ => JobStatus::Succeeded,
        })
    } else {
        Applied::Ignored
    })
}

async fn fail(
    db: &PgPool,
    event: &WorkerEvent,
    attempt: i32,
    error: serde_json::Value,
    retryable: bool,
) -> sqlx::Result<Applied> {
    let mut tx = db.begin().await?;
    let current = sqlx::query!(
        "SELECT max_attempts FROM jobs
         WHERE id = $1 AND attempt = $2 AND status IN ('queued', 'running')
         FOR UPDATE",
        event.job_id,
        attempt,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(Applied::Ignored);
    };
    let applied = if retryable && attempt < current.max_attempts {
        let next_attempt = attempt + 1;
        sqlx::query!(
            "UPDATE jobs SET status = 'queued', attempt = $2, error = $3, worker = NULL,
                    started_at = NULL, dispatched_at = NULL, updated_at = now()
             WHERE id = $1",
            event.job_id,
            next_attempt,
            error,
        )
        .execute(&mut *tx)
        .await?;
        let delay = backoff(event.attempt);
        db::outbox::enqueue(&mut tx, event.job_id, next_attempt, delay).await?;
        Applied::Retrying { next_attempt }
    } else {
        sqlx::query!(
            "UPDATE jobs SET status = 'failed', error = $2, worker = $3,
                    started_at = COALESCE(started_at, now()), finished_at = now(), updated_at = now()
             WHERE id = $1",
            event.job_id,
            error,
            event.worker,
        )
        .execute(&mut *tx)
        .await?;
        Applied::Moved(JobStatus::Failed)
    };
    tx.commit().await?;
    Ok(applied)
}
