//! A test's world on two stores at once, for moving blobs between them: Baton configured on
//! either, reaching both (the volume directory when one is the volume, both stores'
//! credentials), workers mounting the volume, and a look inside each store.

use std::{ops::Deref, path::Path};

use baton::{config::Settings, storage::Storage};
use baton_testkit::object_stores::{Backend, TestStore};
use baton_worker::example::ExampleHandler;

use crate::{TestApp, TestEnv, TestWorker, amqp_url};

pub struct StorePair {
    pub env: TestEnv,
    pub source: TestStore,
    pub target: TestStore,
}

impl Deref for StorePair {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

/// The name blob rows give a store: `volume`, or its URL.
pub fn store_name(store: &TestStore) -> String {
    match store.backend {
        Backend::Volume => "volume".to_owned(),
        _ => store.url.clone(),
    }
}

impl StorePair {
    /// Fresh locations on the emulators this test binary shares (or fresh directories).
    pub async fn new(source: Backend, target: Backend) -> Self {
        let source = source.test_store().await.expect("a source store");
        let target = target.test_store().await.expect("a target store");
        Self::on(source, target).await
    }

    pub async fn on(source: TestStore, target: TestStore) -> Self {
        Self {
            env: TestEnv::new().await,
            source,
            target,
        }
    }

    /// The volume of the pair, if one of the two is: workers mount it, Baton opens it.
    pub fn volume(&self) -> Option<&Path> {
        self.source.volume_dir().or_else(|| self.target.volume_dir())
    }

    /// Both stores' variables (endpoints, credentials).
    pub fn store_env(&self) -> Vec<(String, String)> {
        let mut env = self.source.env.clone();
        env.extend(self.target.env.iter().cloned());
        env
    }

    /// Settings of an app whose `BATON_STORAGE_URL` is `configured`, reaching both stores.
    pub fn settings(&self, configured: &TestStore) -> Settings {
        let mut settings = self
            .env
            .settings(&amqp_url(), &["--storage-url", configured.url.as_str()]);
        settings.storage.storage_dir = self.volume().map(Path::to_owned);
        settings.storage.store_env = self.store_env();
        settings
    }

    pub async fn spawn_app(&self, configured: &TestStore) -> TestApp {
        TestApp::start(self.settings(configured)).await
    }

    /// Stores as `baton storage migrate` opens them when run with `configured`.
    pub async fn storage(&self, configured: &TestStore) -> Storage {
        self.settings(configured).storage.open().await.expect("open the stores")
    }

    /// The example worker, mounting the volume (if any) and fetching objects by signed URL.
    pub fn spawn_worker(&self) -> TestWorker {
        let volume = self.volume().unwrap_or_else(|| self.env.storage_dir()).to_owned();
        self.env
            .spawn_worker_with(ExampleHandler, move |config| config.storage_dir = volume)
    }

    /// `baton storage migrate …` (the binary) configured on `configured`, as an operator runs it.
    pub fn migrate_command<const N: usize>(&self, configured: &TestStore, args: [&str; N]) -> tokio::process::Command {
        let mut command = self.env.baton(["storage", "migrate"]);
        command.args(args).env("BATON_STORAGE_URL", &configured.url);
        match self.volume() {
            Some(dir) => command.env("BATON_STORAGE_DIR", dir),
            None => command.env_remove("BATON_STORAGE_DIR"),
        };
        for (name, value) in self.store_env() {
            command.env(name, value);
        }
        command
    }

    /// Blob keys (`blobs/<owner>/<aa>/<bb>/<sha256>`) in a store.
    pub async fn blob_keys(store: &TestStore) -> Vec<String> {
        let mut keys = store.keys().await.expect("list the store");
        keys.retain(|k| k.starts_with("blobs/"));
        keys
    }
}

/// A blob's key in any store.
pub fn blob_key(owner: &str, sha256: &str) -> String {
    format!("blobs/{owner}/{}/{}/{sha256}", &sha256[..2], &sha256[2..4])
}
