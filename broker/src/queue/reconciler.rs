//! Finds jobs that should be moving but are not: published long ago, never started, and their
//! queue empty or gone (the message was lost, or the queue deleted under them). Their attempt is
//! published again; if the old message turns up too, the second start is refused by fencing.

use std::{sync::Arc, time::Duration};

use lapin::Connection;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use super::amqp;
use crate::{
    db::{self, timeline},
    domain::TimelineKind,
    service::{InvalidConfig, Service, jittered, pause},
};

/// Reconciler settings.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Queue name prefix (`BATON_QUEUE_PREFIX`).
    pub queue_prefix: String,
    /// How long after dispatch an unstarted job in an empty queue counts as lost
    /// (`BATON_REDISPATCH_AFTER`, default 2 min).
    pub redispatch_after: Duration,
    /// Time between rounds, jittered by ±20% (`BATON_RECONCILE_INTERVAL`, default 5 s).
    pub interval: Duration,
    /// Longest a round may take before it is abandoned (default 60 s).
    pub round_timeout: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            queue_prefix: baton_protocol::queue::DEFAULT_PREFIX.to_owned(),
            redispatch_after: Duration::from_secs(120),
            interval: Duration::from_secs(5),
            round_timeout: Duration::from_secs(60),
        }
    }
}

impl ReconcilerConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::positive("BATON_REDISPATCH_AFTER", self.redispatch_after)?;
        InvalidConfig::positive("BATON_RECONCILE_INTERVAL", self.interval)?;
        InvalidConfig::positive("reconcile round timeout", self.round_timeout)
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileRound {
    /// Jobs dispatched long ago and never started.
    pub stale: usize,
    /// Of those, jobs queued for publishing again (their queue was empty or gone).
    pub redispatched: usize,
}

pub struct Reconciler {
    db: PgPool,
    amqp_url: String,
    wake_dispatcher: Arc<Notify>,
    config: ReconcilerConfig,
    connection: Option<Connection>,
}

impl Reconciler {
    pub fn new(
        db: PgPool,
        amqp_url: String,
        wake_dispatcher: Arc<Notify>,
        config: ReconcilerConfig,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Self {
            db,
            amqp_url,
            wake_dispatcher,
            config,
            connection: None,
        })
    }

    /// One round: finds stale dispatches and queues those whose queue is empty again.
    #[tracing::instrument(name = "reconcile", skip_all, fields(stale = Empty, redispatched = Empty))]
    pub async fn run_once(&mut self) -> anyhow::Result<ReconcileRound> {
        let mut round = ReconcileRound::default();
        let result = self.round(&mut round).await;
        if result.is_err() {
            self.connection = None;
        }
        let span = tracing::Span::current();
        span.record("stale", round.stale);
        span.record("redispatched", round.redispatched);
        result.map(|()| round)
    }

    async fn round(&mut self, round: &mut ReconcileRound) -> anyhow::Result<()> {
        let stale = db::jobs::stale_dispatches(&self.db, self.config.redispatch_after).await?;
        round.stale = stale.iter().map(|(_, ids)| ids.len()).sum();
        if stale.is_empty() {
            return Ok(());
        }
        if self.connection.as_ref().is_none_or(|c| !c.status().connected()) {
            self.connection = Some(amqp::connect(&self.amqp_url, "baton-reconciler").await?);
        }
        let connection = self.connection.as_ref().expect("connected above");
        for (model, ids) in stale {
            let queue = baton_protocol::queue::job_queue(&self.config.queue_prefix, &model);
            match amqp::ready_messages(connection, &queue).await? {
                // A backlog: the jobs are probably still in it.
                Some(ready) if ready > 0 => continue,
                _ => {}
            }
            let queued = db::outbox::enqueue_again(&self.db, &ids).await?;
            let jobs = db::jobs::get_many(&self.db, &ids).await?;
            let (ids, attempts): (Vec<_>, Vec<_>) = jobs.iter().map(|j| (j.id, j.attempt)).unzip();
            timeline::record_many(
                &self.db,
                &ids,
                &attempts,
                TimelineKind::Redispatched,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
            let message = "jobs dispatched but never started, with an empty queue: publishing again";
            tracing::warn!(%model, jobs = queued, "{message}");
            round.redispatched += usize::try_from(queued).unwrap_or_default();
        }
        if round.redispatched > 0 {
            self.wake_dispatcher.notify_one();
        }
        Ok(())
    }
}

impl Service for Reconciler {
    fn name(&self) -> &'static str {
        "reconciler"
    }

    async fn run(mut self, cancel: CancellationToken) {
        loop {
            match tokio::time::timeout(self.config.round_timeout, self.run_once()).await {
                Ok(Ok(round)) if round.redispatched > 0 => {
                    tracing::info!(redispatched = round.redispatched, "reconciled stuck dispatches");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "reconciliation failed; will try again"),
                Err(_) => {
                    self.connection = None;
                    tracing::warn!(timeout = ?self.config.round_timeout, "reconciliation timed out; will try again");
                }
            }
            if pause(&cancel, jittered(self.config.interval)).await.is_break() {
                break;
            }
        }
        if let Some(connection) = self.connection.take()
            && let Err(e) = connection.close(200, "stopping".into()).await
        {
            tracing::debug!(error = %e, "closing the reconciler connection failed");
        }
    }
}
