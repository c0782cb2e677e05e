//! Step 4: files on the volume that nothing refers to. Blob files that no row knows (left by a
//! pass killed between deleting a row and removing its file, or by an upload whose commit failed
//! or never came) and upload temp files (left by a process killed mid-upload), both once they
//! are older than the grace period.
//!
//! The grace period spares uploads still writing their temp file and commits in flight, and is
//! judged by modification time: a temp file's grows with every write, and a rename into place
//! keeps it.

use std::{
    collections::HashSet,
    io, mem,
    time::{SystemTime, UNIX_EPOCH},
};

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step, blobs::FileRemoval};
use crate::{
    db,
    storage::{FoundBlob, StoreName},
};

/// Blob files looked up in the database at once.
const BATCH: usize = 1_000;

impl Cleaner {
    pub(super) async fn remove_orphan_files(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        let cutoff = self.grace_cutoff();
        let Some(volume) = self.storage.volume().cloned() else {
            return Ok(());
        };
        let storage = volume.clone();
        let dirs = tokio::task::spawn_blocking(move || storage.scan_blob_dirs())
            .await
            .map_err(io::Error::other)??;
        let mut candidates = Vec::new();
        for (owner, dir) in dirs {
            self.checkpoint.check()?;
            let storage = volume.clone();
            let found = tokio::task::spawn_blocking(move || storage.scan_blobs_in(&owner, &dir))
                .await
                .map_err(io::Error::other)??;
            candidates.extend(found.into_iter().filter(|blob| blob.file.modified < cutoff));
            if candidates.len() >= BATCH {
                self.remove_orphans(mode, mem::take(&mut candidates), report).await?;
            }
        }
        self.remove_orphans(mode, candidates, report).await
    }

    /// Removes those of `candidates` that have no row.
    async fn remove_orphans(
        &self,
        mode: Mode,
        candidates: Vec<FoundBlob>,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let (owners, sha256s): (Vec<String>, Vec<String>) = candidates
            .iter()
            .map(|blob| (blob.owner.as_str().to_owned(), blob.sha256.as_str().to_owned()))
            .unzip();
        let known: HashSet<(String, String)> = db::blobs::existing(&self.db, &owners, &sha256s)
            .await?
            .into_iter()
            .collect();
        for blob in candidates {
            if known.contains(&(blob.owner.as_str().to_owned(), blob.sha256.as_str().to_owned())) {
                continue;
            }
            if mode == Mode::DryRun {
                report.orphans += 1;
                report.orphan_bytes += blob.file.size;
                continue;
            }
            self.checkpoint.check()?;
            match self
                .remove_blob_file(&blob.owner, &blob.sha256, &StoreName::volume())
                .await?
            {
                FileRemoval::Removed => {
                    tracing::info!(path = %blob.file.path.display(), size = blob.file.size,
                        "removed a blob file that no row knows");
                    report.orphans += 1;
                    report.orphan_bytes += blob.file.size;
                }
                FileRemoval::Absent | FileRemoval::Claimed => {}
                FileRemoval::Busy => report.deferred += 1,
            }
        }
        Ok(())
    }

    pub(super) async fn remove_temp_files(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        let cutoff = self.grace_cutoff();
        let Some(volume) = self.storage.volume().cloned() else {
            return Ok(());
        };
        let storage = volume.clone();
        let found = tokio::task::spawn_blocking(move || storage.scan_temp())
            .await
            .map_err(io::Error::other)??;
        for file in found.into_iter().filter(|file| file.modified < cutoff) {
            if mode == Mode::DryRun {
                report.temp_files += 1;
                report.temp_bytes += file.size;
                continue;
            }
            self.checkpoint.check()?;
            let (storage, path) = (volume.clone(), file.path.clone());
            let removed = tokio::task::spawn_blocking(move || storage.remove_temp(&path))
                .await
                .map_err(io::Error::other)??;
            if removed {
                let path = file.path.display();
                tracing::info!(%path, size = file.size, "removed an abandoned upload's temp file");
                report.temp_files += 1;
                report.temp_bytes += file.size;
                self.checkpoint.reached(Step::TempFileRemoved).await?;
            }
        }
        Ok(())
    }

    /// Files last modified before this are past the grace period.
    fn grace_cutoff(&self) -> SystemTime {
        SystemTime::now().checked_sub(self.config.grace).unwrap_or(UNIX_EPOCH)
    }
}
