//! One fetch into the cache: the bytes streamed to a temporary file, counted and hashed on the
//! way, then renamed to the file's SHA-256, or removed on any failure.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{
    CacheError,
    source::{ByteStream, Failure},
};

/// Names of files being written start with this; they are removed when the cache opens.
pub(super) const PARTIAL_PREFIX: &str = ".partial-";

/// Writes `stream` to `dir/{sha256}` if it holds exactly `size` bytes hashing to `sha256`.
pub(super) async fn store(dir: &Path, sha256: &str, size: u64, mut stream: ByteStream) -> Result<(), Failure> {
    let local = |e: std::io::Error| Failure::Final(CacheError::Io(format!("writing to the cache failed: {e}")));
    let temp = PartialFile::new(dir, sha256);
    let mut file = tokio::fs::File::create(&temp.path).await.map_err(local)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        if received > size {
            return Err(Failure::Final(CacheError::Corrupt(format!(
                "the object has more than the {size} bytes recorded"
            ))));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(local)?;
    }
    if received != size {
        return Err(Failure::Final(CacheError::Corrupt(format!(
            "the object has {received} bytes, {size} recorded"
        ))));
    }
    if hex::encode(hasher.finalize()) != sha256 {
        return Err(Failure::Final(CacheError::Corrupt(
            "the object's bytes do not match its recorded SHA-256".to_owned(),
        )));
    }
    file.flush().await.map_err(local)?;
    // Durable before it gets its final name: the name alone vouches for the content later.
    file.sync_all().await.map_err(local)?;
    drop(file);
    temp.persist(&dir.join(sha256)).await.map_err(local)
}

/// A file being written, removed when dropped unless it was renamed into place.
struct PartialFile {
    path: PathBuf,
    kept: bool,
}

impl PartialFile {
    fn new(dir: &Path, sha256: &str) -> Self {
        let name = format!("{PARTIAL_PREFIX}{sha256}-{:016x}", fastrand::u64(..));
        Self {
            path: dir.join(name),
            kept: false,
        }
    }

    async fn persist(mut self, to: &Path) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, to).await?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.kept
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a partial cache file");
        }
    }
}
