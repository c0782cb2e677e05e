//! Local-first replication (`BATON_STORAGE_REPLICA_URL`): the volume stays the primary store and
//! every blob on it is copied to an object store in the background.
//!
//! Uploads never wait for the replica: they commit to the volume as without one. The
//! [`Replicator`] then, each round:
//! 1. gives every blob on the volume it has not seen a `blob_replicas` row (recent blobs each
//!    round; all of them at start and every [`FULL_SCAN_EVERY`], which is how blobs stored
//!    before replication was turned on get copied too);
//! 2. claims a batch of due, unreplicated rows `FOR UPDATE SKIP LOCKED`, pushing each one's next
//!    attempt past the copy timeout, so replicas of Baton share the work and a crashed
//!    replicator's claims come back by themselves;
//! 3. copies each blob while its transaction holds the blob row `FOR KEY SHARE` (uploads of the
//!    same content share that lock; cleanup passes over the row until the copy ends, so the blob
//!    and its volume file cannot go mid-copy): streamed from the volume to the replica's
//!    staging, placed at its content address, read back, and only when size and SHA-256 match
//!    marked `replicated_at` in the same transaction;
//! 4. on failure records the error and retries that blob after an exponential, jittered backoff
//!    (`BATON_REPLICATION_BACKOFF_MIN` doubling up to `BATON_REPLICATION_BACKOFF_MAX`).
//!
//! Metrics: `baton_replication_failures_total` (by reason), `baton_replication_blobs_total` and
//! `baton_replication_bytes_total` here; `baton_replication_lag_seconds` (age of the oldest blob
//! without a verified copy) and `baton_replication_unreplicated_bytes` are read from Postgres
//! when `/metrics` is scraped ([`db::replicas::backlog`]).

mod copy;
mod settings;

pub use settings::ReplicationSettings;

use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

pub use copy::{CopyError, copy_verified, verify};

use crate::{
    db,
    service::{Backoff, InvalidConfig, Service, jittered, pause, spread},
    storage::{Backend, StoreName},
    telemetry::metrics as m,
};

/// How far back each round looks for new blobs. A blob row is inserted just before its upload
/// commits, so its `created_at` is that moment; any older one is found by the full scan.
pub const RECENT: Duration = Duration::from_secs(10 * 60);
/// How often every blob on the volume is looked at, for those the recent scans missed.
pub const FULL_SCAN_EVERY: Duration = Duration::from_secs(3600);

/// Replicator settings.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Pause between rounds when there is nothing to copy, jittered by ±20%
    /// (`BATON_REPLICATION_INTERVAL`, default 5 s).
    pub interval: Duration,
    /// Most blobs claimed per round (`BATON_REPLICATION_BATCH`, default 32).
    pub batch: u32,
    /// Blobs copied at once (`BATON_REPLICATION_CONCURRENCY`, default 2).
    pub concurrency: u32,
    /// Longest one copy (write and read back) may take; also how long a claim keeps other
    /// replicas off the blob (`BATON_REPLICATION_COPY_TIMEOUT`, default 30 min).
    pub copy_timeout: Duration,
    /// Delay before a blob's first retry (`BATON_REPLICATION_BACKOFF_MIN`, default 1 s).
    pub backoff_min: Duration,
    /// Longest delay between a blob's retries (`BATON_REPLICATION_BACKOFF_MAX`, default 5 min).
    pub backoff_max: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            batch: 32,
            concurrency: 2,
            copy_timeout: Duration::from_secs(30 * 60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
        }
    }
}

impl ReplicationConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::positive("BATON_REPLICATION_INTERVAL", self.interval)?;
        InvalidConfig::at_least_one("BATON_REPLICATION_BATCH", u64::from(self.batch))?;
        InvalidConfig::at_least_one("BATON_REPLICATION_CONCURRENCY", u64::from(self.concurrency))?;
        InvalidConfig::positive("BATON_REPLICATION_COPY_TIMEOUT", self.copy_timeout)?;
        InvalidConfig::positive("BATON_REPLICATION_BACKOFF_MIN", self.backoff_min)?;
        if self.backoff_max < self.backoff_min {
            return Err(InvalidConfig {
                setting: "BATON_REPLICATION_BACKOFF_MAX",
                reason: "must be at least BATON_REPLICATION_BACKOFF_MIN".to_owned(),
            });
        }
        Ok(())
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Blobs given a replica row this round.
    pub enqueued: u64,
    /// Blobs claimed for copying.
    pub claimed: u64,
    /// Copies written (or found already there) and verified.
    pub replicated: u64,
    /// Copies that failed; each is retried after its backoff.
    pub failed: u64,
    /// Claimed blobs that were deleted or left the volume before their copy began.
    pub skipped: u64,
    /// Bytes of the verified copies.
    pub bytes: u64,
}

/// The outcome of one blob's copy.
enum Outcome {
    Replicated(u64),
    Failed,
    Skipped,
}

pub struct Replicator {
    db: PgPool,
    volume: Backend,
    replica: Backend,
    config: ReplicationConfig,
    backoff: Backoff,
    last_full_scan: Option<Instant>,
}

