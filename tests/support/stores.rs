//! A test's world on one storage backend: the volume, S3 (moto) or Azure Blob (Azurite), with
//! apps and workers configured for it and a look inside the store.

use std::{ops::Deref, path::Path};

use baton::config::Settings;
use baton_testkit::object_stores::{Backend, PREFIX, TestStore};
use baton_worker::{Handler, WorkerConfig, example::ExampleHandler};
use object_store::{ObjectStoreExt, path::Path as Key};

use crate::{TestApp, TestEnv, TestWorker, amqp_url};

/// A [`TestEnv`] (database, queues, worker cache) whose blobs live in `store`. The volume
/// helpers of [`TestEnv`] (`blob_files`, `temp_files`, `blob_path`) look at another directory
/// and do not apply: use the key-based ones here.
pub struct BackendEnv {
    pub env: TestEnv,
    pub store: TestStore,
}

impl Deref for BackendEnv {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl BackendEnv {
    /// A fresh environment on a fresh location of `backend` (its own bucket or container on the
    /// emulator the test binary shares, or its own directory).
    pub async fn new(backend: Backend) -> Self {
        let store = backend.test_store().await.expect("a test store");
        Self {
            env: TestEnv::new().await,
            store,
        }
    }

    pub fn backend(&self) -> Backend {
        self.store.backend
    }

    /// The name blob rows give this store: `volume`, or the store's URL.
    pub fn store_name(&self) -> String {
        match self.backend() {
            Backend::Volume => "volume".to_owned(),
            _ => self.store.url.clone(),
        }
    }

    /// The directory workers mount as the volume: the store itself, or an empty one beside an
    /// object store.
    pub fn volume_dir(&self) -> &Path {
        self.store.volume_dir().unwrap_or_else(|| self.env.storage_dir())
    }

    /// Settings of an app on this store, `extra` flags on top.
    pub fn settings(&self, extra: &[&str]) -> Settings {
        let mut flags = vec!["--storage-url", self.store.url.as_str()];
        flags.extend_from_slice(extra);
        let mut settings = self.env.settings(&amqp_url(), &flags);
        if self.store.volume_dir().is_none() {
            // Blobs go to the object store alone, as in a deployment without the shared volume.
            settings.storage.storage_dir = None;
        }
        settings.storage.store_env = self.store.env.clone();
        settings
    }

    pub async fn spawn_app(&self) -> TestApp {
        TestEnv::spawn_app_from(self.settings(&[])).await
    }

    /// The example worker, reading object-stored inputs by their signed URLs.
    pub fn spawn_worker(&self) -> TestWorker {
        self.spawn_worker_with(ExampleHandler, |_| {})
    }

    pub fn spawn_worker_with<H: Handler>(&self, handler: H, adjust: impl FnOnce(&mut WorkerConfig)) -> TestWorker {
        let volume = self.volume_dir().to_owned();
        self.env.spawn_worker_with(handler, move |config| {
            config.storage_dir = volume;
            adjust(config);
        })
    }

    /// Every key in the store under Baton's prefix, sorted: `blobs/…` and uploads in progress
    /// (`tmp/…` on the volume, `staging/…` in an object store).
    pub async fn keys(&self) -> Vec<String> {
        self.store.keys().await.expect("list the store")
    }

    /// Uploads in progress (or left behind): the volume's `tmp/`, an object store's `staging/`.
    pub async fn staging_keys(&self) -> Vec<String> {
        let mut keys = self.keys().await;
        keys.retain(|k| k.starts_with("tmp/") || k.starts_with("staging/"));
        keys
    }

    /// Every blob in the store, as `blobs/<owner>/<aa>/<bb>/<sha256>`.
    pub async fn blob_keys(&self) -> Vec<String> {
        let mut keys = self.keys().await;
        keys.retain(|k| k.starts_with("blobs/"));
        keys
    }

    /// A blob's bytes, read from the store directly; `None` when it is not there.
    pub async fn read_blob(&self, key: &str) -> Option<Vec<u8>> {
        match self.store.client() {
            None => std::fs::read(self.volume_dir().join(key)).ok(),
            Some(client) => match client.get(&object_key(key)).await {
                Ok(result) => Some(result.bytes().await.expect("read a blob object").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {key}: {e}"),
            },
        }
    }

    /// Puts `bytes` at `key` (relative to Baton's prefix), as something outside Baton would.
    pub async fn put_key(&self, key: &str, bytes: &[u8]) {
        match self.store.client() {
            None => {
                let path = self.volume_dir().join(key);
                std::fs::create_dir_all(path.parent().expect("a key has a directory")).expect("make directories");
                std::fs::write(path, bytes).expect("write a file");
            }
            Some(client) => {
                client
                    .put(&object_key(key), bytes.to_vec().into())
                    .await
                    .expect("put an object");
            }
        }
    }

    /// Removes `key` behind Baton's back.
    pub async fn remove_key(&self, key: &str) {
        match self.store.client() {
            None => std::fs::remove_file(self.volume_dir().join(key)).expect("remove a file"),
            Some(client) => client.delete(&object_key(key)).await.expect("delete an object"),
        }
    }
}

/// A key as the bucket names it.
fn object_key(key: &str) -> Key {
    Key::from(format!("{PREFIX}/{key}"))
}

/// Where every store keeps the default owner's blob with this digest, relative to its root.
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/default/{}/{}/{sha256}", &sha256[0..2], &sha256[2..4])
}
