//! Blob bytes in a store that no row names for that store: removed once older than the grace
//! period, each under its key's reservation (see `blobs`), whichever kind of store holds them.
//!
//! A row for the same content in another store does not make them its own: a copy a killed
//! migration left, or bytes whose row was deleted and then uploaded again elsewhere, are orphans
//! of this store. While a migration into this store is unfinished, its copies have no row naming
//! them yet, so the store's orphans are left for a pass after it.

use std::collections::HashSet;

use super::{Cleaner, CleanupError, CleanupReport, Mode, blobs::FileRemoval};
use crate::{
    db,
    domain::{Owner, Sha256Hex},
    storage::StoreName,
};

/// Blob bytes found in a store, past the grace period.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub owner: Owner,
    pub sha256: Sha256Hex,
    pub size: u64,
    /// The file's path or the object's key, for the log.
    pub location: String,
}

impl Cleaner {
    /// Whether the orphans of `store` may be looked for now: not while a migration moves blobs
    /// into it.
    pub(super) async fn may_sweep_orphans(&self, store: &StoreName) -> Result<bool, CleanupError> {
        if db::blobs::is_migration_target(&self.db, store).await? {
            tracing::info!(%store, "a migration into this store is unfinished; its orphans are left for later");
            return Ok(false);
        }
        Ok(true)
    }

    /// Removes those of `candidates` that no row names for `store`.
    pub(super) async fn remove_orphans(
        &self,
        mode: Mode,
        store: &StoreName,
        candidates: Vec<Candidate>,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let (owners, sha256s): (Vec<String>, Vec<String>) = candidates
            .iter()
            .map(|blob| (blob.owner.as_str().to_owned(), blob.sha256.as_str().to_owned()))
            .unzip();
        let known: HashSet<(String, String)> = db::blobs::naming_store(&self.db, store, &owners, &sha256s)
            .await?
            .into_iter()
            .collect();
        for blob in candidates {
            if known.contains(&(blob.owner.as_str().to_owned(), blob.sha256.as_str().to_owned())) {
                continue;
            }
            if mode == Mode::DryRun {
                report.orphans += 1;
                report.orphan_bytes += blob.size;
                continue;
            }
            self.checkpoint.check()?;
            match self.remove_blob_file(&blob.owner, &blob.sha256, store).await? {
                FileRemoval::Removed => {
                    tracing::info!(%store, location = %blob.location, size = blob.size,
                        "removed blob bytes that no row names for their store");
                    report.orphans += 1;
                    report.orphan_bytes += blob.size;
                }
                FileRemoval::Absent | FileRemoval::Claimed => {}
                FileRemoval::Busy => report.deferred += 1,
            }
        }
        Ok(())
    }
}
