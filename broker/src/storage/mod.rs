//! Where uploads are streamed, hashed, made durable and addressed by content.
//!
//! One abstraction, [`Backend`], of which the shared volume ([`Volume`]) and object storage
//! ([`ObjectBackend`], S3 or Azure Blob) are the implementations. Every blob row names the store
//! that holds its bytes ([`StoreName`]), so reads go to wherever a blob is while new uploads go to
//! the write store: the configured one, or a migration's target from the moment it starts.

mod backend;
mod env;
mod location;
mod object;
mod settings;
pub mod sniff;
mod volume;

use std::{
    collections::HashMap,
    io,
    path::Path,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

pub use backend::{Backend, Staged, Upload, Written};
pub use env::{DEFAULT_UPLOAD_MEMORY, StoreEnv};
pub use location::{StoreName, StoreUrl};
pub use object::{Listed, MAX_SIGNED_URL, ObjectBackend};
pub use settings::{Redirect, StorageSettings};
pub use volume::{Found, FoundBlob, TempPath, Volume};

/// What happened to an upload's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The upload was moved into its content-addressed place.
    Placed,
    /// An intact copy was already there; the upload was dropped.
    AlreadyPresent,
}

/// A store that cannot serve now (unreachable, refusing, failing): carried inside an
/// [`io::Error`] so callers answer `503 storage_unavailable` instead of a 500.
#[derive(Debug, thiserror::Error)]
#[error("store {store} is unavailable: {reason}")]
pub struct Unavailable {
    pub store: StoreName,
    pub reason: String,
}

impl Unavailable {
    pub fn error(store: StoreName, reason: impl Into<String>) -> io::Error {
        io::Error::other(Self {
            store,
            reason: reason.into(),
        })
    }

    /// The store failure inside `error`, if that is what it is.
    pub fn find(error: &io::Error) -> Option<&Self> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<Self>())
    }
}

/// Every store this replica can reach, and which one takes new uploads.
#[derive(Debug, Clone)]
pub struct Storage {
    configured: Backend,
    volume: Option<Volume>,
    env: StoreEnv,
    opened: Arc<Mutex<HashMap<StoreName, Backend>>>,
    /// A migration's target, which takes new uploads while it is set.
    target: Arc<RwLock<Option<Backend>>>,
    /// The object store the volume is replicated to (`BATON_STORAGE_REPLICA_URL`). Kept apart
    /// from the stores rows name: no row names it, and nothing but the replicator and cleanup's
    /// removal of a deleted blob's copy touches it.
    replica: Option<Backend>,
}

impl Storage {
    /// Opens the configured store (creating the volume layout if it is one) and, when `volume`
    /// is given beside an object store, the volume too, so its blobs stay readable.
    pub fn open(
        url: &StoreUrl,
        volume: Option<&Path>,
        open_volume: fn(&Path) -> io::Result<Volume>,
        env: StoreEnv,
    ) -> io::Result<Self> {
        let (configured, volume) = match url {
            StoreUrl::Volume(dir) => {
                let volume = open_volume(dir)?;
                (Backend::Volume(volume.clone()), Some(volume))
            }
            object => {
                let volume = volume.map(open_volume).transpose()?;
                (
                    Backend::Object(ObjectBackend::open(object, &env, env.memory.clone())?),
                    volume,
                )
            }
        };
        Ok(Self::assemble(configured, volume, env))
    }

    /// The shared volume at `root` alone, laid out if new (tests and tools that know no other
    /// store).
    pub fn volume_at(root: &Path) -> io::Result<Self> {
        let volume = Volume::open(root)?;
        Ok(Self::assemble(
            Backend::Volume(volume.clone()),
            Some(volume),
            StoreEnv::default(),
        ))
    }

    fn assemble(configured: Backend, volume: Option<Volume>, env: StoreEnv) -> Self {
        let mut opened = HashMap::new();
        opened.insert(configured.name(), configured.clone());
        if let Some(volume) = &volume {
            opened.insert(StoreName::volume(), Backend::Volume(volume.clone()));
        }
        Self {
            configured,
            volume,
            env,
            opened: Arc::new(Mutex::new(opened)),
            target: Arc::new(RwLock::new(None)),
            replica: None,
        }
    }

    /// Adds the replica store (not contacted here: a replica that is down must not stop the
    /// volume from taking uploads).
    pub fn with_replica(mut self, url: &StoreUrl) -> io::Result<Self> {
        self.replica = Some(Backend::Object(ObjectBackend::open(
            url,
            &self.env,
            self.env.memory.clone(),
        )?));
        Ok(self)
    }

    /// The object store the volume is replicated to, if any.
    pub fn replica(&self) -> Option<&Backend> {
        self.replica.as_ref()
    }

    /// The store `BATON_STORAGE_URL` names.
    pub fn configured(&self) -> &Backend {
        &self.configured
    }

    /// The shared volume, when this replica mounts one.
    pub fn volume(&self) -> Option<&Volume> {
        self.volume.as_ref()
    }

    /// Where a new upload goes now.
    pub fn write_backend(&self) -> Backend {
        self.target
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.configured.clone())
    }

    /// Sends new uploads to `target` (a migration started) or back to the configured store.
    pub fn set_write_target(&self, target: Option<Backend>) {
        *self.target.write().unwrap_or_else(PoisonError::into_inner) = target;
    }

    /// The store a row names, opened on first use. A store this replica cannot reach (no
    /// volume mounted, no credentials) is [`Unavailable`].
    pub fn backend(&self, name: &StoreName) -> io::Result<Backend> {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(backend) = opened.get(name) {
            return Ok(backend.clone());
        }
        let url = StoreUrl::from_name(name)
            .ok_or_else(|| Unavailable::error(name.clone(), "this replica mounts no shared volume"))?;
        let backend = Backend::Object(
            ObjectBackend::open(&url, &self.env, self.env.memory.clone())
                .map_err(|e| Unavailable::error(name.clone(), e.to_string()))?,
        );
        opened.insert(name.clone(), backend.clone());
        Ok(backend)
    }

    /// Every store opened so far (for cleanup, which also visits stores blobs were moved from).
    pub fn opened(&self) -> Vec<Backend> {
        let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Backend> = opened.values().cloned().collect();
        all.sort_by_key(Backend::name);
        all
    }
}
