//! One blob from the volume to the replica store, and the proof that the copy is whole.

use std::io;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::{
    domain::{Owner, Sha256Hex},
    storage::{Backend, Unavailable},
};

/// Why a copy did not end verified.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The volume's bytes are not the blob's: nothing was placed in the replica.
    #[error("the volume's copy does not match its row: {0}")]
    Source(String),
    /// The replica's object is not the blob's bytes; it was removed, so the next attempt
    /// writes it afresh.
    #[error("the replica's copy does not match: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl CopyError {
    /// The `reason` label of `baton_replication_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Source(_) => "source",
            Self::Mismatch(_) => "mismatch",
            Self::Io(e) if Unavailable::find(e).is_some() => "unavailable",
            Self::Io(_) => "io",
        }
    }
}

/// Streams the blob from `from` to `to` (staged, then placed at its content address), then
/// reads the placed object back and checks its size and SHA-256.
pub async fn copy_verified(
    from: &Backend,
    to: &Backend,
    owner: &Owner,
    sha256: &Sha256Hex,
    size: u64,
) -> Result<(), CopyError> {
    let mut source = from.read(owner, sha256, 0, size).await?;
    let mut upload = to.upload();
    while let Some(chunk) = source.next().await {
        upload.write(chunk?).await?;
    }
    let written = upload.finish(to.name()).await?;
    if written.size != size || written.sha256 != *sha256 {
        return Err(CopyError::Source(format!(
            "read {} bytes with SHA-256 {}",
            written.size, written.sha256
        )));
    }
    to.place(written.staged, owner, sha256, size).await?;
    match verify(to, owner, sha256, size).await {
        Err(CopyError::Mismatch(found)) => {
            // An object of the right size but other bytes stays put through a create-if-absent
            // placement: remove it so the next attempt can place the real ones.
            to.remove(owner, sha256).await?;
            Err(CopyError::Mismatch(found))
        }
        other => other,
    }
}

/// Reads the blob back from `store` and checks it is `size` bytes hashing to `sha256`.
pub async fn verify(store: &Backend, owner: &Owner, sha256: &Sha256Hex, size: u64) -> Result<(), CopyError> {
    match store.blob_size(owner, sha256).await? {
        Some(found) if found == size => {}
        Some(found) => return Err(CopyError::Mismatch(format!("{found} bytes instead of {size}"))),
        None => return Err(CopyError::Mismatch("the object is not there".to_owned())),
    }
    let mut stream = store.read(owner, sha256, 0, size).await?;
    let (mut hasher, mut read) = (Sha256::new(), 0_u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let found = Sha256Hex::from_digest(&hasher.finalize());
    if read != size || found != *sha256 {
        return Err(CopyError::Mismatch(format!("read {read} bytes with SHA-256 {found}")));
    }
    Ok(())
}
