//! Steps 3 and 4 on an object store, from one listing of its `blobs/` per pass: rows whose
//! objects are gone (`missing`, looked up in the listing instead of one request per row),
//! objects that no row names for this store (`orphans`), and staging objects of uploads a crash
//! left behind, the last two once older than the grace period (by the object's last-modified
//! time, which a create-if-absent copy sets to the moment of the copy).

use std::{collections::HashMap, mem};

use futures::TryStreamExt;

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step, orphans::Candidate, volume::BATCH};
use crate::{
    domain::{Owner, Sha256Hex},
    storage::{Backend, ObjectBackend},
};

/// Most objects whose sizes a pass keeps in memory (about 50 bytes each); past it, rows are
/// checked with one request each instead.
const MAX_INDEXED: usize = 2_000_000;

/// The sizes of a store's blob objects, as listed.
#[derive(Debug, Default)]
pub(super) struct BlobIndex {
    by_owner: HashMap<String, HashMap<[u8; 32], u64>>,
    len: usize,
}

impl BlobIndex {
    fn insert(&mut self, owner: &Owner, sha256: &Sha256Hex, size: u64) {
        let Some(digest) = digest(sha256) else {
            return;
        };
        let sizes = self.by_owner.entry(owner.as_str().to_owned()).or_default();
        if sizes.insert(digest, size).is_none() {
            self.len += 1;
        }
    }

    pub(super) fn size_of(&self, owner: &Owner, sha256: &Sha256Hex) -> Option<u64> {
        self.by_owner.get(owner.as_str())?.get(&digest(sha256)?).copied()
    }
}

fn digest(sha256: &Sha256Hex) -> Option<[u8; 32]> {
    let mut digest = [0; 32];
    hex::decode_to_slice(sha256.as_str(), &mut digest).ok()?;
    Some(digest)
}

impl Cleaner {
    pub(super) async fn reconcile_object_store(
        &self,
        object: &ObjectBackend,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let store = object.name().clone();
        let cutoff = self.grace_cutoff();
        let sweep_orphans = self.may_sweep_orphans(&store).await?;

        let mut index = Some(BlobIndex::default());
        let mut listed = 0_u64;
        let mut candidates = Vec::new();
        let mut blobs = object.list_blobs();
        while let Some((owner, sha256, found)) = blobs.try_next().await? {
            self.checkpoint.check()?;
            listed += 1;
            if let Some(sizes) = &mut index {
                if sizes.len < MAX_INDEXED {
                    sizes.insert(&owner, &sha256, found.size);
                } else {
                    index = None;
                }
            }
            if sweep_orphans && found.modified < cutoff {
                candidates.push(Candidate {
                    owner,
                    sha256,
                    size: found.size,
                    location: found.key.to_string(),
                });
                if candidates.len() >= BATCH {
                    self.remove_orphans(mode, &store, mem::take(&mut candidates), report)
                        .await?;
                }
            }
        }
        self.remove_orphans(mode, &store, candidates, report).await?;

        if listed == 0 && self.store_has_rows(&store).await? {
            tracing::error!(
                %store,
                "the object store lists no blobs while blob rows name it: is it the right bucket or \
                 container, and prefix? Not checking for missing objects",
            );
        } else {
            let backend = Backend::Object(object.clone());
            self.find_missing_in(&backend, index.as_ref(), mode, report).await?;
        }
        self.sweep_staging(object, mode, report).await
    }

    /// Staging objects older than the grace period: uploads a crash cut off between their last
    /// part and their placement (an upload that fails otherwise deletes its own).
    async fn sweep_staging(
        &self,
        object: &ObjectBackend,
        mode: Mode,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let cutoff = self.grace_cutoff();
        let abandoned: Vec<_> = object
            .list_staging()
            .try_filter(|found| std::future::ready(found.modified < cutoff))
            .try_collect()
            .await?;
        for found in abandoned {
            if mode == Mode::Apply {
                self.checkpoint.check()?;
                object.delete(&found.key).await?;
                tracing::info!(store = %object.name(), key = %found.key, size = found.size,
                    "removed an abandoned upload's staging object");
            }
            report.temp_files += 1;
            report.temp_bytes += found.size;
            if mode == Mode::Apply {
                self.checkpoint.reached(Step::TempFileRemoved).await?;
            }
        }
        Ok(())
    }
}
