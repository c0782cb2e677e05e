//! The sweep: expired leases, run timeouts and queue timeouts. Several replicas may sweep at
//! once: each locks the rows it handles and skips rows another has locked.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::lifecycle;
use crate::{
    db,
    domain::{JobId, JobStatus, TimelineKind},
    queue::control::Control,
    telemetry::metrics as m,
};

const BATCH: i64 = 100;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub leases_expired: usize,
    pub run_timeouts: usize,
    pub queue_timeouts: usize,
}

pub struct Sweeper {
    db: PgPool,
    control: Control,
    interval: Duration,
    lease: Duration,
    /// Since when Postgres has answered without interruption (`None` after a failure).
    healthy_since: Option<Instant>,
}

impl Sweeper {
    pub fn new(db: PgPool, control: Control, interval: Duration, lease: Duration) -> Self {
        Self {
            db,
            control,
            interval,
            lease,
            healthy_since: None,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            match self.run_once().await {
                Ok(report) if report != SweepReport::default() => tracing::info!(?report, "sweep"),
                Ok(_) => {}
                Err(e) => {
                    self.healthy_since = None;
                    tracing::warn!(error = %e, "sweep failed; will try again");
                }
            }
            let jittered = self.interval.mul_f64(0.8 + fastrand::f64() * 0.4);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(jittered) => {}
            }
        }
    }

    pub async fn run_once(&mut self) -> sqlx::Result<SweepReport> {
        let run_timeouts = self.run_timeouts().await?;
        let since = *self.healthy_since.get_or_insert_with(Instant::now);
        // Heartbeats sent while Baton or Postgres was away wait in the events queue: give them
        // one lease to be applied before calling any lease expired.
        let leases_expired = if since.elapsed() >= self.lease {
            self.expired_leases().await?
        } else {
            0
        };
        Ok(SweepReport {
            run_timeouts,
            leases_expired,
            queue_timeouts: self.queue_timeouts().await?,
        })
    }

    async fn expired_leases(&self) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut stops = Vec::new();
        let ids = db::jobs::lock_expired_leases(&mut tx, BATCH).await?;
        for id in &ids {
            let Some(job) = db::jobs::lock(&mut tx, *id).await? else {
                continue;
            };
            let worker = job.worker.clone().unwrap_or_default();
            let error = json!({
                "code": "lease_expired",
                "message": format!("worker {worker} stopped sending heartbeats during attempt {}", job.attempt),
            });
            lifecycle::retry_or_fail(&mut tx, &job, error, true, "lease_expired").await?;
            metrics::counter!(m::LEASE_EXPIRIES, "model" => job.model.clone()).increment(1);
            stops.push((job.id, job.attempt, job.worker.clone()));
        }
        tx.commit().await?;
        self.stop_all(&stops, "lease_expired");
        Ok(ids.len())
    }

    async fn run_timeouts(&self) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut stops = Vec::new();
        let ids = db::jobs::lock_run_timeouts(&mut tx, BATCH).await?;
        for id in &ids {
            let Some(job) = db::jobs::lock(&mut tx, *id).await? else {
                continue;
            };
            let error = json!({
                "code": "run_timeout",
                "message": format!("attempt {} ran longer than {} ms", job.attempt, job.run_timeout_ms),
            });
            lifecycle::end(&mut tx, &job, JobStatus::Failed, Some(error), TimelineKind::TimedOut).await?;
            stops.push((job.id, job.attempt, job.worker.clone()));
        }
        tx.commit().await?;
        self.stop_all(&stops, "run_timeout");
        Ok(ids.len())
    }

    async fn queue_timeouts(&self) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut stops = Vec::new();
        let ids = db::jobs::lock_queue_timeouts(&mut tx, BATCH).await?;
        for id in &ids {
            let Some(job) = db::jobs::lock(&mut tx, *id).await? else {
                continue;
            };
            let error = json!({
                "code": "queue_timeout",
                "message": format!("no worker started the job within {} ms", job.queue_timeout_ms),
            });
            lifecycle::end(&mut tx, &job, JobStatus::Failed, Some(error), TimelineKind::TimedOut).await?;
            // Its message may still be in a queue: a worker that takes it is told to stop.
            stops.push((job.id, job.attempt, job.worker.clone()));
        }
        tx.commit().await?;
        self.stop_all(&stops, "queue_timeout");
        Ok(ids.len())
    }

    /// Tells workers to stop attempts that were ended, once that is committed.
    fn stop_all(&self, attempts: &[(JobId, i32, Option<String>)], reason: &str) {
        for (job_id, attempt, worker) in attempts {
            self.control.cancel(*job_id, *attempt, worker.as_deref(), reason);
        }
    }
}
