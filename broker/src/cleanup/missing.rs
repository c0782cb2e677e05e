//! Step 3, per store: blob rows whose bytes are gone from their store (or have the wrong size)
//! are reported and marked.
//!
//! Cleanup never causes this (see the module above): it means the store was damaged, or
//! restored from an older copy, or someone removed files or objects by hand. Nothing can bring the bytes
//! back except an upload of the same content, which restores the file and clears the mark. So
//! a pass only makes the damage visible: `missing_at` on the row, a `file_missing` entry in the
//! timeline of each unfinished job that uses it (such a job's worker will fail with
//! `input_unavailable`), a warning and a metric.

use std::io;

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step, objects::BlobIndex};
use crate::{
    db::{self, blobs::BlobKey},
    domain::{Owner, Sha256Hex},
    storage::{Backend, StoreName, Volume},
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
    /// Checks the rows whose bytes are in `backend`'s store, against `listed` (the store's
    /// listing of this pass) when given, else one lookup per row.
    pub(super) async fn find_missing_in(
        &self,
        backend: &Backend,
        listed: Option<&BlobIndex>,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let store = backend.name();
        let mut after = (String::new(), String::new());
        loop {
            self.checkpoint.check()?;
            let page = db::blobs::page_in_store(&self.db, &store, (&after.0, &after.1), PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.owner.clone(), last.sha256.clone());
            let full = page.len() as i64 == PAGE;
            for checked in check_files(backend, listed, page).await? {
                match (checked.intact, checked.row.missing) {
                    (true, false) => {}
                    (true, true) => {
                        if mode == Mode::Apply {
                            db::blobs::clear_missing(&self.db, &checked.owner, &checked.sha256).await?;
                            tracing::info!(owner = %checked.owner.as_str(), sha256 = %checked.sha256, %store,
                                "a blob reported missing is back");
                        }
                    }
                    (false, _) if mode == Mode::DryRun => report.missing += 1,
                    (false, _) => self.mark_missing(backend, &checked, report).await?,
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Checks again under the row's lock, since an upload may have restored the bytes meanwhile
    /// (an upload holding the row is skipped: it is placing them right now), and the listing
    /// may predate the row.
    async fn mark_missing(
        &self,
        backend: &Backend,
        checked: &Checked,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let (owner, sha256) = (&checked.owner, &checked.sha256);
        let mut tx = self.db.begin().await?;
        let Some(row) = db::blobs::lock(&mut tx, owner, sha256).await? else {
            return Ok(());
        };
        if row.store != backend.name().as_str() {
            // Moved by a migration since the page was read.
            return Ok(());
        }
        let size = checked.row.size;
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

    /// An empty `blobs/` while rows name the volume means the volume is not mounted (or is the
    /// wrong one), not that every file vanished: marking them all would bury real damage in
    /// noise.
    pub(super) async fn volume_looks_unmounted(&self, volume: &Volume) -> Result<bool, CleanupError> {
        let root = volume.root().to_owned();
        let scanner = volume.clone();
        let empty = tokio::task::spawn_blocking(move || scanner.blobs_dir_is_empty())
            .await
            .map_err(io::Error::other)??;
        if !empty || !self.store_has_rows(&StoreName::volume()).await? {
            return Ok(false);
        }
        tracing::error!(
            root = %root.display(),
            "the volume has no blob files while blob rows name it: is BATON_STORAGE_DIR the right, \
             mounted volume? Not checking for missing files",
        );
        Ok(true)
    }

    pub(super) async fn store_has_rows(&self, store: &StoreName) -> Result<bool, CleanupError> {
        Ok(!db::blobs::page_in_store(&self.db, store, ("", ""), 1).await?.is_empty())
    }
}

/// Whether each row's bytes are in its store at the recorded size.
async fn check_files(backend: &Backend, listed: Option<&BlobIndex>, page: Vec<BlobKey>) -> io::Result<Vec<Checked>> {
    let mut checked = Vec::with_capacity(page.len());
    for row in page {
        let Some((owner, sha256)) = row.parsed() else {
            continue;
        };
        let size = match listed {
            Some(index) => index.size_of(&owner, &sha256),
            None => backend.blob_size(&owner, &sha256).await?,
        };
        let intact = size == u64::try_from(row.size).ok();
        checked.push(Checked {
            row,
            owner,
            sha256,
            intact,
        });
    }
    Ok(checked)
}
