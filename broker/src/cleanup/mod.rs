//! Cleanup: retention of finished jobs, and reconciling every store (the shared volume, S3,
//! Azure Blob) with the database.
//!
//! A pass, run by one replica at a time (a session-level advisory lock), goes through:
//! 1. retention (`retention`): finished jobs older than their status's retention are deleted,
//!    a batch per short transaction, and their files, timeline and outbox entries with them.
//!    Unfinished jobs are never selected, so a file that a job may still read keeps its row;
//! 2. unreferenced blobs (`blobs`): every blob row that no file refers to (those step 1 just
//!    released and any an interrupted pass left) is deleted, then its bytes are removed from the
//!    store the row named (and from the store a migration moved it from, if that copy is kept);
//! 3. and 4., for each store this replica knows (`stores`): blob rows whose bytes are gone from
//!    their store or have the wrong size are reported (`missing`); newly found ones get
//!    `missing_at` and a `file_missing` entry in the timeline of each unfinished job that uses
//!    them. Then bytes that no row names for that store (`orphans`) and uploads left unfinished
//!    (the volume's `tmp/*.part`, an object store's `staging/*`), both older than the grace
//!    period, are removed (`volume`, `objects`: an object store is listed once per pass).
//! 5. moved-from copies (`moved`): the copy a storage migration left in the store a blob was
//!    moved from is removed once no unfinished job created before the blob's switch refers to
//!    the blob (only such a job can hold a message naming the old copy). `baton storage
//!    migrate` runs this step itself after its copies; the pass finishes what it left waiting.
//!
//! # Order, and why no job ever loses its file
//!
//! The schema's invariant is that a committed blob row means its bytes are in the store it
//! names. Cleanup keeps it by never removing bytes from a store while a row naming that store
//! for them exists or is being created:
//! - A blob row is deleted in one short transaction: lock it `FOR UPDATE SKIP LOCKED` (an
//!   upload that claimed it holds `FOR KEY SHARE` until it commits, so the row is skipped, never
//!   waited for); check in a statement of its own, whose snapshot is taken after the lock, that
//!   no file refers to it (a file committed before the lock is visible; a new one needs the
//!   key-share lock, which now waits); delete; commit. The bytes are still there.
//! - The bytes are removed in a second transaction that inserts a placeholder row for the same
//!   key and is always rolled back. While that insert is uncommitted every upload of the same
//!   content waits at its own insert (the claim in `jobs::submit`). If an upload inserted the key
//!   first, cleanup waits for it (at most a lock timeout) and then finds a committed row, which
//!   it locks `FOR UPDATE` (skipping it if an upload holds it): a row naming this store means an
//!   upload adopted the bytes, which stay; a row naming another store holds back every upload
//!   and migration of that content while the bytes here go (an upload that meets a row in
//!   another store uses that copy and places nothing here). Only when the key is held are the
//!   bytes removed (on the volume, the file unlinked and its directory synced), and only after
//!   that is the key released. An upload that then comes finds no row and no bytes, inserts its
//!   row and places its own bytes.
//! - Killed between the two transactions, a pass leaves bytes that no row names; the orphan sweep
//!   removes them later with the same second transaction, which also makes that sweep safe
//!   against an upload's uncommitted placement. Killed inside either, a pass leaves things as
//!   they were.
//! - With a replica store (`BATON_STORAGE_REPLICA_URL`), its copy of a deleted blob is removed
//!   right after the volume's file, under the same reserved key. The replicator copies a blob
//!   only while holding its row `FOR KEY SHARE`, so cleanup's `SKIP LOCKED` passes over a blob
//!   being copied, and a copy never starts once the row is gone: no copy is placed after its
//!   removal; an upload of the same content that commits a row meanwhile keeps the copy, for
//!   the replicator to verify. The replica is never read for a job, so losing or keeping a
//!   copy changes nothing for the volume's invariant; a replica unreachable then keeps the copy.
//!
//! So a crash anywhere leaves no row without its bytes, and no unknown bytes past the grace
//! period. The advisory lock only avoids duplicate work: every step stays safe if passes overlap
//! (say, a replica whose lock session was cut off).
//!
//! # The same argument on object stores
//!
//! Nothing above depends on the volume's file system; it needs three things of a store, and S3
//! and Azure Blob give them:
//! - An upload reaches its content address in one step that never overwrites: it is streamed to
//!   `staging/<uuid>` (multipart, while hashed), then copied to `blobs/…` with a create-if-absent
//!   copy (`copy_if_not_exists`; on S3 a conditional multipart completion), made while the
//!   upload holds the row (its uncommitted insert or its key-share lock). An object already
//!   there is the same bytes and is kept. So a placement happens only under the key's row, as a
//!   rename on the volume does, and the reservation above serialises it with every removal
//!   exactly as it does there.
//! - A removal is one `DELETE` of the key, made while the key is reserved; a delete that finds
//!   nothing (Azure answers 404) counts as done.
//! - The orphan sweep judges age by the object's last-modified time, which the copy sets, so an
//!   object placed by a commit in flight is younger than the grace period. It reads one listing
//!   of `blobs/` per pass and checks the database in batches, then takes the key as above for
//!   each candidate, so an object adopted by an upload after the listing stays.
//! - A migration copies blobs into its target before it switches their rows, so while one is
//!   unfinished its target's orphans are not swept, and a removal that finds a row in another
//!   store while a migration into this one runs is left for later. A migration places a copy
//!   under the row's lock, like an upload, and checks the copy under the lock it switches the
//!   row with.
//!
//! A crash leaves on an object store what it leaves on the volume: staging objects (the volume's
//! temp files) and blob objects no row names (orphans), both swept after the grace period. What
//! a listing cannot see is not swept: an S3 multipart upload a crash abandoned keeps its parts
//! (billed, invisible to `list`) until the bucket's lifecycle rule
//! `AbortIncompleteMultipartUpload` removes them, which operators must add (the README's
//! Cleanup section says how); Azure drops uncommitted blocks by itself after 7 days.
//!
//! A listing of `blobs/` that is empty while rows name the store is the object analogue of an
//! unmounted volume (a wrong bucket, container or prefix): it is logged as an error and no row is
//! marked missing.
//!
//! `baton cleanup --dry-run` goes through the same steps and counts instead of deleting.

