//! Streaming an upload to a staging object while hashing it.
//!
//! Bytes go out as a multipart upload of [`PART_BYTES`] parts, at most [`PARTS_IN_FLIGHT`] at
//! once, so an upload holds a bounded amount of memory whatever its size; an upload smaller than
//! one part is sent in one request instead. Every buffered byte also holds a share of the
//! store's [`UploadMemory`] until its part is sent, which bounds all uploads together: when it
//! is spent, uploads wait (their clients feel it as TCP back-pressure) instead of growing.
//! The digests are computed on a blocking thread, one batch at a time, beside the network.
//! Dropping the upload unfinished aborts the multipart upload (or deletes the object, if it
//! completed meanwhile): nothing is left under `staging/` but what a crash leaves, which cleanup
//! sweeps.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use md5::Md5;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload, path::Path};
use sha2::{Digest, Sha256};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::{JoinHandle, JoinSet},
};

use super::ObjectBackend;
use crate::domain::Sha256Hex;

/// Size of each part of a multipart upload (stores require at least 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload being sent at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes hashed per blocking task.
const HASH_BATCH_BYTES: usize = 1024 * 1024;

/// Bytes an upload may buffer from a small-upload slab before it needs a whole part.
const SLAB_BYTES: usize = 1024 * 1024;

/// The memory all uploads to object stores may hold in buffered parts, in two pools, so that no
/// upload ever waits while holding what another is waiting for:
/// - a part being filled or sent holds one whole part's reservation, taken before its first
///   byte beyond a slab, released when the part is sent;
/// - the first bytes of an upload (most uploads are small) hold a 1 MiB slab instead, given back
///   once the upload holds a part or ends.
///
/// An upload holding a slab may wait for a part; a part holder waits only for its own parts in
/// flight, which finish on their own. Nobody waits for a slab while holding anything.
#[derive(Debug, Clone)]
pub struct UploadMemory {
    slabs: Arc<Semaphore>,
    parts: Arc<Semaphore>,
}

impl UploadMemory {
    /// About `bytes` in all: three quarters in parts (at least three, one upload's worth), the
    /// rest in slabs (at least eight).
    pub fn new(bytes: u64) -> Self {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        let parts = (bytes / 4 * 3 / PART_BYTES).clamp(PARTS_IN_FLIGHT + 1, Semaphore::MAX_PERMITS);
        let slabs = (bytes / 4 / SLAB_BYTES).clamp(8, Semaphore::MAX_PERMITS);
        Self {
            slabs: Arc::new(Semaphore::new(slabs)),
            parts: Arc::new(Semaphore::new(parts)),
        }
    }

    async fn slab(&self) -> io::Result<OwnedSemaphorePermit> {
        Arc::clone(&self.slabs).acquire_owned().await.map_err(io::Error::other)
    }

    async fn part(&self) -> io::Result<OwnedSemaphorePermit> {
        Arc::clone(&self.parts).acquire_owned().await.map_err(io::Error::other)
    }
}

pub struct ObjectUpload {
    backend: ObjectBackend,
    key: Path,
    size: u64,
    /// Bytes not yet sent, and the memory they hold: a slab, then a part.
    buffer: Vec<Bytes>,
    buffer_bytes: usize,
    slab: Option<OwnedSemaphorePermit>,
    part: Option<OwnedSemaphorePermit>,
    /// Started once the first part is full: an upload that ends first is one plain put.
    multipart: Option<Box<dyn MultipartUpload>>,
    /// Parts being sent, each holding its memory until done.
    parts: JoinSet<object_store::Result<()>>,
    hashing: Hashing,
    /// Set when dropped unfinished: a completion still running removes what it made.
    abandoned: Arc<AtomicBool>,
}

/// A completed upload under `staging/`, deleted when dropped unless placed.
pub struct Staged {
    backend: ObjectBackend,
    key: Path,
    armed: bool,
}

/// A fully stored upload and its digests.
pub struct Uploaded {
    pub staged: Staged,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub md5: String,
}

