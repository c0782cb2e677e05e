//! What happens to jobs, decided here and carried by `queue` and `http`: committing a
//! submission, applying what workers report and what RabbitMQ gives back, cancelling and
//! retrying on request, and the sweep of leases and timeouts. Decisions return the messages to
//! send to workers; the transport sends them.

pub mod backoff;
pub mod cancel;
pub mod lifecycle;
pub mod reports;
pub mod retry;
pub mod returned;
pub mod submit;
pub mod sweep;

use crate::{
    db::{self, jobs::JobRow},
    domain::{JobId, JobStatus, Owner},
};
use baton_protocol::ControlMessage;

/// Where the sweep hands the messages it decided on; `queue::control::Control` implements it
/// by publishing them, best effort.
pub trait ToWorkers: Send + Sync + 'static {
    fn send(&self, message: ControlMessage);
}

/// Why a change a client asked for (cancel, retry) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no such job")]
    NotFound,
    #[error("the job is {}", .0.as_str())]
    Conflict(JobStatus),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The job, row-locked, if `owner` owns it.
async fn locked(conn: &mut sqlx::PgConnection, owner: &Owner, id: JobId) -> Result<JobRow, ChangeError> {
    match db::jobs::lock(conn, id).await? {
        Some(job) if job.owner == owner.as_str() => Ok(job),
        _ => Err(ChangeError::NotFound),
    }
}

/// The message that tells `worker` (every worker, if `None`) to stop an attempt.
pub fn stop(job_id: JobId, attempt: i32, worker: Option<&str>, reason: &str) -> ControlMessage {
    ControlMessage::Cancel {
        job_id: job_id.into(),
        attempt: u32::try_from(attempt).unwrap_or_default(),
        worker: worker.map(str::to_owned),
        reason: reason.to_owned(),
    }
}
