//! A local cache of object-stored inputs, keyed by SHA-256, so that a handler always reads a
//! local file.
//!
//! - Bounded: cached files and fetches under way take at most `max_bytes`; the least recently
//!   used files are evicted to make room, never one a running job holds ([`CachedFile`]).
//! - Verified: bytes are counted and hashed while they stream to a temporary file, which gets
//!   its final name (the SHA-256) only if both match; anything else is removed.
//! - Single flight: concurrent requests for one SHA-256 share one fetch, which runs to its end
//!   even if they all give up (the next job may want the file).
//! - Patient: connection failures, timeouts, cut transfers and 5xx answers are tried again
//!   ([`RetryPolicy`]) before the fetch fails as unavailable.
//!
//! One process per cache directory: the index lives in memory and is rebuilt from the
//! directory when the cache opens.

mod config;
mod download;
mod index;
mod source;
#[cfg(feature = "object-store")]
mod stores;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use baton_protocol::ObjectRef;
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};

pub use self::config::{CacheConfig, DEFAULT_MAX_BYTES, ObjectAccess, RetryPolicy, parse_bytes};
use self::{
    index::{Index, Lookup},
    source::{Failure, Source},
};

/// Why an input could not be fetched into the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The store could not be reached or refused the read, after retries where that may help.
    #[error("{0}")]
    Unavailable(String),
    /// The bytes received do not match the recorded size or SHA-256; nothing was kept.
    #[error("{0}")]
    Corrupt(String),
    /// A file with this SHA-256 is cached with another size than the message records.
    #[error("the cached file with this SHA-256 has {cached} bytes, the message records {recorded}")]
    SizeMismatch { cached: u64, recorded: u64 },
    /// Files in use and fetches under way leave no room within the bound.
    #[error(
        "the input cache has no room for {wanted} bytes: {held} bytes are held by running jobs and fetches, \
         BATON_CACHE_MAX_BYTES is {max}"
    )]
    Full { wanted: u64, held: u64, max: u64 },
    /// Writing to the cache directory failed.
    #[error("{0}")]
    Io(String),
    /// The reference cannot name a cached file or an object (a bad SHA-256, store or key).
    #[error("{0}")]
    InvalidReference(String),
}

/// A cached input, held for a running job: it is not evicted until this is dropped.
#[derive(Debug)]
pub struct CachedFile {
    path: PathBuf,
    sha256: String,
    cache: Arc<Inner>,
}

impl CachedFile {
    /// The local file, complete and verified.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.cache.state().index.unpin(&self.sha256);
    }
}

/// What the cache holds, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    /// Cached files.
    pub files: usize,
    /// Bytes of cached files plus bytes reserved by fetches under way.
    pub bytes: u64,
}

/// The cache of object-stored inputs; cheap to clone.
#[derive(Clone)]
pub struct ObjectCache {
    inner: Arc<Inner>,
}

type Flight = Shared<BoxFuture<'static, Result<(), CacheError>>>;

struct Inner {
    config: CacheConfig,
    source: Source,
    state: Mutex<State>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    index: Index,
    flights: HashMap<String, Flight>,
}

/// How often a request starts over when the file it waited for was evicted before it could
/// take it (only under heavy pressure on the bound).
const LOOKUPS: usize = 3;

