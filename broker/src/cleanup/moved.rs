//! Step 5: copies a migration left in the store a blob was moved from. Such a copy is removed
//! once no unfinished job created before the blob's switch (`moved_at`) refers to the blob:
//! only those jobs can hold a message that names the old copy. `baton storage migrate` runs the
//! same step after its copies; this pass finishes whatever the command left waiting.
//!
//! Each copy is removed while its row is locked (`FOR NO KEY UPDATE SKIP LOCKED`, which
//! submissions' `FOR KEY SHARE` does not wait for, and which a migration's switch of the same
//! row waits for), the rule checked again under the lock, and the row forgets the copy in the
//! same transaction. Killed before the commit, the row still names a copy that is gone: the
//! next round removes nothing and forgets it.

use sqlx::PgPool;

use super::{Cleaner, CleanupError, CleanupReport, Mode};
use crate::{
    db,
    domain::{Owner, Sha256Hex},
    storage::{Storage, StoreName},
};

/// Rows read per page.
const PAGE: i64 = 500;

/// What a round of removals did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Copies removed (or found gone) and forgotten by their rows.
    pub copies: u64,
    pub bytes: u64,
    /// Rows another transaction held, or whose store could not be reached: left for later.
    pub skipped: u64,
}

/// Removes every left-behind copy that no unfinished job can still need.
pub async fn remove_released_copies(db: &PgPool, storage: &Storage) -> Result<Released, CleanupError> {
    let mut released = Released::default();
    let mut after = (String::new(), String::new());
    loop {
        let page = db::blobs::moves::releasable(db, (&after.0, &after.1), PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = (last.owner.clone(), last.sha256.clone());
        for kept in &page {
            let (Some(owner), Some(sha256)) = (Owner::parse(&kept.owner), Sha256Hex::parse(&kept.sha256)) else {
                continue;
            };
            match remove_one(db, storage, &owner, &sha256).await {
                Ok(true) => {
                    released.copies += 1;
                    released.bytes += u64::try_from(kept.size).unwrap_or_default();
                }
                Ok(false) => released.skipped += 1,
                Err(CleanupError::Storage(e)) => {
                    tracing::warn!(store = %kept.previous_store, error = %e,
                        "could not remove a copy left by a migration; a later round retries");
                    released.skipped += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(released)
}

/// Removes one blob's previous copy if the rule still allows it under the row's lock.
async fn remove_one(db: &PgPool, storage: &Storage, owner: &Owner, sha256: &Sha256Hex) -> Result<bool, CleanupError> {
    let mut tx = db.begin().await?;
    let Some(row) = db::blobs::moves::lock(&mut tx, owner, sha256, true).await? else {
        return Ok(false);
    };
    let (Some(previous), Some(moved_at)) = (row.previous_store, row.moved_at) else {
        return Ok(false);
    };
    if db::blobs::moves::is_held(&mut tx, owner, sha256, moved_at).await? {
        return Ok(false);
    }
    let backend = storage.backend(&StoreName::from_stored(&previous))?;
    backend.remove(owner, sha256).await?;
    db::blobs::moves::forget_previous(&mut tx, owner, sha256).await?;
    tx.commit().await?;
    Ok(true)
}

impl Cleaner {
    pub(super) async fn remove_moved_copies(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        self.checkpoint.check()?;
        if mode == Mode::DryRun {
            let page = db::blobs::moves::releasable(&self.db, ("", ""), i64::MAX).await?;
            report.moved_copies += page.len() as u64;
            report.moved_copy_bytes += page
                .iter()
                .map(|k| u64::try_from(k.size).unwrap_or_default())
                .sum::<u64>();
            return Ok(());
        }
        let released = remove_released_copies(&self.db, &self.storage).await?;
        report.moved_copies += released.copies;
        report.moved_copy_bytes += released.bytes;
        report.deferred += released.skipped;
        Ok(())
    }
}