mod blobs;
mod missing;
mod moved;
mod objects;
mod orphans;
mod report;
mod retention;
mod stores;
mod volume;

use std::{
    io,
    ops::ControlFlow,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, pool::PoolConnection};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

pub use moved::{Released, remove_released_copies};
pub use report::CleanupReport;
pub(crate) use report::human_bytes;

use crate::{
    db,
    domain::JobStatus,
    service::{InvalidConfig, Service, jittered, pause},
    storage::Storage,
    telemetry::metrics as m,
};

/// How long finished jobs are kept, per terminal status, counted from when they finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub succeeded: Duration,
    pub failed: Duration,
    pub cancelled: Duration,
}

impl Retention {
    /// The same retention for every terminal status.
    pub fn all(retention: Duration) -> Self {
        Self {
            succeeded: retention,
            failed: retention,
            cancelled: retention,
        }
    }

    /// `None` for a status that is not terminal: such jobs are never deleted.
    pub fn of(&self, status: JobStatus) -> Option<Duration> {
        match status {
            JobStatus::Succeeded => Some(self.succeeded),
            JobStatus::Failed => Some(self.failed),
            JobStatus::Cancelled => Some(self.cancelled),
            JobStatus::Queued | JobStatus::Running => None,
        }
    }
}

/// Cleaner settings.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// How long finished jobs are kept (`BATON_RETENTION` and per status, default 30 days).
    pub retention: Retention,
    /// Time between scheduled passes, jittered by ±20% (`BATON_CLEANUP_INTERVAL`, default 1 h).
    pub interval: Duration,
    /// Age (by modification time) after which an upload's temp file or staging object, or blob
    /// bytes that no row names for their store, are abandoned. It covers uploads still writing,
    /// and commits in flight (`BATON_CLEANUP_GRACE`, default 1 h).
    pub grace: Duration,
    /// Most jobs deleted per transaction (`BATON_CLEANUP_BATCH`, default 500).
    pub batch: u32,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            retention: Retention::all(Duration::from_secs(30 * 24 * 3600)),
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(3600),
            batch: 500,
        }
    }
}