impl ObjectUpload {
    pub(super) fn new(backend: ObjectBackend, key: Path) -> Self {
        Self {
            backend,
            key,
            size: 0,
            buffer: Vec::new(),
            buffer_bytes: 0,
            slab: None,
            part: None,
            multipart: None,
            parts: JoinSet::new(),
            hashing: Hashing::default(),
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.part.is_none() {
            if self.buffer_bytes + chunk.len() <= SLAB_BYTES {
                if self.slab.is_none() {
                    self.slab = Some(self.backend.memory.slab().await?);
                }
            } else {
                self.part = Some(self.backend.memory.part().await?);
                self.slab = None;
            }
        }
        self.size += chunk.len() as u64;
        self.hashing.push(chunk.clone()).await?;
        self.buffer_bytes += chunk.len();
        self.buffer.push(chunk);
        if self.buffer_bytes >= PART_BYTES {
            self.send_part().await?;
        }
        Ok(())
    }

    /// Sends the buffer as the next part, once fewer than [`PARTS_IN_FLIGHT`] are in flight.
    async fn send_part(&mut self) -> io::Result<()> {
        if self.multipart.is_none() {
            let upload = self
                .backend
                .store
                .put_multipart(&self.key)
                .await
                .map_err(|e| self.backend.error(e))?;
            self.multipart = Some(upload);
        }
        while self.parts.len() >= PARTS_IN_FLIGHT {
            self.join_part().await?;
        }
        let payload = PutPayload::from_iter(std::mem::take(&mut self.buffer));
        self.buffer_bytes = 0;
        let memory = self.part.take();
        let sending = self.multipart.as_mut().expect("started above").put_part(payload);
        self.parts.spawn(async move {
            let _memory = memory;
            sending.await
        });
        Ok(())
    }

    async fn join_part(&mut self) -> io::Result<()> {
        match self.parts.join_next().await {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(self.backend.error(e)),
            Some(Err(e)) => Err(io::Error::other(e)),
        }
    }

    /// Sends what is left, completes the upload and returns the digests.
    pub async fn finish(mut self) -> io::Result<Uploaded> {
        let (sha256, md5) = std::mem::take(&mut self.hashing).finish().await?;
        if self.multipart.is_some() && !self.buffer.is_empty() {
            self.send_part().await?;
        }
        while !self.parts.is_empty() {
            self.join_part().await?;
        }
        let (backend, key, abandoned) = (self.backend.clone(), self.key.clone(), Arc::clone(&self.abandoned));
        let multipart = self.multipart.take();
        let head = PutPayload::from_iter(std::mem::take(&mut self.buffer));
        let memory = (self.part.take(), self.slab.take());
        // Completed on a task of its own: if the request is dropped meanwhile, the task still
        // ends, and removes the object it made.
        let completion: JoinHandle<io::Result<()>> = tokio::spawn(async move {
            let _memory = memory;
            let result = match multipart {
                Some(mut multipart) => match multipart.complete().await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        if let Err(abort) = multipart.abort().await {
                            tracing::debug!(error = %abort, "aborting a failed multipart upload failed");
                        }
                        Err(e)
                    }
                },
                None => backend.store.put(&key, head).await.map(drop),
            };
            result.map_err(|e| backend.error(e))?;
            if abandoned.load(Ordering::Acquire) {
                backend.delete(&key).await?;
                return Err(io::Error::other("upload abandoned"));
            }
            Ok(())
        });
        completion.await.map_err(io::Error::other)??;
        Ok(Uploaded {
            staged: Staged {
                backend: self.backend.clone(),
                key: self.key.clone(),
                armed: true,
            },
            size: self.size,
            sha256,
            md5,
        })
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Release);
        self.parts.abort_all();
        if let Some(mut multipart) = self.multipart.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let key = self.key.clone();
            runtime.spawn(async move {
                if let Err(e) = multipart.abort().await {
                    tracing::warn!(%key, error = %e, "could not abort an unfinished multipart upload");
                }
            });
        }
    }
}

impl Staged {
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// Deletes the staging object now; a failure leaves it to cleanup's sweep.
    pub async fn delete(mut self) {
        self.armed = false;
        if let Err(e) = self.backend.delete(&self.key).await {
            tracing::warn!(key = %self.key, error = %e, "could not delete a staging object; cleanup sweeps it");
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (backend, key) = (self.backend.clone(), self.key.clone());
            runtime.spawn(async move {
                if let Err(e) = backend.delete(&key).await {
                    tracing::warn!(%key, error = %e, "could not delete a staging object; cleanup sweeps it");
                }
            });
        }
    }
}

/// SHA-256 and MD5 of the bytes so far, fed in batches on a blocking thread.
#[derive(Default)]
struct Hashing {
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// The digests between batches; `None` while a batch is in flight.
    state: Option<Box<(Sha256, Md5)>>,
    in_flight: Option<JoinHandle<Box<(Sha256, Md5)>>>,
}

impl Hashing {
    async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
        if self.pending_bytes >= HASH_BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        let mut state = match self.in_flight.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => self
                .state
                .take()
                .unwrap_or_else(|| Box::new((Sha256::new(), Md5::new()))),
        };
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                state.0.update(chunk);
                state.1.update(chunk);
            }
            state
        }));
        Ok(())
    }

    async fn finish(mut self) -> io::Result<(Sha256Hex, String)> {
        self.flush().await?;
        let state = match self.in_flight.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => self
                .state
                .take()
                .unwrap_or_else(|| Box::new((Sha256::new(), Md5::new()))),
        };
        let (sha, md5) = *state;
        let digest: [u8; 32] = sha.finalize().into();
        Ok((Sha256Hex::from_digest(&digest), hex::encode(md5.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::TryStreamExt;

    use super::*;
    use crate::{domain::Owner, storage::Placement};

    /// Many uploads, memory for a few parts: every upload still finishes (no upload waits while
    /// holding what another waits for), and each is stored whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_large_uploads_share_little_memory_without_deadlock() {
        let backend = ObjectBackend::in_memory(UploadMemory::new(0));
        let owner = Owner::parse("team-a").unwrap();
        let mut uploads = tokio::task::JoinSet::new();
        for n in 0..12u8 {
            let (backend, owner) = (backend.clone(), owner.clone());
            uploads.spawn(async move {
                let mut upload = backend.upload();
                // 17 MiB in 64 KiB chunks: three parts, the last short.
                for _ in 0..272 {
                    upload.write(Bytes::from(vec![n; 64 * 1024])).await?;
                    tokio::task::yield_now().await;
                }
                let uploaded = upload.finish().await?;
                let placed = backend
                    .place(uploaded.staged, &owner, &uploaded.sha256, uploaded.size)
                    .await?;
                assert_eq!(placed, Placement::Placed);
                backend.blob_size(&owner, &uploaded.sha256).await
            });
        }
        let sizes = tokio::time::timeout(Duration::from_secs(60), async {
            let mut sizes = Vec::new();
            while let Some(done) = uploads.join_next().await {
                sizes.push(done.unwrap().unwrap());
            }
            sizes
        })
        .await
        .expect("uploads deadlocked on their memory");
        assert_eq!(sizes, vec![Some(17 * 1024 * 1024); 12]);
        let staging: Vec<_> = backend.list_staging().try_collect().await.unwrap();
        assert!(staging.is_empty(), "staging objects left: {staging:?}");
    }
}
