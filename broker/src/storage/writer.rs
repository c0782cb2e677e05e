//! Streaming an upload to a temp file while hashing it, off the async runtime.
//!
//! Each chunk is handed (by reference count, not copied) to two blocking threads: one writes it
//! straight to the file and computes SHA-256, the other computes MD5. The two digests run in
//! parallel and the async task only moves pointers. Channels are short and bounded, so a slow
//! disk slows the client instead of growing memory: an upload holds at most a few chunks.

use std::{
    fs::File,
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::JoinHandle};

use super::TempPath;
use crate::domain::Sha256Hex;

/// Chunks queued per thread. Body chunks are tens of KiB, so an upload holds well under 1 MiB.
const CHANNEL_CHUNKS: usize = 8;

/// A file being written. Dropping it stops the threads and removes the temp file.
pub struct BlobWriter {
    temp: Option<TempPath>,
    /// Set when the upload is dropped unfinished: the writer thread then removes the file it
    /// may have created after the temp guard already ran.
    abandoned: Arc<AtomicBool>,
    size: u64,
    to_writer: Option<mpsc::Sender<Bytes>>,
    to_md5: Option<mpsc::Sender<Bytes>>,
    writer: Option<JoinHandle<io::Result<[u8; 32]>>>,
    md5: Option<JoinHandle<[u8; 16]>>,
}

/// A fully written, synced upload, still in `tmp/`.
#[derive(Debug)]
pub struct Written {
    pub temp: TempPath,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub md5: String,
}

impl BlobWriter {
    pub fn create(temp: TempPath) -> Self {
        let path = temp.path().to_owned();
        let abandoned = Arc::new(AtomicBool::new(false));
        let (to_writer, mut writer_rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let writer_abandoned = Arc::clone(&abandoned);
        let writer = tokio::task::spawn_blocking(move || {
            // Created here rather than on the runtime: one thread hand-off fewer per upload. A
            // failure closes the channel, and `write` then reports this error.
            let mut file = File::create_new(&path)?;
            let mut sha = Sha256::new();
            while let Some(chunk) = writer_rx.blocking_recv() {
                sha.update(&chunk);
                file.write_all(&chunk)?;
            }
            if writer_abandoned.load(Ordering::Acquire) {
                drop(file);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "could not remove an abandoned upload")
                    }
                }
                return Err(io::Error::other("upload abandoned"));
            }
            file.sync_all()?;
            Ok(sha.finalize().into())
        });

        let (to_md5, mut md5_rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let md5 = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            while let Some(chunk) = md5_rx.blocking_recv() {
                md5.update(&chunk);
            }
            md5.finalize().into()
        });

        Self {
            temp: Some(temp),
            abandoned,
            size: 0,
            to_writer: Some(to_writer),
            to_md5: Some(to_md5),
            writer: Some(writer),
            md5: Some(md5),
        }
    }

    /// Bytes accepted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        let (Some(to_writer), Some(to_md5)) = (&self.to_writer, &self.to_md5) else {
            return Err(io::Error::other("upload writer already finished"));
        };
        if to_writer.send(chunk.clone()).await.is_err() {
            // The writer thread stopped early: it failed, and its error says why.
            return Err(self.writer_error().await);
        }
        if to_md5.send(chunk).await.is_err() {
            return Err(io::Error::other("hashing thread stopped"));
        }
        Ok(())
    }

    /// Flushes, syncs and returns the digests.
    pub async fn finish(mut self) -> io::Result<Written> {
        self.to_writer.take();
        self.to_md5.take();
        let sha256 = join(self.writer.take()).await.and_then(|r| r)?;
        let md5 = join(self.md5.take()).await?;
        Ok(Written {
            temp: self.temp.take().expect("finish runs once"),
            size: self.size,
            sha256: Sha256Hex::from_digest(&sha256),
            md5: hex::encode(md5),
        })
    }

    async fn writer_error(&mut self) -> io::Error {
        self.to_writer.take();
        match join(self.writer.take()).await {
            Ok(Err(e)) | Err(e) => e,
            Ok(Ok(_)) => io::Error::other("writer finished early"),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Before the senders drop: the writer thread sees the flag once its channel closes.
        self.abandoned.store(true, Ordering::Release);
    }
}

async fn join<T>(handle: Option<JoinHandle<T>>) -> io::Result<T> {
    match handle {
        Some(handle) => handle.await.map_err(io::Error::other),
        None => Err(io::Error::other("upload writer already finished")),
    }
}
