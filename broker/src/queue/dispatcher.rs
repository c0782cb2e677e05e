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
use tracing::field::Empty;

use super::{
    message::job_message,
    publisher::{Outgoing, PublishError, Publisher},
};
use crate::{
    db::{self, files::FileRow, outbox::Entry},
    domain::{JobId, JobStatus},
    service::{Backoff, InvalidConfig, Service, pause},
    storage::Storage,
    telemetry::metrics as m,
};

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Most entries per round (`BATON_DISPATCH_BATCH`, default 256).
    pub batch: u32,
    /// Poll interval when nothing wakes the dispatcher (`BATON_DISPATCH_POLL`, default 1 s).
    pub poll: Duration,
    /// How long a claim hides entries from other dispatchers (default 30 s).
    pub claim_lease: Duration,
    /// Queue name prefix (`BATON_QUEUE_PREFIX`).
    pub queue_prefix: String,
    /// Baton's lease (`BATON_LEASE`, default 60 s), announced in every job message with the
    /// heartbeat interval it implies.
    pub lease: Duration,
    /// Longest a round may take; an abandoned round's claims expire after `claim_lease`
    /// (default 60 s).
    pub round_timeout: Duration,
    /// Pauses after consecutive failed rounds, and before publishing entries that failed again
    /// (100 ms doubling to 5 s: the cause, RabbitMQ restarting, is usually brief and clients
    /// are waiting).
    pub retry: Backoff,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            poll: Duration::from_secs(1),
            claim_lease: Duration::from_secs(30),
            queue_prefix: baton_protocol::queue::DEFAULT_PREFIX.to_owned(),
            lease: Duration::from_secs(60),
            round_timeout: Duration::from_secs(60),
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

impl DispatcherConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::at_least_one("BATON_DISPATCH_BATCH", u64::from(self.batch))?;
        InvalidConfig::positive("BATON_DISPATCH_POLL", self.poll)?;
        InvalidConfig::positive("dispatch claim lease", self.claim_lease)?;
        InvalidConfig::positive("BATON_LEASE", self.lease)?;
        InvalidConfig::positive("dispatch round timeout", self.round_timeout)
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchRound {
    /// Outbox entries claimed.
    pub claimed: usize,
    /// Messages RabbitMQ confirmed.
    pub published: usize,
    /// Messages that failed and were postponed.
    pub failed: usize,
    /// Entries whose job finished or moved on: removed without publishing.
    pub stale: usize,
}

pub struct Dispatcher {
    db: PgPool,
    /// Signs the URLs of object-stored inputs, per attempt.
    storage: Storage,
    publisher: Publisher,
    wake: Arc<Notify>,
    config: DispatcherConfig,
    events_queue: String,
    /// Claims of a failed round, to release at the next chance.
    unreleased: Vec<Entry>,
}

impl Dispatcher {
    pub fn new(
        db: PgPool,
        storage: Storage,
        publisher: Publisher,
        wake: Arc<Notify>,
        config: DispatcherConfig,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let events_queue = baton_protocol::queue::events_queue(&config.queue_prefix);
        Ok(Self {
            db,
            storage,
            publisher,
            wake,
            config,
            events_queue,
            unreleased: Vec::new(),
        })
    }

    /// One round: claims a batch of due entries and publishes them.
    #[tracing::instrument(name = "dispatch", skip_all, fields(claimed = Empty, published = Empty, failed = Empty,
        stale = Empty))]
    pub async fn run_once(&mut self) -> anyhow::Result<DispatchRound> {
        let mut round = DispatchRound::default();
        let result = self.round(&mut round).await;
        let span = tracing::Span::current();
        span.record("claimed", round.claimed);
        span.record("published", round.published);
        span.record("failed", round.failed);
        span.record("stale", round.stale);
        result.map(|()| round)
    }

    async fn round(&mut self, round: &mut DispatchRound) -> anyhow::Result<()> {
        // Claims of a round that failed midway come back now rather than when they expire.
        if !self.unreleased.is_empty() {
            db::outbox::release(&self.db, &self.unreleased).await?;
            self.unreleased.clear();
        }
        // No point claiming entries while RabbitMQ is unreachable.
        self.publisher.ensure_connected().await?;
        let entries = db::outbox::claim(&self.db, i64::from(self.config.batch), self.config.claim_lease).await?;
        round.claimed = entries.len();
        if entries.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.publish_claimed(&entries, round).await {
            self.unreleased.extend(entries);
            return Err(e);
        }
        Ok(())
    }

    /// Publishes claimed entries and records the outcome of each.
    async fn publish_claimed(&mut self, entries: &[Entry], round: &mut DispatchRound) -> anyhow::Result<()> {
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
        let mut unsigned = Vec::new();
        for entry in entries {
            match jobs.get(&entry.job_id) {
                Some(job) if job.status == JobStatus::Queued && job.attempt == entry.attempt => {
                    let files = files.get(&job.id).map_or(&[][..], Vec::as_slice);
                    let message = match job_message(&self.storage, job, files, self.config.lease).await {
                        Ok(message) => message,
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, error = %e,
                                "cannot sign the job's input URLs; will retry");
                            unsigned.push(entry.job_id);
                            continue;
                        }
                    };
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
            let job_id = first.job_id;
            tracing::warn!(failed = failed.len(), %job_id, %error, "publishing failed; will retry");
            let max_tries = failed.iter().map(|(e, _)| e.tries).max().unwrap_or(1);
            let ids: Vec<JobId> = failed.iter().map(|(e, _)| e.job_id).collect();
            let delay = self.config.retry.delay(u32::try_from(max_tries).unwrap_or(1));
            db::outbox::postpone(&self.db, &ids, delay).await?;
        }
        if !unsigned.is_empty() {
            db::outbox::postpone(&self.db, &unsigned, self.config.retry.delay(1)).await?;
        }
        round.published = published.len();
        round.failed = failed.len() + unsigned.len();
        round.stale = stale.len();
        Ok(())
    }
}

impl Service for Dispatcher {
    fn name(&self) -> &'static str {
        "dispatcher"
    }

    async fn run(mut self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let wait = match tokio::time::timeout(self.config.round_timeout, self.run_once()).await {
                Ok(Ok(round)) if round.claimed >= self.config.batch as usize => {
                    failures = 0;
                    continue;
                }
                Ok(Ok(_)) => {
                    failures = 0;
                    self.config.poll
                }
                Ok(Err(e)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "dispatch round failed");
                    self.config.retry.delay(failures)
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(timeout = ?self.config.round_timeout, failures, "dispatch round timed out");
                    self.config.retry.delay(failures)
                }
            };
            if failures > 0 {
                // Submits keep waking the dispatcher; while RabbitMQ or Postgres is away that
                // would retry once per submit instead of backing off.
                if pause(&cancel, wait).await.is_break() {
                    break;
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
}
