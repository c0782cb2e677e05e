//! Job messages RabbitMQ gave back (dead-lettered): a worker crashed or was killed holding one,
//! rejected it, or shut down with it unstarted. Job queues dead-letter every such message, so
//! every re-run goes through here, counted against the job's attempts. `queue::dead_letters`
//! carries the messages in and the outcome's control message out.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{
    backoff::backoff,
    lifecycle::{Applied, Outcome, end, retry_or_fail},
    stop,
};
use crate::{
    db::{self, jobs::JobRow, timeline},
    domain::{JobId, JobStatus, TimelineKind},
};

/// A message can come back unstarted this many times before the job fails as undeliverable.
const MAX_REDELIVERIES: i32 = 5;

/// Applies the return of `attempt`'s message, with RabbitMQ's `reason` (`delivery_limit`,
/// `rejected`, ...). If the attempt was running, the outcome tells its worker to stop.
#[tracing::instrument(skip_all, fields(%job_id, attempt, %reason))]
pub async fn apply(db: &PgPool, job_id: JobId, attempt: i32, reason: &str) -> sqlx::Result<Outcome> {
    let mut tx = db.begin().await?;
    let Some(job) = db::jobs::lock(&mut tx, job_id).await? else {
        return Ok(Outcome::ignored());
    };
    let runner = job.worker.clone().filter(|_| job.status == JobStatus::Running);
    let applied = dead_lettered(&mut tx, &job, attempt, reason).await?;
    tx.commit().await?;
    let control = runner
        .filter(|_| applied != Applied::Ignored)
        .map(|runner| stop(job_id, attempt, Some(&runner), "worker_lost"));
    Ok(Outcome { applied, control })
}

/// Unstarted: publish it again (as a new attempt number that does not use the budget), a
/// bounded number of times. Started: the worker running it is gone, which ends the attempt like
/// a lost lease.
async fn dead_lettered(conn: &mut PgConnection, job: &JobRow, attempt: i32, reason: &str) -> sqlx::Result<Applied> {
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
