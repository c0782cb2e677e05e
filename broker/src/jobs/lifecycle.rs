//! Ending an attempt: retry with backoff or fail for good, and what a dead-lettered message
//! means. Callers hold the job's row lock.

use serde_json::{Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::retry::backoff;
use crate::{
    db::{self, jobs::JobRow, timeline},
    domain::{JobStatus, TimelineKind},
    telemetry::metrics as m,
};

/// What a state change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The job moved to this status.
    Moved(JobStatus),
    /// The attempt ended; the job is queued again for this attempt.
    Retrying { next_attempt: i32 },
    /// The current attempt came back unstarted and will be published again.
    Redispatching,
    /// A heartbeat renewed the running attempt's lease.
    LeaseRenewed,
    /// Duplicate, stale, out of order or about an unknown job: nothing changed.
    Ignored,
}

/// After a failure of the current attempt: schedule the next attempt if the failure may be
/// transient and attempts remain, else fail the job with `error`.
pub async fn retry_or_fail(
    conn: &mut PgConnection,
    job: &JobRow,
    error: Value,
    retryable: bool,
    reason: &'static str,
) -> sqlx::Result<Applied> {
    if retryable && job.attempts_used() < job.max_attempts {
        let next_attempt = job.attempt + 1;
        let delay = backoff(u32::try_from(job.attempts_used()).unwrap_or(1));
        db::jobs::requeue(conn, job.id, next_attempt, Some(&error), None).await?;
        db::outbox::enqueue(conn, job.id, next_attempt, delay).await?;
        let detail =
            json!({ "reason": reason, "error": error, "next_attempt": next_attempt, "delay_ms": delay.as_millis() });
        timeline::record(
            conn,
            job.id,
            TimelineKind::Retried,
            Some(job.attempt),
            job.worker.as_deref(),
            Some(detail),
        )
        .await?;
        metrics::counter!(m::RETRIES, "model" => job.model.clone(), "reason" => reason).increment(1);
        Ok(Applied::Retrying { next_attempt })
    } else {
        db::jobs::finish(conn, job.id, JobStatus::Failed, None, None, Some(&error)).await?;
        db::outbox::remove(conn, job.id).await?;
        let detail = json!({ "reason": reason, "error": error, "attempts": job.attempts_used() });
        timeline::record(
            conn,
            job.id,
            TimelineKind::Failed,
            Some(job.attempt),
            job.worker.as_deref(),
            Some(detail),
        )
        .await?;
        record_finished(job, JobStatus::Failed);
        Ok(Applied::Moved(JobStatus::Failed))
    }
}

/// Ends the job with a terminal status that no retry follows (a timeout, a cancellation).
pub async fn end(
    conn: &mut PgConnection,
    job: &JobRow,
    status: JobStatus,
    error: Option<Value>,
    kind: TimelineKind,
) -> sqlx::Result<Applied> {
    db::jobs::finish(conn, job.id, status, None, None, error.as_ref()).await?;
    db::outbox::remove(conn, job.id).await?;
    timeline::record(conn, job.id, kind, Some(job.attempt), job.worker.as_deref(), error).await?;
    record_finished(job, status);
    Ok(Applied::Moved(status))
}

/// A job message RabbitMQ gave back (a worker crashed holding it, rejected it, or shut down).
/// Unstarted: publish it again (as a new attempt number that does not use the budget), a
/// bounded number of times. Started: the worker running it is gone, which ends the attempt like
/// a lost lease.
pub async fn dead_lettered(conn: &mut PgConnection, job: &JobRow, attempt: i32, reason: &str) -> sqlx::Result<Applied> {
    const MAX_REDELIVERIES: i32 = 5;
    if job.attempt != attempt || job.status.is_terminal() {
        return Ok(Applied::Ignored);
    }
    match job.status {
        JobStatus::Queued if job.redeliveries < MAX_REDELIVERIES => {
            let next_attempt = db::jobs::advance_unstarted(conn, job.id).await?;
            let delay = backoff(u32::try_from(job.redeliveries + 1).unwrap_or(1));
            db::outbox::enqueue(conn, job.id, next_attempt, delay).await?;
            let detail = json!({ "reason": reason, "next_attempt": next_attempt, "delay_ms": delay.as_millis() });
            timeline::record(
                conn,
                job.id,
                TimelineKind::Returned,
                Some(job.attempt),
                None,
                Some(detail),
            )
            .await?;
            Ok(Applied::Redispatching)
        }
        JobStatus::Queued => {
            let error = json!({
                "code": "undeliverable",
                "message": format!("no worker accepted the job in {} deliveries ({reason})", MAX_REDELIVERIES + 1),
            });
            end(conn, job, JobStatus::Failed, Some(error), TimelineKind::Failed).await
        }
        _ => {
            let error = json!({
                "code": "worker_lost",
                "message": format!("the worker running attempt {attempt} stopped without reporting ({reason})"),
            });
            retry_or_fail(conn, job, error, true, "worker_lost").await
        }
    }
}

/// Counts a finished job and, if it ran, its run time.
pub fn record_finished(job: &JobRow, status: JobStatus) {
    metrics::counter!(m::JOBS_FINISHED, "model" => job.model.clone(), "status" => status.as_str()).increment(1);
    if let Some(started_at) = job.started_at {
        let run = (OffsetDateTime::now_utc() - started_at).as_seconds_f64().max(0.0);
        metrics::histogram!(m::RUN_TIME, "model" => job.model.clone()).record(run);
    }
}
