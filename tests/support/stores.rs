//! A test's world on one storage backend: the volume, S3 (moto) or Azure Blob (Azurite), with
//! apps and workers configured for it and a look inside the store, so that a test can say
//! "nothing left": no upload in progress, no blob object without its row.

use std::{ops::Deref, path::Path, time::Duration};

use baton::config::Settings;
use baton_testkit::object_stores::{Backend, PREFIX, TestStore};
use baton_worker::{Handler, WorkerConfig, example::ExampleHandler};
use object_store::{ObjectStoreExt, path::Path as Key};

use crate::{TestApp, TestEnv, TestWorker, amqp_url, eventually};

/// A [`TestEnv`] (database, queues, worker cache) whose blobs live in `store`. Its own
/// `spawn_app`/`spawn_worker` point Baton and workers at the store; the volume helpers of
/// [`TestEnv`] (`blob_files`, `temp_files`) look at another directory and do not apply here.
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
    /// emulator this test binary shares, or its own directory).
    pub async fn new(backend: Backend) -> Self {
        let store = backend.test_store().await.expect("a test store");
        Self::on(store).await
    }

    /// A fresh environment on `store` (from a private emulator, for tests that stop it).
    pub async fn on(store: TestStore) -> Self {
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
        self.spawn_app_with(&[]).await
    }

    pub async fn spawn_app_with(&self, extra: &[&str]) -> TestApp {
        TestEnv::spawn_app_from(self.settings(extra)).await
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

    /// The blob keys the database's rows say are in this store, sorted.
    pub async fn blob_row_keys(&self) -> Vec<String> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT owner, sha256 FROM blobs WHERE store = $1")
            .bind(self.store_name())
            .fetch_all(&self.env.db)
            .await
            .expect("read blob rows");
        let mut keys: Vec<String> = rows
            .iter()
            .map(|(owner, sha)| format!("blobs/{owner}/{}/{}/{sha}", &sha[0..2], &sha[2..4]))
            .collect();
        keys.sort();
        keys
    }

    /// S3 multipart uploads started and neither completed nor aborted (invisible to listing).
    /// Always 0 elsewhere: the volume has none, and Azure's uncommitted blocks cannot be listed
    /// (they expire after 7 days).
    pub async fn multipart_uploads_in_progress(&self) -> usize {
        if self.backend() != Backend::S3 {
            return 0;
        }
        let endpoint = self
            .store
            .env
            .iter()
            .find_map(|(name, value)| (name == "AWS_ENDPOINT").then_some(value))
            .expect("the S3 endpoint");
        let bucket = self.store.bucket.as_deref().expect("a bucket");
        // moto checks no signatures: a plain GET lists them.
        let listing = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
            .await
            .expect("list multipart uploads")
            .text()
            .await
            .expect("read the listing");
        listing.matches("<UploadId>").count()
    }

    /// What differs between the store and the rows, if anything: uploads in progress, open
    /// multipart uploads, blobs without a row or rows without their blob.
    pub async fn mismatch(&self) -> Option<String> {
        let staging = self.staging_keys().await;
        if !staging.is_empty() {
            return Some(format!("uploads left behind: {staging:?}"));
        }
        let open = self.multipart_uploads_in_progress().await;
        if open > 0 {
            return Some(format!("{open} multipart uploads left open"));
        }
        let (objects, rows) = (self.blob_keys().await, self.blob_row_keys().await);
        (objects != rows).then(|| format!("blob objects {objects:?} but rows {rows:?}"))
    }

    /// Asserts the store comes to hold exactly what the rows say (within 10 s: an abandoned
    /// upload is removed in the background): nothing in progress, every row's blob present, no
    /// blob without a row.
    pub async fn assert_store_matches_rows(&self) {
        let matches = eventually(Duration::from_secs(10), || async { self.mismatch().await.is_none() }).await;
        if !matches {
            panic!("{}: {}", self.backend(), self.mismatch().await.unwrap_or_default());
        }
    }

    /// A blob's bytes, read from the store directly.
    pub async fn read_blob(&self, key: &str) -> Vec<u8> {
        match self.store.client() {
            None => std::fs::read(self.volume_dir().join(key)).expect("read a blob file"),
            Some(client) => {
                let key = Key::from(format!("{}/{key}", baton_testkit::object_stores::PREFIX));
                let result = client.get(&key).await.expect("get a blob object");
                result.bytes().await.expect("read a blob object").to_vec()
            }
        }
    }

    /// A blob's bytes, read from the store directly; `None` when it is not there.
    pub async fn read_key(&self, key: &str) -> Option<Vec<u8>> {
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