impl ObjectCache {
    /// Opens (creating it if needed) the cache directory: removes files left half-written,
    /// indexes the cached files (oldest first, by modification time) and evicts down to the
    /// bound.
    pub fn open(config: CacheConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.dir)
            .with_context(|| format!("cannot create the input cache {}", config.dir.display()))?;
        let mut found = Vec::new();
        let listing = std::fs::read_dir(&config.dir)
            .with_context(|| format!("cannot read the input cache {}", config.dir.display()))?;
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if name.starts_with(download::PARTIAL_PREFIX) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            } else if meta.is_file() && is_sha256(&name) {
                found.push((meta.modified().ok(), name, meta.len()));
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, sha256, size) in found {
            index.insert_found(sha256, size);
        }
        for sha256 in index.shrink_to(config.max_bytes) {
            remove(&config.dir, &sha256);
        }
        tracing::info!(dir = %config.dir.display(), files = index.len(), bytes = index.used(),
            max_bytes = config.max_bytes, "input cache opened");
        let source = Source::new(config.access)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                source,
                state: Mutex::new(State {
                    index,
                    flights: HashMap::new(),
                }),
            }),
        })
    }

    /// How objects are read.
    pub fn access(&self) -> ObjectAccess {
        self.inner.config.access
    }

    /// What the cache holds now.
    pub fn usage(&self) -> CacheUsage {
        let state = self.inner.state();
        CacheUsage {
            files: state.index.len(),
            bytes: state.index.used(),
        }
    }

    /// The object's bytes as a local file, held until the returned value is dropped: from the
    /// cache, or fetched (once, however many ask at the same time) and verified.
    pub async fn get(&self, object: &ObjectRef, sha256: &str, size: u64) -> Result<CachedFile, CacheError> {
        if !is_sha256(sha256) {
            return Err(CacheError::InvalidReference(
                "the recorded SHA-256 is not 64 lowercase hex digits".to_owned(),
            ));
        }
        for _ in 0..LOOKUPS {
            let flight = match self.lookup(object, sha256, size)? {
                Ok(file) => {
                    if tokio::fs::metadata(&file.path).await.is_ok_and(|m| m.len() == size) {
                        return Ok(file);
                    }
                    // Removed from under the cache: forget it and fetch it again.
                    tracing::warn!(sha256, "a cached input vanished; fetching it again");
                    drop(file);
                    self.inner.state().index.forget(sha256);
                    continue;
                }
                Err(flight) => flight,
            };
            flight.await?;
        }
        Err(CacheError::Unavailable(
            "the input was evicted from the cache before it could be used; the cache is too small for the load"
                .to_owned(),
        ))
    }

    /// The cached file, pinned, or the fetch to wait for (started here if none is under way).
    fn lookup(&self, object: &ObjectRef, sha256: &str, size: u64) -> Result<Result<CachedFile, Flight>, CacheError> {
        let mut state = self.inner.state();
        match state.index.pin(sha256, size) {
            Lookup::Hit => {
                return Ok(Ok(CachedFile {
                    path: self.inner.config.dir.join(sha256),
                    sha256: sha256.to_owned(),
                    cache: Arc::clone(&self.inner),
                }));
            }
            Lookup::OtherSize(cached) => {
                return Err(CacheError::SizeMismatch { cached, recorded: size });
            }
            Lookup::Miss => {}
        }
        if let Some(flight) = state.flights.get(sha256) {
            return Ok(Err(flight.clone()));
        }
        let max = self.inner.config.max_bytes;
        let evicted = state.index.reserve(size, max).map_err(|full| CacheError::Full {
            wanted: full.wanted,
            held: full.held,
            max,
        })?;
        // Under the lock, so that a fetch of an evicted file cannot land before the removal.
        for victim in &evicted {
            remove(&self.inner.config.dir, victim);
        }
        if !evicted.is_empty() {
            tracing::debug!(evicted = evicted.len(), "evicted cached inputs to make room");
        }
        let reservation = Reservation {
            cache: Arc::clone(&self.inner),
            sha256: sha256.to_owned(),
            size,
            committed: false,
        };
        let task = tokio::spawn(fetch(Arc::clone(&self.inner), object.clone(), reservation));
        let flight: Flight = task
            .map(|joined| {
                joined.unwrap_or_else(|e| Err(CacheError::Io(format!("the fetch of an input ended abruptly: {e}"))))
            })
            .boxed()
            .shared();
        state.flights.insert(sha256.to_owned(), flight.clone());
        Ok(Err(flight))
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("input cache lock")
    }
}

/// Fetches one object with retries; its reservation becomes a cached file or is given back.
async fn fetch(cache: Arc<Inner>, object: ObjectRef, mut reservation: Reservation) -> Result<(), CacheError> {
    let (sha256, size) = (reservation.sha256.clone(), reservation.size);
    let outcome = with_retries(&cache.config.retry, || async {
        let stream = cache.source.open(&object).await?;
        download::store(&cache.config.dir, &sha256, size, stream).await
    })
    .await;
    match &outcome {
        Ok(()) => {
            reservation.committed = true;
            tracing::debug!(sha256, size, "input fetched into the cache");
        }
        Err(e) => tracing::warn!(sha256, error = %e, "fetching an input failed"),
    }
    outcome
}

async fn with_retries<F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<(), CacheError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut delays = policy.delays();
    let mut tries = 0_u32;
    loop {
        tries += 1;
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retryable(reason)) => match delays.next() {
                Some(delay) => {
                    tracing::info!(%reason, tries, retry_in_ms = delay.as_millis(),
                        "fetching an input failed; trying again");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(CacheError::Unavailable(format!("{reason} (after {tries} tries)")));
                }
            },
        }
    }
}

/// Bytes reserved for a fetch and its place among the fetches under way: on drop (the fetch
/// ended, failed, or its task was dropped) the flight is removed, and the reservation becomes
/// the cached file or is given back.
struct Reservation {
    cache: Arc<Inner>,
    sha256: String,
    size: u64,
    committed: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.cache.state();
        state.flights.remove(&self.sha256);
        if self.committed {
            state.index.commit(self.sha256.clone(), self.size);
        } else {
            state.index.release(self.size);
        }
    }
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn remove(dir: &Path, sha256: &str) {
    if let Err(e) = std::fs::remove_file(dir.join(sha256))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(sha256, error = %e, "could not remove an evicted cache file");
    }
}
