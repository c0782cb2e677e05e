//! Streaming an upload to a temp file while hashing it, without holding a thread per upload.
//!
//! Chunks are handed in batches (by reference count, not copied) to two short blocking tasks:
//! one writes the batch and feeds SHA-256, the other feeds MD5, so the digests run in parallel.
//! While a batch is in flight the next one gathers, up to [`BATCH_BYTES`]. An upload therefore
//! holds at most two batches of memory, and a slow client holds no thread at all: a thread is
//! borrowed only while a batch is written.
//! At most [`UploadIo`] permits of such tasks run at once across all uploads, so downloads and
//! file placement always find a free blocking thread.

use std::{
    fs::File,
    io::{self, Write},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

use super::TempPath;
use crate::domain::Sha256Hex;

/// Most bytes gathered while a batch is in flight.
const BATCH_BYTES: usize = 256 * 1024;

/// Bytes gathered before a batch goes while none is in flight.
const EAGER_BATCH_BYTES: usize = 32 * 1024;

/// Blocking tasks of all uploads together, at once. Two per batch in flight.
const UPLOAD_IO_TASKS: usize = 32;

/// Bounds the blocking work of all uploads together (cloned handles share one bound).
#[derive(Debug, Clone)]
pub struct UploadIo(Arc<Semaphore>);

impl Default for UploadIo {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(UPLOAD_IO_TASKS)))
    }
}

/// A file being written. Dropping it removes the temp file, also when a batch is still in flight.
pub struct BlobWriter {
    temp: Option<TempPath>,
    io: UploadIo,
    /// Set when the upload is dropped unfinished: a batch task that created the file after the
    /// temp guard already ran removes it itself.
    abandoned: Arc<AtomicBool>,
    size: u64,
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// `None` while a batch is in flight (the tasks own them).
    sink: Option<Box<FileSink>>,
    md5: Option<Box<Md5>>,
    in_flight: Option<InFlight>,
}

struct InFlight {
    sink: JoinHandle<(Box<FileSink>, io::Result<()>)>,
    md5: JoinHandle<Box<Md5>>,
}

/// The file and its SHA-256, moved into each batch's blocking task and back.
struct FileSink {
    path: PathBuf,
    file: Option<File>,
    sha: Sha256,
    abandoned: Arc<AtomicBool>,
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
    pub fn create(temp: TempPath, io: UploadIo) -> Self {
        let abandoned = Arc::new(AtomicBool::new(false));
        let sink = FileSink {
            path: temp.to_path_buf(),
            file: None,
            sha: Sha256::new(),
            abandoned: Arc::clone(&abandoned),
        };
        Self {
            temp: Some(temp),
            io,
            abandoned,
            size: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            sink: Some(Box::new(sink)),
            md5: Some(Box::new(Md5::new())),
            in_flight: None,
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
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
        // Gather a batch before handing it over: a hand-off per network read would cost more
        // than the hashing. A smaller batch goes at once when nothing is in flight, so a slowly
        // sent file reaches the disk as it comes and holds at most that much memory.
        let idle = self
            .in_flight
            .as_ref()
            .is_none_or(|f| f.sink.is_finished() && f.md5.is_finished());
        let ready = if idle { EAGER_BATCH_BYTES } else { BATCH_BYTES };
        if self.pending_bytes < ready {
            return Ok(());
        }
        self.flush().await
    }

    /// Writes what is pending, syncs the file and returns the digests.
    pub async fn finish(mut self) -> io::Result<Written> {
        self.flush().await?;
        self.settle().await?;
        let sink = self.sink.take().ok_or_else(finished)?;
        let md5 = self.md5.take().ok_or_else(finished)?;
        let permit = self.permits(1).await?;
        let sha256 = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            (*sink).sync_and_digest()
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Written {
            temp: self.temp.take().ok_or_else(finished)?,
            size: self.size,
            sha256: Sha256Hex::from_digest(&sha256),
            md5: hex::encode(md5.finalize()),
        })
    }

    /// Starts writing the pending batch, after the one in flight (if any) is done.
    async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.settle().await?;
        let batch: Arc<[Bytes]> = std::mem::take(&mut self.pending).into();
        self.pending_bytes = 0;
        let mut sink = self.sink.take().ok_or_else(finished)?;
        let mut md5 = self.md5.take().ok_or_else(finished)?;
        // Both permits at once: taking them one by one, uploads holding one each could wait on
        // each other for ever.
        let mut sink_permit = self.permits(2).await?;
        let md5_permit = sink_permit.split(1).ok_or_else(|| io::Error::other("permit split"))?;
        let sink_batch = Arc::clone(&batch);
        let sink = tokio::task::spawn_blocking(move || {
            let _permit = sink_permit;
            let result = sink.write_batch(&sink_batch);
            (sink, result)
        });
        let md5 = tokio::task::spawn_blocking(move || {
            let _permit = md5_permit;
            for chunk in batch.iter() {
                md5.update(chunk);
            }
            md5
        });
        self.in_flight = Some(InFlight { sink, md5 });
        Ok(())
    }

    /// Waits for the batch in flight and takes its state back.
    async fn settle(&mut self) -> io::Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let (sink, written) = in_flight.sink.await.map_err(io::Error::other)?;
        let md5 = in_flight.md5.await.map_err(io::Error::other)?;
        self.sink = Some(sink);
        self.md5 = Some(md5);
        written
    }

    async fn permits(&self, n: u32) -> io::Result<OwnedSemaphorePermit> {
        Arc::clone(&self.io.0)
            .acquire_many_owned(n)
            .await
            .map_err(io::Error::other)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Before the temp guard drops (fields drop after this): a batch task that creates the
        // file later sees the flag and removes the file itself.
        self.abandoned.store(true, Ordering::Release);
    }
}

impl FileSink {
    fn write_batch(&mut self, batch: &[Bytes]) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::create_new(&self.path)?),
        };
        for chunk in batch {
            self.sha.update(chunk);
            file.write_all(chunk)?;
        }
        self.remove_if_abandoned()
    }

    fn sync_and_digest(mut self) -> io::Result<[u8; 32]> {
        let file = match self.file.take() {
            Some(file) => file,
            None => File::create_new(&self.path)?,
        };
        file.sync_all()?;
        drop(file);
        self.remove_if_abandoned()?;
        Ok(self.sha.finalize().into())
    }

    fn remove_if_abandoned(&self) -> io::Result<()> {
        if !self.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "could not remove an abandoned upload"),
        }
        Err(io::Error::other("upload abandoned"))
    }
}

fn finished() -> io::Error {
    io::Error::other("upload writer already finished")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Many uploads, few permits: every upload still finishes (no hold-and-wait on permits).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_uploads_share_few_io_permits_without_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let io = UploadIo(Arc::new(Semaphore::new(3)));
        let mut uploads = tokio::task::JoinSet::new();
        for n in 0..64 {
            let path = dir.path().join(format!("{n}.part"));
            let io = io.clone();
            uploads.spawn(async move {
                let mut writer = BlobWriter::create(TempPath::try_from_path(path).unwrap(), io);
                for _ in 0..20 {
                    writer.write(Bytes::from_static(b"x")).await?;
                    tokio::task::yield_now().await;
                }
                writer.finish().await
            });
        }
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            let mut sizes = Vec::new();
            while let Some(done) = uploads.join_next().await {
                sizes.push(done.unwrap().unwrap().size);
            }
            sizes
        })
        .await
        .expect("uploads deadlocked on their I/O permits");
        assert_eq!(all, vec![20; 64]);
    }
}