impl CleanupConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::positive("BATON_CLEANUP_INTERVAL", self.interval)?;
        InvalidConfig::at_least_one("BATON_CLEANUP_BATCH", u64::from(self.batch))
    }
}

/// What a call of [`Cleaner::run_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassOutcome {
    Done(CleanupReport),
    /// Another replica (or `baton cleanup`) is running a pass: nothing was done.
    Busy,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
    /// Stopped by shutdown or by a [`StepHook`] between two steps.
    #[error("the pass was stopped before it finished")]
    Interrupted,
}

/// Points in a pass where a [`StepHook`] is called: after each change that is committed to the
/// database or done to a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The pass holds the lock and begins.
    Started,
    /// A batch of expired jobs was deleted and committed.
    JobsDeleted,
    /// A blob row was deleted and committed; its bytes are still in their store.
    BlobRowDeleted,
    /// A blob's bytes were removed from a store; its key is still reserved.
    BlobFileRemoved,
    /// A blob row was found without its bytes and marked.
    MissingMarked,
    /// A temp file or staging object was removed.
    TempFileRemoved,
}

/// Called at each [`Step`]; `Break` stops the pass there, as if the process died (open
/// transactions roll back, the stores keep what was done). Lets tests pause and interrupt a
/// pass at any point.
pub type StepHook = Arc<dyn Fn(Step) -> BoxFuture<'static, ControlFlow<()>> + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    DryRun,
}

/// Where a pass checks for shutdown and calls its hook.
#[derive(Clone, Default)]
struct Checkpoint {
    hook: Option<StepHook>,
    stop: CancellationToken,
}

impl Checkpoint {
    /// Between two items of work: stop if shutdown began.
    fn check(&self) -> Result<(), CleanupError> {
        if self.stop.is_cancelled() {
            return Err(CleanupError::Interrupted);
        }
        Ok(())
    }

    async fn reached(&self, step: Step) -> Result<(), CleanupError> {
        if let Some(hook) = &self.hook
            && hook(step).await.is_break()
        {
            return Err(CleanupError::Interrupted);
        }
        Ok(())
    }
}

pub struct Cleaner {
    db: PgPool,
    storage: Storage,
    config: CleanupConfig,
    checkpoint: Checkpoint,
    pass_timeout: Duration,
}

impl Cleaner {
    /// Longest a scheduled pass may take before it is abandoned; the next pass continues.
    pub const PASS_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

    /// A cleaner for `baton cleanup` and tests; [`CleanupConfig::validate`] is the caller's
    /// (the service list in `app` calls it at start).
    pub fn new(db: PgPool, storage: Storage, config: CleanupConfig) -> Self {
        Self {
            db,
            storage,
            config,
            checkpoint: Checkpoint::default(),
            pass_timeout: Self::PASS_TIMEOUT,
        }
    }

    pub fn with_pass_timeout(mut self, timeout: Duration) -> Self {
        self.pass_timeout = timeout;
        self
    }

    pub fn with_hook(mut self, hook: StepHook) -> Self {
        self.checkpoint.hook = Some(hook);
        self
    }

