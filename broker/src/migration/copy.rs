//! Moving one blob: stream it from its store into the target, read the target copy back and
//! verify its size and SHA-256, then switch the row in one update under the row's lock.

use std::io;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{MigrationError, MoveHook, MoveStep, throttle::Throttle};
use crate::{
    db,
    domain::{Owner, Sha256Hex},
    storage::{Backend, Storage, StoreName},
};

/// What became of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Copied (or an existing copy reused), verified, and its row switched.
    Switched { copied: bool },
    /// Its row changed meanwhile (moved by someone else, deleted by cleanup): nothing to do.
    Changed,
    /// Its row still names a copy in a third store, not removed yet: moved by a later pass.
    Waiting,
}

pub(super) struct Mover<'a> {
    pub db: &'a sqlx::PgPool,
    pub storage: &'a Storage,
    pub target: &'a Backend,
    pub throttle: &'a mut Throttle,
    pub hook: Option<&'a MoveHook>,
}

impl Mover<'_> {
    pub async fn move_blob(
        &mut self,
        owner: &Owner,
        sha256: &Sha256Hex,
        size: u64,
        from: &StoreName,
    ) -> Result<Moved, MigrationError> {
        let source = self.storage.backend(from)?;
        let target_name = self.target.name();
        // An intact copy a killed run (or an earlier migration) left in the target is reused.
        let mut copied = false;
        if self.target.blob_size(owner, sha256).await? != Some(size) {
            self.copy(&source, owner, sha256, size).await?;
            copied = true;
        }
        if let Err(error) = self.verify(owner, sha256, size).await {
            if copied {
                return Err(error);
            }
            tracing::warn!(owner = owner.as_str(), %sha256, error = %error,
                "an existing copy in the target did not verify; copying again");
            self.copy(&source, owner, sha256, size).await?;
            copied = true;
            self.verify(owner, sha256, size).await?;
        }
        if let Some(hook) = self.hook
            && hook(MoveStep::Verified).await.is_break()
        {
            return Err(MigrationError::Interrupted);
        }

        let mut tx = self.db.begin().await?;
        let Some(row) = db::blobs::moves::lock(&mut tx, owner, sha256, false).await? else {
            return Ok(Moved::Changed);
        };
        if row.store != from.as_str() {
            return Ok(Moved::Changed);
        }
        if row
            .previous_store
            .as_deref()
            .is_some_and(|previous| previous != target_name.as_str())
        {
            return Ok(Moved::Waiting);
        }
        // Under the lock no remover can take the target copy away any more; make sure none
        // did since it was verified (a copy left from an earlier move out of the target).
        if self.target.blob_size(owner, sha256).await? != Some(size) {
            return Err(MigrationError::Verification(format!(
                "the copy of {}/{sha256} in {target_name} went away before the switch; run again",
                owner.as_str()
            )));
        }
        if !db::blobs::moves::switch(&mut tx, owner, sha256, from.as_str(), target_name.as_str()).await? {
            return Ok(Moved::Changed);
        }
        tx.commit().await?;
        Ok(Moved::Switched { copied })
    }

    /// Streams the blob from `source` into the target and places it at its content address.
    /// The digests computed on the way must be the row's.
    async fn copy(
        &mut self,
        source: &Backend,
        owner: &Owner,
        sha256: &Sha256Hex,
        size: u64,
    ) -> Result<(), MigrationError> {
        let mut upload = self.target.upload();
        let mut stream = source.read(owner, sha256, 0, size).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.throttle.take(chunk.len()).await;
            upload.write(chunk).await?;
        }
        let written = upload.finish(self.target.name()).await?;
        if written.size != size || written.sha256 != *sha256 {
            return Err(MigrationError::Verification(format!(
                "{}/{sha256} in {} reads as {} bytes with SHA-256 {}: the source copy is damaged",
                owner.as_str(),
                source.name(),
                written.size,
                written.sha256
            )));
        }
        self.target.place(written.staged, owner, sha256, size).await?;
        Ok(())
    }

    /// Reads the target copy back: it must have the row's size and SHA-256.
    async fn verify(&mut self, owner: &Owner, sha256: &Sha256Hex, size: u64) -> Result<(), MigrationError> {
        let mut stream = self.target.read(owner, sha256, 0, size).await?;
        let (mut hasher, mut read) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.throttle.take(chunk.len()).await;
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let actual = hex::encode(hasher.finalize());
        let stored = self.target.blob_size(owner, sha256).await?;
        if read != size || stored != Some(size) || actual != sha256.as_str() {
            // A copy that does not verify is never used; the next attempt writes it again.
            if let Err(e) = self.target.remove(owner, sha256).await {
                tracing::warn!(error = %e, "could not remove a copy that did not verify");
            }
            return Err(MigrationError::Verification(format!(
                "the copy of {}/{sha256} in {} read back as {read} bytes with SHA-256 {actual}",
                owner.as_str(),
                self.target.name()
            )));
        }
        Ok(())
    }
}

impl From<io::Error> for MigrationError {
    fn from(error: io::Error) -> Self {
        Self::Storage(error)
    }
}
