//! Where a run keeps its blobs: the volume, or object storage on a private Azurite (which keeps
//! its data across a restart, so stopping it breaks the store without losing what it held).

use std::path::Path;

use anyhow::Context;
use baton_testkit::object_stores::{Backend, Emulator, TestStore};

use crate::{check::StoredFiles, world::World};

/// `--storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// The shared volume (a directory).
    Volume,
    /// Azure Blob on a private Azurite.
    Azure,
}

/// The object store of a run on object storage.
pub struct ObjectStorage {
    /// `None` once the run is over.
    emulator: tokio::sync::Mutex<Option<Emulator>>,
    /// Baton's location in it (`BATON_STORAGE_URL` and the environment), and a client to look.
    pub location: TestStore,
}

impl ObjectStorage {
    /// Starts Azurite with its data under `dir` and makes the run's container.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.to_owned();
        let emulator = tokio::task::spawn_blocking(move || Emulator::start(Backend::Azure, &dir))
            .await?
            .context("starting Azurite")?;
        let location = emulator.test_store().await?;
        Ok(Self {
            emulator: tokio::sync::Mutex::new(Some(emulator)),
            location,
        })
    }

    pub fn port(&self) -> Option<u16> {
        self.emulator.try_lock().ok()?.as_ref().map(Emulator::port)
    }

    /// Stops the emulator for good. Idempotent.
    pub fn shutdown(&self) {
        match self.emulator.try_lock() {
            Ok(mut emulator) => drop(emulator.take()),
            Err(_) => eprintln!("baton-fault: Azurite is busy at shutdown; it is killed when the suite exits"),
        }
    }
}

impl World {
    /// Where the checker finds the run's blobs and uploads in progress.
    pub fn stored_files(&self) -> StoredFiles<'_> {
        match &self.store {
            Some(store) => StoredFiles::Object(&store.location),
            None => StoredFiles::Volume(&self.volume),
        }
    }

    fn object_storage(&self) -> anyhow::Result<&ObjectStorage> {
        self.store
            .as_ref()
            .context("this run keeps its blobs on the volume: there is no object store to break")
    }

    /// Graceful stop (SIGTERM): Azurite saves what it holds; its port closes.
    pub async fn stop_store(&self) -> anyhow::Result<()> {
        let mut emulator = self.object_storage()?.emulator.lock().await;
        let emulator = emulator.as_mut().context("Azurite is gone")?;
        tokio::task::block_in_place(|| emulator.stop())
    }

    /// Starts it again on the same port and data.
    pub async fn start_store(&self) -> anyhow::Result<()> {
        let mut emulator = self.object_storage()?.emulator.lock().await;
        let emulator = emulator.as_mut().context("Azurite is gone")?;
        tokio::task::block_in_place(|| futures::executor::block_on(emulator.restart()))
    }
}