    /// One pass now, unless another is running anywhere.
    #[tracing::instrument(name = "cleanup", skip_all, fields(jobs = Empty, blobs = Empty, orphans = Empty,
        temp_files = Empty, missing = Empty, bytes = Empty))]
    pub async fn run_once(&self) -> Result<PassOutcome, CleanupError> {
        let Some(lock) = self.lock().await? else {
            metrics::counter!(m::CLEANUP_PASSES, "outcome" => "busy").increment(1);
            return Ok(PassOutcome::Busy);
        };
        let started = Instant::now();
        let mut report = CleanupReport::default();
        let result = self.pass(Mode::Apply, &mut report).await;
        // Ending the session releases the lock, whatever happened to the pass.
        if let Err(e) = lock.close().await {
            tracing::debug!(error = %e, "closing the cleanup lock's connection failed");
        }
        report.record_metrics();
        let span = tracing::Span::current();
        span.record("jobs", report.jobs());
        span.record("blobs", report.blobs);
        span.record("orphans", report.orphans);
        span.record("temp_files", report.temp_files);
        span.record("missing", report.missing);
        span.record("bytes", report.bytes());
        metrics::histogram!(m::CLEANUP_PASS_TIME).record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(()) => "done",
            Err(CleanupError::Interrupted) => "interrupted",
            Err(_) => "failed",
        };
        metrics::counter!(m::CLEANUP_PASSES, "outcome" => outcome).increment(1);
        if result.is_err() && !report.is_empty() {
            tracing::info!(?report, "cleanup pass stopped early; this much was done");
        }
        result.map(|()| PassOutcome::Done(report))
    }

    /// What a pass would delete and free now, changing nothing and taking no lock.
    pub async fn dry_run(&self) -> Result<CleanupReport, CleanupError> {
        let mut report = CleanupReport::default();
        self.pass(Mode::DryRun, &mut report).await?;
        Ok(report)
    }

    async fn pass(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        self.checkpoint.reached(Step::Started).await?;
        self.expire_jobs(mode, report).await?;
        self.remove_unreferenced_blobs(mode, report).await?;
        self.reconcile_stores(mode, report).await?;
        self.remove_moved_copies(mode, report).await?;
        Ok(())
    }

    /// The pass lock, on a connection of its own that is closed (not pooled) afterwards.
    async fn lock(&self) -> sqlx::Result<Option<PoolConnection<Postgres>>> {
        let mut conn = self.db.acquire().await?;
        if !db::locks::try_lock_cleanup_pass(&mut conn).await? {
            return Ok(None);
        }
        // Dropped without `close` (a pass future cancelled), it must not go back to the pool
        // still holding the lock.
        conn.close_on_drop();
        Ok(Some(conn))
    }
}

impl Service for Cleaner {
    fn name(&self) -> &'static str {
        "cleaner"
    }

    /// Runs a pass every interval until cancelled. A pass in progress stops at its next item of
    /// work; what it did so far is consistent, and the next pass (here or on another replica)
    /// finishes the rest.
    async fn run(mut self, cancel: CancellationToken) {
        self.checkpoint.stop = cancel.clone();
        loop {
            if pause(&cancel, jittered(self.config.interval)).await.is_break() {
                break;
            }
            let Ok(result) = tokio::time::timeout(self.pass_timeout, self.run_once()).await else {
                tracing::warn!(timeout = ?self.pass_timeout, "cleanup pass timed out; the next one will continue");
                continue;
            };
            match result {
                Ok(PassOutcome::Done(report)) if report.is_empty() => tracing::debug!("cleanup pass: nothing to do"),
                Ok(PassOutcome::Done(report)) => tracing::info!(?report, "cleanup pass"),
                Ok(PassOutcome::Busy) => tracing::debug!("cleanup pass skipped: another replica is running one"),
                Err(CleanupError::Interrupted) => break,
                Err(e) => tracing::warn!(error = %e, "cleanup pass failed; the next one will continue"),
            }
        }
    }
}
