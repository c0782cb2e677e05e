//! Streaming an upload to a staging object while hashing it.
//!
//! Bytes go out as a multipart upload of [`PART_BYTES`] parts, at most [`PARTS_IN_FLIGHT`] at
//! once, so an upload holds a bounded amount of memory whatever its size; an upload smaller than
//! one part is sent in one request instead. The digests are computed on a blocking thread, one
//! batch at a time, beside the network. Dropping the upload unfinished aborts the multipart upload
//! (or deletes the object, if it completed meanwhile): nothing is left under `staging/` but what
//! a crash leaves, which cleanup sweeps.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use md5::Md5;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart, path::Path};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::ObjectBackend;
use crate::domain::Sha256Hex;

/// Size of each part of a multipart upload (stores require at least 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload being sent at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes hashed per blocking task.
const HASH_BATCH_BYTES: usize = 1024 * 1024;

pub struct ObjectUpload {
    backend: ObjectBackend,
    key: Path,
    size: u64,
    /// The bytes so far, until they fill a part: an upload that ends first is one plain put.
    head: Vec<Bytes>,
    head_bytes: usize,
    multipart: Option<WriteMultipart>,
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
            head: Vec::new(),
            head_bytes: 0,
            multipart: None,
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
        self.size += chunk.len() as u64;
        self.hashing.push(chunk.clone()).await?;
        if let Some(multipart) = &mut self.multipart {
            multipart
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| self.backend.error(e))?;
            multipart.put(chunk);
            return Ok(());
        }
        self.head_bytes += chunk.len();
        self.head.push(chunk);
        if self.head_bytes >= PART_BYTES {
            let upload = self
                .backend
                .store
                .put_multipart(&self.key)
                .await
                .map_err(|e| self.backend.error(e))?;
            let mut multipart = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            for chunk in self.head.drain(..) {
                multipart.put(chunk);
            }
            self.head_bytes = 0;
            self.multipart = Some(multipart);
        }
        Ok(())
    }

    /// Sends what is left, completes the upload and returns the digests.
    pub async fn finish(mut self) -> io::Result<Uploaded> {
        let (sha256, md5) = std::mem::take(&mut self.hashing).finish().await?;
        let (backend, key, abandoned) = (self.backend.clone(), self.key.clone(), Arc::clone(&self.abandoned));
        let multipart = self.multipart.take();
        let head = PutPayload::from_iter(std::mem::take(&mut self.head));
        // Completed on a task of its own: if the request is dropped meanwhile, the task still
        // ends, and removes the object it made.
        let completion: JoinHandle<io::Result<()>> = tokio::spawn(async move {
            let result = match multipart {
                Some(multipart) => multipart.finish().await.map(drop),
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
        if let Some(multipart) = self.multipart.take()
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
