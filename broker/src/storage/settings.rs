//! `BATON_STORAGE_URL` and its companions: where blobs go, shared by the server and the
//! commands that work on stored blobs (`cleanup`, `storage migrate`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{Storage, StoreEnv, StoreUrl, Volume};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Redirect {
    /// `GET /v1/files/{id}/content` streams the bytes through Baton.
    Off,
    /// An object-stored file's content answers `302` to a short-lived signed URL.
    On,
}

#[derive(Debug, Clone, Args)]
pub struct StorageSettings {
    /// Where new blobs are kept: a directory (the shared volume), `s3://bucket/prefix` or
    /// `az://container/prefix`; credentials come from the store's standard variables
    /// (`AWS_*`, `AZURE_STORAGE_*`, workload identity) [default: the volume at BATON_STORAGE_DIR].
    #[arg(long, env = "BATON_STORAGE_URL", value_parser = parse_store)]
    pub storage_url: Option<Setting>,

    /// Root of the shared volume (uploads under `blobs/` and `tmp/`). Beside an object store,
    /// the volume is also opened when this is set, so blobs still on it stay readable.
    #[arg(long, env = "BATON_STORAGE_DIR")]
    pub storage_dir: Option<PathBuf>,

    /// Local-first replication: the volume stays primary and every new blob is copied to this
    /// object store in the background (`s3://…` or `az://…`) [default: none].
    #[arg(long, env = "BATON_STORAGE_REPLICA_URL", value_parser = parse_store)]
    pub storage_replica_url: Option<Setting>,

    /// `on`: file content stored in an object store answers `302` to a signed URL valid for
    /// `BATON_CONTENT_REDIRECT_TTL`, instead of streaming through Baton.
    #[arg(long, env = "BATON_CONTENT_REDIRECT", default_value = "off", value_enum)]
    pub content_redirect: Redirect,

    /// How long a redirect's signed URL stays valid.
    #[arg(long, env = "BATON_CONTENT_REDIRECT_TTL", default_value = "5m",
          value_parser = crate::domain::parse_duration)]
    pub content_redirect_ttl: std::time::Duration,

    /// Memory all uploads to object storage may hold at once in parts not yet sent (each
    /// upload holds up to three 8 MiB parts); when it is spent, uploads wait for it.
    #[arg(long, env = "BATON_OBJECT_UPLOAD_MEMORY", default_value = "512MiB",
          value_parser = crate::config::parse_bytes)]
    pub object_upload_memory: u64,

    /// Object store variables (`AWS_*`, `AZURE_*`) over the process environment: for a process
    /// that runs several Batons against different stores (tests); never from the command line.
    #[arg(skip)]
    pub store_env: Vec<(String, String)>,
}

const DEFAULT_DIR: &str = "./data";

/// A store setting; an empty value (a template parameter left blank) counts as unset.
#[derive(Debug, Clone)]
pub struct Setting(Option<StoreUrl>);

fn parse_store(raw: &str) -> Result<Setting, String> {
    if raw.trim().is_empty() {
        return Ok(Setting(None));
    }
    StoreUrl::parse(raw).map(|url| Setting(Some(url)))
}

impl StorageSettings {
    fn configured_url(&self) -> Option<&StoreUrl> {
        self.storage_url.as_ref().and_then(|s| s.0.as_ref())
    }

    /// The object store that replicates the volume, if any.
    pub fn replica_url(&self) -> Option<&StoreUrl> {
        self.storage_replica_url.as_ref().and_then(|s| s.0.as_ref())
    }

    /// The store new blobs go to.
    pub fn url(&self) -> StoreUrl {
        self.configured_url()
            .cloned()
            .unwrap_or_else(|| StoreUrl::Volume(self.storage_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))))
    }

    /// The volume's root, when this replica has one.
    pub fn volume_dir(&self) -> Option<&Path> {
        match self.configured_url() {
            Some(StoreUrl::Volume(dir)) => Some(dir),
            Some(_) => self.storage_dir.as_deref(),
            None => Some(self.storage_dir.as_deref().unwrap_or(Path::new(DEFAULT_DIR))),
        }
    }

    /// Opens the stores and proves the write store takes writes: a read-only mount, a missing
    /// bucket or wrong credentials are found at start, not at the first upload.
    pub async fn open(&self) -> anyhow::Result<Storage> {
        self.open_with(Volume::open).await
    }

    /// As [`StorageSettings::open`], but a volume must already be laid out: for commands that
    /// must not take an unmounted or mistyped path for an empty volume.
    pub async fn open_existing(&self) -> anyhow::Result<Storage> {
        self.open_with(Volume::open_existing).await
    }

    async fn open_with(&self, open_volume: fn(&Path) -> std::io::Result<Volume>) -> anyhow::Result<Storage> {
        let url = self.url();
        let variable = if self.configured_url().is_some() {
            "BATON_STORAGE_URL"
        } else {
            "BATON_STORAGE_DIR"
        };
        let context = || format!("cannot use {} ({variable})", describe(&url));
        if let Some(StoreUrl::Volume(_)) = self.replica_url() {
            anyhow::bail!("BATON_STORAGE_REPLICA_URL must be an object store (s3://… or az://…)");
        }
        if self.replica_url().is_some() && !matches!(url, StoreUrl::Volume(_)) {
            anyhow::bail!(
                "BATON_STORAGE_REPLICA_URL needs the volume as primary store (BATON_STORAGE_URL a directory)"
            );
        }
        let env = StoreEnv::new(self.store_env.clone(), self.object_upload_memory);
        let mut storage = Storage::open(&url, self.volume_dir(), open_volume, env).with_context(context)?;
        storage.configured().check().await.with_context(context)?;
        if let Some(replica) = self.replica_url() {
            storage = storage
                .with_replica(replica)
                .with_context(|| format!("cannot use {} (BATON_STORAGE_REPLICA_URL)", replica.name()))?;
        }
        Ok(storage)
    }
}

fn describe(url: &StoreUrl) -> String {
    match url {
        StoreUrl::Volume(dir) => dir.display().to_string(),
        other => other.name().to_string(),
    }
}