impl Replicator {
    /// A replicator from the volume to `replica`; the config is validated here.
    pub fn new(
        db: PgPool,
        volume: Backend,
        replica: Backend,
        config: ReplicationConfig,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Self {
            db,
            volume,
            replica,
            backoff: Backoff::new(config.backoff_min, config.backoff_max),
            config,
            last_full_scan: None,
        })
    }

    pub fn store(&self) -> StoreName {
        self.replica.name()
    }

    /// One round: find new blobs, claim a batch, copy and verify each.
    #[tracing::instrument(name = "replication", skip_all, fields(claimed = Empty, replicated = Empty, failed = Empty))]
    pub async fn run_once(&mut self) -> sqlx::Result<RoundReport> {
        let store = self.store();
        let mut report = RoundReport::default();
        let full_scan_due = self.last_full_scan.is_none_or(|at| at.elapsed() >= FULL_SCAN_EVERY);
        report.enqueued = if full_scan_due {
            let enqueued = db::replicas::enqueue_all(&self.db, &store).await?;
            self.last_full_scan = Some(Instant::now());
            enqueued
        } else {
            db::replicas::enqueue_recent(&self.db, &store, RECENT).await?
        };
        // The claim outlives the copy's timeout, so no other replica starts the same copy.
        let lease = self.config.copy_timeout + Duration::from_secs(60);
        let claimed = db::replicas::claim(&self.db, &store, i64::from(self.config.batch), lease).await?;
        report.claimed = claimed.len() as u64;
        let this = &*self;
        let outcomes: Vec<sqlx::Result<Outcome>> = stream::iter(claimed)
            .map(|blob| this.replicate(blob))
            .buffer_unordered(self.config.concurrency as usize)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome? {
                Outcome::Replicated(bytes) => {
                    report.replicated += 1;
                    report.bytes += bytes;
                }
                Outcome::Failed => report.failed += 1,
                Outcome::Skipped => report.skipped += 1,
            }
        }
        let span = tracing::Span::current();
        span.record("claimed", report.claimed);
        span.record("replicated", report.replicated);
        span.record("failed", report.failed);
        Ok(report)
    }

    async fn replicate(&self, blob: db::replicas::Claimed) -> sqlx::Result<Outcome> {
        let Some((owner, sha256)) = blob.parsed() else {
            return Ok(Outcome::Skipped);
        };
        let size = u64::try_from(blob.size).unwrap_or_default();
        let store = self.store();
        let mut tx = self.db.begin().await?;
        if !db::replicas::hold_blob(&mut tx, &owner, &sha256).await? {
            return Ok(Outcome::Skipped);
        }
        let copy = copy_verified(&self.volume, &self.replica, &owner, &sha256, size);
        let error = match tokio::time::timeout(self.config.copy_timeout, copy).await {
            Ok(Ok(())) => {
                db::replicas::record_replicated(&mut tx, &owner, &sha256, &store).await?;
                tx.commit().await?;
                metrics::counter!(m::REPLICATION_BLOBS).increment(1);
                metrics::counter!(m::REPLICATION_BYTES).increment(size);
                return Ok(Outcome::Replicated(size));
            }
            Ok(Err(error)) => error,
            Err(_) => CopyError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the copy took longer than {:?}", self.config.copy_timeout),
            )),
        };
        tx.rollback().await?;
        let attempts = u32::try_from(blob.attempts).unwrap_or(1);
        let retry_in = spread(self.backoff.delay(attempts), 0.2);
        metrics::counter!(m::REPLICATION_FAILURES, "reason" => error.reason()).increment(1);
        tracing::warn!(owner = owner.as_str(), sha256 = %sha256, attempts, retry_in = ?retry_in, error = %error,
            "replicating a blob failed; it will be retried");
        db::replicas::record_failure(&self.db, &owner, &sha256, &store, &error.to_string(), retry_in).await?;
        Ok(Outcome::Failed)
    }
}

impl Service for Replicator {
    fn name(&self) -> &'static str {
        "replicator"
    }

    /// Runs rounds until cancelled: the next at once after a full batch, else after the
    /// interval. A round stopped midway leaves claimed blobs to come back after their claim.
    async fn run(mut self, cancel: CancellationToken) {
        let mut database_failures = 0_u32;
        loop {
            let round = tokio::select! {
                () = cancel.cancelled() => break,
                round = self.run_once() => round,
            };
            let wait = match round {
                Ok(report) => {
                    database_failures = 0;
                    if report.claimed > 0 {
                        tracing::debug!(?report, "replication round");
                    }
                    if report.claimed >= u64::from(self.config.batch) && report.failed == 0 {
                        Duration::ZERO
                    } else {
                        jittered(self.config.interval)
                    }
                }
                Err(error) => {
                    database_failures += 1;
                    let wait = self.backoff.delay(database_failures).max(self.config.interval);
                    tracing::warn!(error = %error, retry_in = ?wait, "replication round failed");
                    wait
                }
            };
            if pause(&cancel, wait).await == ControlFlow::Break(()) {
                break;
            }
        }
    }
}
