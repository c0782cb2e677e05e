//! The sweep: expired leases, run timeouts and queue timeouts. Several replicas may sweep at
//! once: each locks the rows it handles and skips rows another has locked. Each step decides
//! which workers to stop, hands those messages to [`ToWorkers`] once its transaction committed,
//! and returns them in the round's report.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use baton_protocol::ControlMessage;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use super::{ToWorkers, lifecycle, stop};
use crate::{
    db::{self, jobs::JobRow},
    domain::{JobStatus, TimelineKind},
    service::{InvalidConfig, Service, jittered, pause},
    telemetry::metrics as m,
};

/// Sweeper settings.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    /// Time between rounds, jittered by ±20% (`BATON_RECONCILE_INTERVAL`, default 5 s).
    pub interval: Duration,
    /// Baton's lease (`BATON_LEASE`, default 60 s). Also how long Postgres must have answered
    /// before any lease is called expired: heartbeats sent while it was away wait in the events
    /// queue, and get one lease to be applied.
    pub lease: Duration,
    /// Most jobs each of the three steps handles per round (default 100).
    pub batch: i64,
    /// Longest a round may take before it is abandoned and rolled back (default 60 s).
    pub round_timeout: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            batch: 100,
            round_timeout: Duration::from_secs(60),
        }
    }
}

impl SweeperConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::positive("BATON_RECONCILE_INTERVAL", self.interval)?;
        InvalidConfig::positive("BATON_LEASE", self.lease)?;
        InvalidConfig::at_least_one("sweep batch", u64::try_from(self.batch).unwrap_or_default())?;
        InvalidConfig::positive("sweep round timeout", self.round_timeout)
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SweepReport {
    pub leases_expired: usize,
    pub run_timeouts: usize,
    pub queue_timeouts: usize,
    /// Stop messages for the workers of the attempts this round ended, in the order ended.
    pub stops: Vec<ControlMessage>,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.leases_expired + self.run_timeouts + self.queue_timeouts == 0
    }
}

pub struct Sweeper {
    db: PgPool,
    to_workers: Arc<dyn ToWorkers>,
    config: SweeperConfig,
    /// Since when Postgres has answered without interruption (`None` after a failure).
    healthy_since: Option<Instant>,
}

impl Sweeper {
    pub fn new(db: PgPool, to_workers: Arc<dyn ToWorkers>, config: SweeperConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Self {
            db,
            to_workers,
            config,
            healthy_since: None,
        })
    }

    /// One round of the three steps, each in its own transaction.
    #[tracing::instrument(name = "sweep", skip_all, fields(leases_expired = Empty, run_timeouts = Empty,
        queue_timeouts = Empty))]
    pub async fn run_once(&mut self) -> sqlx::Result<SweepReport> {
        let mut report = SweepReport::default();
        let result = self.steps(&mut report).await;
        if result.is_err() {
            self.healthy_since = None;
        }
        let span = tracing::Span::current();
        span.record("leases_expired", report.leases_expired);
        span.record("run_timeouts", report.run_timeouts);
        span.record("queue_timeouts", report.queue_timeouts);
        result.map(|()| report)
    }

    async fn steps(&mut self, report: &mut SweepReport) -> sqlx::Result<()> {
        report.run_timeouts = self.end_run_timeouts(&mut report.stops).await?;
        let since = *self.healthy_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.config.lease {
            report.leases_expired = self.retry_expired_leases(&mut report.stops).await?;
        }
        report.queue_timeouts = self.end_queue_timeouts(&mut report.stops).await?;
        Ok(())
    }

    async fn retry_expired_leases(&self, stops: &mut Vec<ControlMessage>) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut ended = Vec::new();
        let ids = db::jobs::lock_expired_leases(&mut tx, self.config.batch).await?;
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
            ended.push(stop_of(&job, "lease_expired"));
        }
        tx.commit().await?;
        self.tell(ended, stops);
        Ok(ids.len())
    }

    async fn end_run_timeouts(&self, stops: &mut Vec<ControlMessage>) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut ended = Vec::new();
        let ids = db::jobs::lock_run_timeouts(&mut tx, self.config.batch).await?;
        for id in &ids {
            let Some(job) = db::jobs::lock(&mut tx, *id).await? else {
                continue;
            };
            let error = json!({
                "code": "run_timeout",
                "message": format!("attempt {} ran longer than {} ms", job.attempt, job.run_timeout_ms),
            });
            lifecycle::end(&mut tx, &job, JobStatus::Failed, Some(error), TimelineKind::TimedOut).await?;
            ended.push(stop_of(&job, "run_timeout"));
        }
        tx.commit().await?;
        self.tell(ended, stops);
        Ok(ids.len())
    }

    async fn end_queue_timeouts(&self, stops: &mut Vec<ControlMessage>) -> sqlx::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut ended = Vec::new();
        let ids = db::jobs::lock_queue_timeouts(&mut tx, self.config.batch).await?;
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
            ended.push(stop_of(&job, "queue_timeout"));
        }
        tx.commit().await?;
        self.tell(ended, stops);
        Ok(ids.len())
    }
}

impl Sweeper {
    /// Tells workers to stop attempts whose end is committed, and records what was told.
    fn tell(&self, ended: Vec<ControlMessage>, stops: &mut Vec<ControlMessage>) {
        for message in &ended {
            self.to_workers.send(message.clone());
        }
        stops.extend(ended);
    }
}

fn stop_of(job: &JobRow, reason: &str) -> ControlMessage {
    stop(job.id, job.attempt, job.worker.as_deref(), reason)
}

impl Service for Sweeper {
    fn name(&self) -> &'static str {
        "sweeper"
    }

    async fn run(mut self, cancel: CancellationToken) {
        loop {
            match tokio::time::timeout(self.config.round_timeout, self.run_once()).await {
                Ok(Ok(report)) if !report.is_empty() => tracing::info!(?report, "sweep"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed; will try again"),
                Err(_) => {
                    self.healthy_since = None;
                    tracing::warn!(timeout = ?self.config.round_timeout, "sweep timed out; will try again");
                }
            }
            if pause(&cancel, jittered(self.config.interval)).await.is_break() {
                break;
            }
        }
    }
}
