//! Online migration of every stored blob to another store (`baton storage migrate`), in either
//! direction (volume → object store, object store → volume, or between object stores).
//!
//! 1. The migration is recorded (`storage_migrations`); from then on every replica sends new
//!    uploads to the target ([`WriteTargetFollower`] polls the row every second).
//! 2. Each blob outside the target is streamed into it, read back and verified (size and
//!    SHA-256), and its row switched in one update under the row's lock (`store = target`,
//!    `previous_store = old`, `moved_at = now`), which is a no-op if the row changed meanwhile.
//!    An intact copy already in the target (a killed run's) is verified and reused, so a rerun
//!    finishes what a killed run began.
//! 3. Passes repeat until one moves nothing (uploads that began before the switch may still
//!    land in the old store); then the migration is marked finished. A later run picks up any
//!    straggler.
//! 4. The copies left behind are removed once no unfinished job created before the switch
//!    refers to the blob (the same step as cleanup's, which finishes what is left waiting).

mod command;
mod copy;
mod follow;
mod plan;
mod progress;
mod throttle;

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use sqlx::PgPool;

pub use command::{StorageCommand, run, target_backend};
pub use copy::Moved;
pub use follow::{WriteTargetConfig, WriteTargetFollower};
pub use plan::{Plan, PlanLine};

use crate::{
    cleanup::{self, Released},
    db::{
        self,
        blobs::moves::{HeldCopies, StoreTotals},
        migrations::MigrationRow,
    },
    domain::{Owner, Sha256Hex},
    storage::{Backend, Storage, StoreName},
    telemetry::metrics as m,
};
use progress::Progress;
use throttle::Throttle;

/// Blob rows read per page.
const PAGE: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(std::io::Error),
    #[error("verification failed: {0}")]
    Verification(String),
    #[error("{0}")]
    Conflict(String),
    /// Stopped by a [`MoveHook`].
    #[error("the migration was stopped before it finished")]
    Interrupted,
}

impl From<cleanup::CleanupError> for MigrationError {
    fn from(error: cleanup::CleanupError) -> Self {
        match error {
            cleanup::CleanupError::Database(e) => Self::Database(e),
            cleanup::CleanupError::Storage(e) => Self::Storage(e),
            cleanup::CleanupError::Interrupted => Self::Interrupted,
        }
    }
}

/// Called after each blob's copy is in place and verified (before its switch), and after each
/// switch; `Break` stops the migration there, as a kill would. Lets tests stop it anywhere.
pub type MoveHook = Arc<dyn Fn(MoveStep) -> BoxFuture<'static, ControlFlow<()>> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    Verified,
    Switched,
}

/// What [`Migration::execute`] did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Blobs whose rows now name the target, and their bytes.
    pub moved: u64,
    pub bytes: u64,
    /// Of those, written anew (the rest reused a verified copy already there).
    pub copied: u64,
    pub passes: u32,
    /// Blobs still outside the target (missing bytes, or waiting on a copy in a third store).
    pub left: Vec<StoreTotals>,
    /// Copies removed from the stores blobs were moved from.
    pub released: Released,
    /// Copies still kept because unfinished jobs may read them.
    pub held: Vec<HeldCopies>,
}

pub struct Migration {
    db: PgPool,
    storage: Storage,
    target: Backend,
    rate: Option<u64>,
    hook: Option<MoveHook>,
    progress_bar: bool,
}

impl Migration {
    pub fn new(db: PgPool, storage: Storage, target: Backend) -> Self {
        Self {
            db,
            storage,
            target,
            rate: None,
            hook: None,
            progress_bar: false,
        }
    }

    /// Caps bytes read and written per second (copies and read-backs together).
    pub fn with_rate(mut self, rate: Option<u64>) -> Self {
        self.rate = rate;
        self
    }

