//! Step 3: blob rows whose file is gone (or has the wrong size) are reported and marked.
//!
//! Cleanup never causes this (see the module above): it means the volume was damaged, or
//! restored from an older copy, or someone removed files by hand. Nothing can bring the bytes
//! back except an upload of the same content, which restores the file and clears the mark. So
//! a pass only makes the damage visible: `missing_at` on the row, a `file_missing` entry in the
//! timeline of each unfinished job that uses it (such a job's worker will fail with
//! `input_unavailable`), a warning and a metric.

use std::io;

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step};
use crate::{
    db::{self, blobs::BlobKey},
    domain::{Owner, Sha256Hex},
};

/// Blob rows checked per page.
const PAGE: i64 = 1_000;

struct Checked {
    row: BlobKey,
    owner: Owner,
    sha256: Sha256Hex,
    intact: bool,
}

impl Cleaner {
    pub(super) async fn find_missing_files(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        if self.volume_looks_unmounted().await? {
            return Ok(());
        }
        let mut after = (String::new(), String::new());
        loop {
            self.checkpoint.check()?;
            let page = db::blobs::page_after(&self.db, (&after.0, &after.1), PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.owner.clone(), last.sha256.clone());
            let full = page.len() as i64 == PAGE;
            for checked in self.check_files(page).await? {
                match (checked.intact, checked.row.missing) {
                    (true, false) => {}
                    (true, true) => {
                        if mode == Mode::Apply {
                            db::blobs::clear_missing(&self.db, &checked.owner, &checked.sha256).await?;
                            tracing::info!(owner = %checked.owner.as_str(), sha256 = %checked.sha256,
                                "a blob file reported missing is back");
                        }
                    }
                    (false, _) if mode == Mode::DryRun => report.missing += 1,
                    (false, _) => self.mark_missing(&checked, report).await?,
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Whether each row's bytes are in its store at the recorded size.
    async fn check_files(&self, page: Vec<BlobKey>) -> io::Result<Vec<Checked>> {
        let mut checked = Vec::with_capacity(page.len());
        for row in page {
            let Some((owner, sha256)) = row.parsed() else {
                continue;
            };
            let backend = self.storage.backend(&row.store())?;
            let intact = backend.blob_size(&owner, &sha256).await? == u64::try_from(row.size).ok();
            checked.push(Checked {
                row,
                owner,
                sha256,
                intact,
            });
        }
        Ok(checked)
    }

    /// Checks again under the row's lock, since an upload may have restored the file meanwhile
    /// (an upload holding the row is skipped: it is placing the file right now).
    async fn mark_missing(&self, checked: &Checked, report: &mut CleanupReport) -> Result<(), CleanupError> {
        let (owner, sha256) = (&checked.owner, &checked.sha256);
        let mut tx = self.db.begin().await?;
        if db::blobs::lock(&mut tx, owner, sha256).await?.is_none() {
            return Ok(());
        }
        let size = checked.row.size;
        let backend = self.storage.backend(&checked.row.store())?;
        let actual = backend.blob_size(owner, sha256).await?;
        if actual == u64::try_from(size).ok() {
            return Ok(());
        }
        report.missing += 1;
        if !db::blobs::mark_missing(&mut tx, owner, sha256).await? {
            return Ok(());
        }
        let jobs_marked = db::timeline::record_file_missing(&mut tx, owner, sha256).await?;
        tx.commit().await?;
        report.newly_missing += 1;
        tracing::warn!(
            owner = %owner.as_str(),
            %sha256,
            store = %checked.row.store,
            expected_size = size,
            found_size = ?actual,
            jobs_marked,
            "a blob's bytes are missing from its store",
        );
        self.checkpoint.reached(Step::MissingMarked).await
    }

    /// An empty `blobs/` while rows exist means the volume is not mounted (or is the wrong one),
    /// not that every file vanished: marking them all would bury real damage in noise.
    async fn volume_looks_unmounted(&self) -> Result<bool, CleanupError> {
        let Some(volume) = self.storage.volume().cloned() else {
            return Ok(false);
        };
        let root = volume.root().to_owned();
        let empty = tokio::task::spawn_blocking(move || volume.blobs_dir_is_empty())
            .await
            .map_err(io::Error::other)??;
        if !empty {
            return Ok(false);
        }
        let rows = db::blobs::page_after(&self.db, ("", ""), 1).await?;
        if rows.is_empty() {
            return Ok(false);
        }
        tracing::error!(
            root = %root.display(),
            "the volume has no blob files while the database has blob rows: is BATON_STORAGE_DIR the right, \
             mounted volume? Not checking for missing files",
        );
        Ok(true)
    }
}
