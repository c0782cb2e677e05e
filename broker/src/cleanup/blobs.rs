//! Step 2: blob rows that no file refers to are deleted, then their files removed. The order
//! and the locks are explained in the module above.

use std::io;

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step};
use crate::{
    db::{self, blobs::Stored},
    domain::{Owner, Sha256Hex},
    storage::{Backend, StoreName},
};

/// Blob rows read per page.
const PAGE: i64 = 500;
/// How long removing a file waits for an upload that is committing the same content.
const RESERVE_TIMEOUT_MS: i64 = 2_000;

/// What became of a blob file cleanup meant to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileRemoval {
    /// Unlinked, its directory synced.
    Removed,
    /// Already gone.
    Absent,
    /// A row for it was committed meanwhile: an upload adopted the file, which stays.
    Claimed,
    /// An upload of the same content is still committing: left for a later pass.
    Busy,
}

impl Cleaner {
    pub(super) async fn remove_unreferenced_blobs(
        &self,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        if mode == Mode::DryRun {
            let retention = self.config.retention;
            let (blobs, bytes) =
                db::blobs::count_freed(&self.db, retention.succeeded, retention.failed, retention.cancelled).await?;
            report.blobs += u64::try_from(blobs).unwrap_or_default();
            report.blob_bytes += u64::try_from(bytes).unwrap_or_default();
            return Ok(());
        }

        let mut after = (String::new(), String::new());
        loop {
            let page = db::blobs::unreferenced(&self.db, (&after.0, &after.1), PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.owner.clone(), last.sha256.clone());
            for blob in &page {
                let Some((owner, sha256)) = blob.parsed() else {
                    continue;
                };
                self.checkpoint.check()?;
                let Some(stored) = self.delete_blob_row(&owner, &sha256).await? else {
                    continue;
                };
                report.blobs += 1;
                self.checkpoint.reached(Step::BlobRowDeleted).await?;
                // A copy a migration left behind goes too, before the current one.
                let stores = stored.previous_store.iter().chain([&stored.store]);
                for store in stores.map(|s| StoreName::from_stored(s)) {
                    match self.remove_blob_file(&owner, &sha256, &store).await? {
                        FileRemoval::Removed if store.as_str() == stored.store => {
                            report.blob_bytes += u64::try_from(blob.size).unwrap_or_default();
                        }
                        FileRemoval::Removed | FileRemoval::Absent | FileRemoval::Claimed => {}
                        FileRemoval::Busy => report.deferred += 1,
                    }
                }
                self.remove_replica_copy(&owner, &sha256).await?;
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        Ok(())
    }

    /// Deletes the row if no upload holds it and no file refers to it, and says where its
    /// bytes were. `None` when it stays: an upload is deduplicating onto it right now, or one
    /// just did.
    async fn delete_blob_row(&self, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<Option<Stored>> {
        let mut tx = self.db.begin().await?;
        let Some(stored) = db::blobs::lock(&mut tx, owner, sha256).await? else {
            return Ok(None);
        };
        if db::blobs::is_referenced(&mut tx, owner, sha256).await? {
            return Ok(None);
        }
        db::blobs::delete(&mut tx, owner, sha256).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// Removes the replica store's copy of a blob whose row is gone (its `blob_replicas` row went
    /// with it), under the same reserved key as the volume's file. A row committed again
    /// meanwhile (an upload of the same content) owns the copy, which stays for the replicator to
    /// verify. A replica that fails now keeps a copy no row knows: logged, never a reason to stop
    /// the pass.
    async fn remove_replica_copy(&self, owner: &Owner, sha256: &Sha256Hex) -> Result<(), CleanupError> {
        let Some(replica) = self.storage.replica() else {
            return Ok(());
        };
        match self
            .remove_bytes(owner, sha256, &replica.name(), replica.clone(), true)
            .await
        {
            Ok(_) => Ok(()),
            Err(CleanupError::Storage(error)) => {
                tracing::warn!(owner = owner.as_str(), sha256 = %sha256, error = %error,
                    "removing a deleted blob's replica copy failed; the copy stays");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Removes a blob's bytes from `store` when no row names that store for them, while holding
    /// the key so that no upload can claim it or place bytes there until the removal is done:
    /// with no row, a reserved (uncommitted) row for the key; with a row naming another store,
    /// that row's lock.
    pub(super) async fn remove_blob_file(
        &self,
        owner: &Owner,
        sha256: &Sha256Hex,
        store: &StoreName,
    ) -> Result<FileRemoval, CleanupError> {
        let backend = self.storage.backend(store)?;
        self.remove_bytes(owner, sha256, store, backend, false).await
    }

    /// [`Cleaner::remove_blob_file`] on `backend`; for the replica's copy (`replica_copy`) any
    /// committed row keeps the bytes.
    async fn remove_bytes(
        &self,
        owner: &Owner,
        sha256: &Sha256Hex,
        store: &StoreName,
        backend: Backend,
        replica_copy: bool,
    ) -> Result<FileRemoval, CleanupError> {
        let (db, checkpoint) = (self.db.clone(), self.checkpoint.clone());
        let (owner, sha256, store) = (owner.clone(), sha256.clone(), store.clone());
        // A task of its own: if the pass is dropped midway, the unlink still finishes before the
        // key is released, never after.
        let removal = tokio::spawn(async move {
            let mut tx = db.begin().await?;
            match db::blobs::reserve_key(&mut tx, &owner, &sha256, RESERVE_TIMEOUT_MS).await {
                Ok(true) => {}
                Ok(false) if replica_copy => return Ok(FileRemoval::Claimed),
                Ok(false) => {
                    // A committed row: held by an upload now, or naming this store (or, being
                    // moved here by a migration, about to), the bytes stay.
                    let Some(row) = db::blobs::lock(&mut tx, &owner, &sha256).await? else {
                        return Ok(FileRemoval::Busy);
                    };
                    if row.store == store.as_str() || row.previous_store.as_deref() == Some(store.as_str()) {
                        return Ok(FileRemoval::Claimed);
                    }
                    if db::blobs::is_migration_target(&mut *tx, &store).await? {
                        return Ok(FileRemoval::Busy);
                    }
                }
                Err(e) if is_lock_timeout(&e) => return Ok(FileRemoval::Busy),
                Err(e) => return Err(e.into()),
            }
            let removed = backend.remove(&owner, &sha256).await?;
            checkpoint.reached(Step::BlobFileRemoved).await?;
            tx.rollback().await?;
            Ok::<_, CleanupError>(if removed {
                FileRemoval::Removed
            } else {
                FileRemoval::Absent
            })
        });
        removal.await.map_err(io::Error::other)?
    }
}

/// `lock_not_available`: the lock timeout ran out.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}