    pub fn with_hook(mut self, hook: MoveHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// A progress bar on stderr instead of log lines.
    pub fn with_progress_bar(mut self, on: bool) -> Self {
        self.progress_bar = on;
        self
    }

    pub fn target(&self) -> StoreName {
        self.target.name()
    }

    /// Moves every blob to the target while Baton keeps serving (see the module docs).
    pub async fn execute(&self) -> Result<Outcome, MigrationError> {
        let target = self.target.name();
        let mut outcome = Outcome::default();
        let outside = db::blobs::moves::outside(&self.db, target.as_str()).await?;
        let active = db::migrations::active(&self.db).await?;
        let migration = match active {
            Some(row) if row.target == target.as_str() => {
                tracing::info!(id = row.id, started_at = %row.started_at, "resuming the unfinished migration");
                Some(row)
            }
            Some(row) => {
                return Err(MigrationError::Conflict(format!(
                    "a migration to {} (started {}) is unfinished: run it again to finish it first",
                    row.target, row.started_at
                )));
            }
            None if outside.is_empty() => None,
            None => Some(self.start(&outside).await?),
        };
        if let Some(migration) = &migration {
            self.storage.set_write_target(Some(self.target.clone()));
            let total_blobs: i64 = outside.iter().map(|s| s.blobs - s.missing).sum();
            let total_bytes: i64 = outside.iter().map(|s| s.bytes).sum();
            let mut progress = Progress::new(self.progress_bar, total_blobs, total_bytes);
            let mut throttle = Throttle::new(self.rate);
            loop {
                outcome.passes += 1;
                // Copies kept in a third store hold their blobs back: free what may go first.
                let released = cleanup::remove_released_copies(&self.db, &self.storage).await?;
                add_released(&mut outcome.released, released);
                let moved = self.pass(&mut throttle, &mut progress, &mut outcome).await?;
                tracing::info!(pass = outcome.passes, moved, "migration pass done");
                if moved == 0 {
                    break;
                }
            }
            progress.finish(&outcome);
            db::migrations::finish(&self.db, migration.id).await?;
            self.storage.set_write_target(None);
            metrics::gauge!(m::MIGRATION_REMAINING).set(0.0);
        }
        // Then the copies left behind, as far as unfinished jobs allow.
        loop {
            let released = cleanup::remove_released_copies(&self.db, &self.storage).await?;
            add_released(&mut outcome.released, released);
            if released.copies == 0 {
                break;
            }
        }
        outcome.left = db::blobs::moves::outside(&self.db, target.as_str()).await?;
        outcome.held = db::blobs::moves::held(&self.db).await?;
        Ok(outcome)
    }

    async fn start(&self, outside: &[StoreTotals]) -> Result<MigrationRow, MigrationError> {
        let sources: Vec<&str> = outside.iter().map(|s| s.store.as_str()).collect();
        let source = sources.join(",");
        match db::migrations::start(&self.db, &source, self.target.name().as_str()).await? {
            Some(row) => {
                tracing::info!(id = row.id, %source, target = %row.target,
                    "migration started: new uploads go to the target");
                Ok(row)
            }
            None => Err(MigrationError::Conflict(
                "another migration started meanwhile: run this command again".to_owned(),
            )),
        }
    }

    /// One pass over every blob outside the target; returns how many it moved.
    async fn pass(
        &self,
        throttle: &mut Throttle,
        progress: &mut Progress,
        outcome: &mut Outcome,
    ) -> Result<u64, MigrationError> {
        let target = self.target.name();
        let mut mover = copy::Mover {
            db: &self.db,
            storage: &self.storage,
            target: &self.target,
            throttle,
            hook: self.hook.as_ref(),
        };
        let mut moved = 0;
        let mut after = (String::new(), String::new());
        loop {
            let page = db::blobs::moves::outside_page(&self.db, target.as_str(), (&after.0, &after.1), PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.owner.clone(), last.sha256.clone());
            for blob in &page {
                let Some((owner, sha256)) = blob.parsed() else {
                    continue;
                };
                if blob.missing {
                    continue;
                }
                let size = u64::try_from(blob.size).unwrap_or_default();
                let result = mover.move_blob(&owner, &sha256, size, &blob.store()).await;
                let result = result.map_err(|e| describe(e, &owner, &sha256, &blob.store()))?;
                if let Moved::Switched { copied } = result {
                    moved += 1;
                    outcome.moved += 1;
                    outcome.bytes += size;
                    outcome.copied += u64::from(copied);
                    metrics::counter!(m::MIGRATION_BLOBS).increment(1);
                    metrics::counter!(m::MIGRATION_BYTES).increment(size);
                    progress.moved(size);
                    self.reached(MoveStep::Switched).await?;
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        Ok(moved)
    }

    async fn reached(&self, step: MoveStep) -> Result<(), MigrationError> {
        if let Some(hook) = &self.hook
            && hook(step).await.is_break()
        {
            return Err(MigrationError::Interrupted);
        }
        Ok(())
    }
}

/// Names the blob a storage failure happened on.
fn describe(error: MigrationError, owner: &Owner, sha256: &Sha256Hex, from: &StoreName) -> MigrationError {
    match error {
        MigrationError::Storage(e) => MigrationError::Storage(std::io::Error::new(
            e.kind(),
            format!("moving {}/{sha256} from {from}: {e}", owner.as_str()),
        )),
        other => other,
    }
}

fn add_released(total: &mut Released, more: Released) {
    total.copies += more.copies;
    total.bytes += more.bytes;
    total.skipped += more.skipped;
}

/// Mirrors the current (or last) migration's progress from Postgres into the metrics, so every
/// replica's `/metrics` reports it whichever process runs the migration.
pub async fn refresh_metrics(db: &PgPool) -> sqlx::Result<()> {
    let Some(migration) = db::migrations::latest(db).await? else {
        return Ok(());
    };
    let (blobs, bytes) = db::blobs::moves::moved_since(db, &migration.target, migration.started_at).await?;
    metrics::counter!(m::MIGRATION_BLOBS).absolute(u64::try_from(blobs).unwrap_or_default());
    metrics::counter!(m::MIGRATION_BYTES).absolute(u64::try_from(bytes).unwrap_or_default());
    let remaining = if migration.finished_at.is_none() {
        let outside = db::blobs::moves::outside(db, &migration.target).await?;
        outside.iter().map(|s| s.blobs).sum()
    } else {
        0
    };
    metrics::gauge!(m::MIGRATION_REMAINING).set(remaining as f64);
    Ok(())
}

/// How long the follower waits between looks at the active migration.
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);
