//! Steps 3 and 4 on the volume: rows whose files are gone (`missing`), blob files that no row
//! names for the volume (left by a pass killed between deleting a row and removing its file, by
//! an upload whose commit failed or never came, or by a migration away from the volume killed
//! midway) and upload temp files (left by a process killed mid-upload), the last two once they
//! are older than the grace period.
//!
//! The grace period spares uploads still writing their temp file and commits in flight, and is
//! judged by modification time: a temp file's grows with every write, and a rename into place
//! keeps it.

use std::{
    io, mem,
    time::{SystemTime, UNIX_EPOCH},
};

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step, orphans::Candidate};
use crate::storage::{Backend, StoreName, Volume};

/// Blob files looked up in the database at once.
pub(super) const BATCH: usize = 1_000;

impl Cleaner {
    pub(super) async fn reconcile_volume(
        &self,
        volume: &Volume,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        if !self.volume_looks_unmounted(volume).await? {
            self.find_missing_in(&Backend::Volume(volume.clone()), None, mode, report)
                .await?;
        }
        if self.may_sweep_orphans(&StoreName::volume()).await? {
            self.remove_orphan_files(volume, mode, report).await?;
        }
        self.remove_temp_files(volume, mode, report).await
    }

    async fn remove_orphan_files(
        &self,
        volume: &Volume,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let cutoff = self.grace_cutoff();
        let store = StoreName::volume();
        let scanner = volume.clone();
        let dirs = tokio::task::spawn_blocking(move || scanner.scan_blob_dirs())
            .await
            .map_err(io::Error::other)??;
        let mut candidates = Vec::new();
        for (owner, dir) in dirs {
            self.checkpoint.check()?;
            let scanner = volume.clone();
            let found = tokio::task::spawn_blocking(move || scanner.scan_blobs_in(&owner, &dir))
                .await
                .map_err(io::Error::other)??;
            candidates.extend(
                found
                    .into_iter()
                    .filter(|blob| blob.file.modified < cutoff)
                    .map(|blob| Candidate {
                        owner: blob.owner,
                        sha256: blob.sha256,
                        size: blob.file.size,
                        location: blob.file.path.display().to_string(),
                    }),
            );
            if candidates.len() >= BATCH {
                self.remove_orphans(mode, &store, mem::take(&mut candidates), report)
                    .await?;
            }
        }
        self.remove_orphans(mode, &store, candidates, report).await
    }

    async fn remove_temp_files(
        &self,
        volume: &Volume,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let cutoff = self.grace_cutoff();
        let scanner = volume.clone();
        let found = tokio::task::spawn_blocking(move || scanner.scan_temp())
            .await
            .map_err(io::Error::other)??;
        for file in found.into_iter().filter(|file| file.modified < cutoff) {
            if mode == Mode::DryRun {
                report.temp_files += 1;
                report.temp_bytes += file.size;
                continue;
            }
            self.checkpoint.check()?;
            let (remover, path) = (volume.clone(), file.path.clone());
            let removed = tokio::task::spawn_blocking(move || remover.remove_temp(&path))
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

    /// Files and objects last modified before this are past the grace period.
    pub(super) fn grace_cutoff(&self) -> SystemTime {
        SystemTime::now().checked_sub(self.config.grace).unwrap_or(UNIX_EPOCH)
    }
}
