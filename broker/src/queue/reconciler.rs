//! Finds jobs that should be moving but are not: published long ago, never started, and their
//! queue empty or gone (the message was lost, or the queue deleted under them). Their attempt is
//! published again; if the old message turns up too, the second start is refused by fencing.

use std::{sync::Arc, time::Duration};

use lapin::Connection;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::amqp;
use crate::{
    db::{self, timeline},
    domain::TimelineKind,
};

pub struct Reconciler {
    pub db: PgPool,
    pub amqp_url: String,
    pub prefix: String,
    /// How long after dispatch an unstarted job in an empty queue counts as lost.
    pub after: Duration,
    pub interval: Duration,
    pub wake_dispatcher: Arc<Notify>,
}

impl Reconciler {
    pub async fn run(self, cancel: CancellationToken) {
        let mut connection: Option<Connection> = None;
        loop {
            match self.run_once(&mut connection).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(redispatched = n, "reconciled stuck dispatches"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reconciliation failed; will try again");
                    connection = None;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.interval.mul_f64(0.8 + fastrand::f64() * 0.4)) => {}
            }
        }
        if let Some(connection) = connection
            && let Err(e) = connection.close(200, "stopping".into()).await
        {
            tracing::debug!(error = %e, "closing the reconciler connection failed");
        }
    }

    /// One pass; returns how many jobs were queued for publishing again.
    pub async fn run_once(&self, connection: &mut Option<Connection>) -> anyhow::Result<usize> {
        let stale = db::jobs::stale_dispatches(&self.db, self.after).await?;
        if stale.is_empty() {
            return Ok(0);
        }
        if connection.as_ref().is_none_or(|c| !c.status().connected()) {
            *connection = Some(amqp::connect(&self.amqp_url, "baton-reconciler").await?);
        }
        let connection = connection.as_ref().expect("connected above");
        let mut redispatched = 0;
        for (model, ids) in stale {
            let queue = baton_protocol::queue::job_queue(&self.prefix, &model);
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
            tracing::warn!(%model, jobs = queued, "jobs dispatched but never started, with an empty queue: publishing again");
            redispatched += usize::try_from(queued).unwrap_or_default();
        }
        if redispatched > 0 {
            self.wake_dispatcher.notify_one();
        }
        Ok(redispatched)
    }
}
