//! Drains the outbox to RabbitMQ.
//!
//! Woken right after each submit commits (and polled, for other replicas' submits and for
//! retries that come due), it claims a batch of due entries, publishes them all with confirms in
//! flight, deletes the confirmed ones and postpones the rest. A crash at any point leaves the
//! entries in Postgres, where the claim expires and another round publishes them again: delivery
//! is at-least-once, and workers' events carry the attempt so duplicates are harmless.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    message::job_message,
    publisher::{Outgoing, PublishError, Publisher},
};
use crate::{
    db::{self, files::FileRow, outbox::Entry},
    domain::{JobId, JobStatus},
    telemetry::metrics as m,
};

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Most entries per round.
    pub batch: u32,
    /// Poll interval when nothing wakes the dispatcher.
    pub poll: Duration,
    /// How long a claim hides entries from other dispatchers.
    pub claim_lease: Duration,
    /// Queue name prefix.
    pub queue_prefix: String,
    /// Baton's lease (`BATON_LEASE`), announced in every job message with the heartbeat
    /// interval it implies.
    pub lease: Duration,
}

pub struct Dispatcher {
    db: PgPool,
    publisher: Publisher,
    wake: Arc<Notify>,
    config: DispatcherConfig,
    events_queue: String,
    /// Claims of a failed round, to release at the next chance.
    unreleased: Vec<Entry>,
}

impl Dispatcher {
    pub fn new(db: PgPool, publisher: Publisher, wake: Arc<Notify>, config: DispatcherConfig) -> Self {
        let events_queue = baton_protocol::queue::events_queue(&config.queue_prefix);
        Self {
            db,
            publisher,
            wake,
            config,
            events_queue,
            unreleased: Vec::new(),
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let wait = match self.run_once().await {
                Ok(handled) if handled >= self.config.batch as usize => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.config.poll
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "dispatch round failed");
                    retry_delay(failures)
                }
            };
            if failures > 0 {
                // Submits keep waking the dispatcher; while RabbitMQ or Postgres is away that
                // would retry once per submit instead of backing off.
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.publisher.close().await;
    }

    /// One round: returns how many outbox entries it handled.
    pub async fn run_once(&mut self) -> anyhow::Result<usize> {
        // Claims of a round that failed midway come back now rather than when they expire.
        if !self.unreleased.is_empty() {
            db::outbox::release(&self.db, &self.unreleased).await?;
            self.unreleased.clear();
        }
        // No point claiming entries while RabbitMQ is unreachable.
        self.publisher.ensure_connected().await?;
        let entries = db::outbox::claim(&self.db, i64::from(self.config.batch), self.config.claim_lease).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.publish_claimed(&entries).await {
            self.unreleased.extend(entries);
            return Err(e);
        }
        Ok(entries.len())
    }

    /// Publishes claimed entries and records the outcome of each.
    async fn publish_claimed(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        let ids: Vec<JobId> = entries.iter().map(|e| e.job_id).collect();
        let jobs = db::jobs::get_many(&self.db, &ids).await?;
        let mut files: HashMap<JobId, Vec<FileRow>> = HashMap::new();
        for file in db::files::of_jobs(&self.db, &ids).await? {
            files.entry(file.job_id).or_default().push(file);
        }
        let jobs: HashMap<JobId, _> = jobs.into_iter().map(|j| (j.id, j)).collect();

        let mut stale = Vec::new();
        let mut sendable = Vec::new();
        let mut outgoing = Vec::new();
        for entry in entries {
            match jobs.get(&entry.job_id) {
                Some(job) if job.status == JobStatus::Queued && job.attempt == entry.attempt => {
                    let files = files.get(&job.id).map_or(&[][..], Vec::as_slice);
                    let message = job_message(job, files, self.config.lease);
                    outgoing.push(Outgoing {
                        queue: baton_protocol::queue::job_queue(&self.config.queue_prefix, &job.model),
                        message_id: format!("{}:{}", job.id, job.attempt),
                        reply_to: self.events_queue.clone(),
                        body: serde_json::to_vec(&message)?,
                    });
                    sendable.push(*entry);
                }
                // Finished, moved on to another attempt, or gone: nothing to publish.
                _ => stale.push(*entry),
            }
        }

        // The moment the messages left: workers may report a start before the confirms return.
        let sent_at = time::OffsetDateTime::now_utc();
        let results = self.publisher.publish_all(&outgoing).await;
        let mut published = Vec::with_capacity(sendable.len());
        let mut failed: Vec<(Entry, PublishError)> = Vec::new();
        for (entry, result) in sendable.into_iter().zip(results) {
            match result {
                Ok(()) => published.push(entry),
                Err(e) => failed.push((entry, e)),
            }
        }

        let published_ids: Vec<JobId> = published.iter().map(|e| e.job_id).collect();
        let published_attempts: Vec<i32> = published.iter().map(|e| e.attempt).collect();
        if !published.is_empty() {
            db::outbox::record_published(&self.db, &published_ids, &published_attempts, sent_at).await?;
        }
        if !stale.is_empty() {
            db::outbox::complete(&self.db, &stale).await?;
        }
        metrics::counter!(m::DISPATCHED).increment(published.len() as u64);
        for (_, error) in &failed {
            let reason = match error {
                PublishError::Unroutable(_) => "unroutable",
                PublishError::Nacked => "nacked",
                PublishError::Timeout(_) => "timeout",
                PublishError::Amqp(_) | PublishError::Connect(_) => "connection",
            };
            metrics::counter!(m::DISPATCH_FAILURES, "reason" => reason).increment(1);
        }
        if let Some((first, error)) = failed.first() {
            tracing::warn!(failed = failed.len(), job_id = %first.job_id, error = %error, "publishing failed; will retry");
            let max_tries = failed.iter().map(|(e, _)| e.tries).max().unwrap_or(1);
            let ids: Vec<JobId> = failed.iter().map(|(e, _)| e.job_id).collect();
            db::outbox::postpone(&self.db, &ids, retry_delay(u32::try_from(max_tries).unwrap_or(1))).await?;
        }
        tracing::debug!(published = published.len(), failed = failed.len(), "dispatch round");
        Ok(())
    }
}

/// 100 ms doubling to at most 5 s: short, because the cause (RabbitMQ restarting) is usually
/// brief and clients are waiting.
fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_millis(100 * (1 << exponent)).min(Duration::from_secs(5))
}
