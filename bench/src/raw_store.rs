//! The emulator's own speed, measured with `object_store` directly: the same bytes Baton is sent,
//! put the way Baton puts them (multipart parts of 8 MiB, two in flight; objects under one part
//! in one request), so Baton's rate can be read as a share of what the store takes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};

use crate::load::stamp;

/// Part size and parts in flight of Baton's uploads to object storage
/// (broker/src/storage/object/upload.rs).
pub const PART_BYTES: usize = 8 << 20;
pub const PARTS_IN_FLIGHT: usize = 2;

/// The chunks of a streamed upload of `len` bytes, as `Submitter::submit_streamed` sends them:
/// 256 KiB slices of a 4 MiB random block, the first stamped.
fn chunks(len: u64, tag: u64) -> impl Iterator<Item = Bytes> {
    const CHUNK: usize = 256 << 10;
    let block = Bytes::from(crate::limits::random_bytes(4 << 20, tag));
    let first = Bytes::from(stamp(&block[..CHUNK], tag, u64::MAX - 1));
    let mut sent = 0_u64;
    std::iter::from_fn(move || {
        if sent >= len {
            return None;
        }
        let take = (CHUNK as u64).min(len - sent) as usize;
        let chunk = if sent == 0 {
            first.slice(..take)
        } else {
            let offset = (sent % block.len() as u64) as usize;
            block.slice(offset..offset + take.min(block.len() - offset))
        };
        sent += chunk.len() as u64;
        Some(chunk)
    })
}

/// One multipart put of `len` bytes to `key`; returns how long it took (the object is deleted
/// afterwards, outside the measurement).
pub async fn multipart_put(store: &Arc<dyn ObjectStore>, key: &str, len: u64, tag: u64) -> anyhow::Result<Duration> {
    let path = Path::from(key);
    let started = Instant::now();
    let upload = store
        .put_multipart(&path)
        .await
        .context("starting a multipart upload")?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    for chunk in chunks(len, tag) {
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .context("sending a part")?;
        writer.put(chunk);
    }
    writer.finish().await.context("completing the multipart upload")?;
    let took = started.elapsed();
    store.delete(&path).await.context("deleting the raw object")?;
    Ok(took)
}

/// Objects of `size` bytes put by `concurrency` tasks, each one request, for `duration`.
pub struct Puts {
    pub objects: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

pub async fn concurrent_puts(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    size: usize,
    concurrency: usize,
    duration: Duration,
    tag: u64,
) -> anyhow::Result<Puts> {
    let base = Arc::new(crate::limits::random_bytes(size, tag ^ size as u64));
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, base, counter, prefix) = (
                Arc::clone(store),
                Arc::clone(&base),
                Arc::clone(&counter),
                prefix.to_owned(),
            );
            tokio::spawn(async move {
                let mut done = 0_usize;
                while started.elapsed() < duration {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let body = Bytes::from(stamp(&base, tag, n as u64));
                    store
                        .put(&Path::from(format!("{prefix}/{n}")), body.into())
                        .await
                        .context("a raw put failed")?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut objects = 0;
    for task in tasks {
        objects += task.await??;
    }
    let elapsed = started.elapsed();
    Ok(Puts {
        objects,
        bytes: objects as u64 * size as u64,
        elapsed,
    })
}
