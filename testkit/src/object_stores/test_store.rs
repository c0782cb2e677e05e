//! One test's storage location: what Baton is told (`BATON_STORAGE_URL` and environment) and
//! a way for the test to look inside.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use futures::TryStreamExt;
use object_store::ObjectStore;
use tempfile::TempDir;

use super::{Backend, Emulator};
use crate::files::list_files;

/// The key prefix Baton is given inside each test's bucket, so that prefix handling is always
/// exercised.
pub const PREFIX: &str = "baton";

pub struct TestStore {
    pub backend: Backend,
    /// `BATON_STORAGE_URL`: `s3://{bucket}/baton`, `az://{container}/baton`, or the volume's
    /// directory.
    pub url: String,
    /// What else Baton needs to reach the store (endpoint, region, credentials); empty for a
    /// volume.
    pub env: Vec<(String, String)>,
    /// The bucket or container (none for a volume).
    pub bucket: Option<String>,
    client: Option<Arc<dyn ObjectStore>>,
    volume: Option<TempDir>,
}

impl TestStore {
    pub(crate) fn volume() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("baton-volume-")
            .tempdir()
            .context("making a volume directory")?;
        Ok(Self {
            backend: Backend::Volume,
            url: dir.path().display().to_string(),
            env: Vec::new(),
            bucket: None,
            client: None,
            volume: Some(dir),
        })
    }

    pub(crate) fn object_store(emulator: &Emulator, bucket: String) -> anyhow::Result<Self> {
        let scheme = match emulator.backend() {
            Backend::S3 => "s3",
            _ => "az",
        };
        Ok(Self {
            backend: emulator.backend(),
            url: format!("{scheme}://{bucket}/{PREFIX}"),
            env: emulator.env(),
            client: Some(emulator.client(&bucket)?),
            bucket: Some(bucket),
            volume: None,
        })
    }

    /// [`TestStore::env`] plus `BATON_STORAGE_URL`.
    pub fn baton_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("BATON_STORAGE_URL".to_owned(), self.url.clone()));
        env
    }

    /// A client for the whole bucket or container: keys as Baton writes them, starting with
    /// [`PREFIX`]. None for a volume.
    pub fn client(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.client.as_ref()
    }

    /// The volume's directory. None for an object store.
    pub fn volume_dir(&self) -> Option<&Path> {
        self.volume.as_ref().map(TempDir::path)
    }

    /// Every key under Baton's prefix, relative to it and sorted (`blobs/…`, `staging/…`): the
    /// same names for every backend.
    pub async fn keys(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.objects().await?.into_iter().map(|(key, _)| key).collect())
    }

    /// [`TestStore::keys`] with each object's size in bytes.
    pub async fn objects(&self) -> anyhow::Result<Vec<(String, u64)>> {
        if let Some(dir) = self.volume_dir() {
            let mut files: Vec<(String, u64)> = list_files(dir)
                .iter()
                .filter_map(|p| {
                    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or_default();
                    Some((p.strip_prefix(dir).ok()?.display().to_string(), size))
                })
                .collect();
            files.sort();
            return Ok(files);
        }
        let client = self.client.as_ref().context("an object store has a client")?;
        let prefix = object_store::path::Path::from(PREFIX);
        let mut objects: Vec<(String, u64)> = client
            .list(Some(&prefix))
            .map_ok(|meta| {
                let key = meta.location.to_string();
                let relative = key.strip_prefix(&format!("{PREFIX}/")).unwrap_or(&key).to_owned();
                (relative, meta.size)
            })
            .try_collect()
            .await
            .context("listing the store")?;
        objects.sort();
        Ok(objects)
    }
}
