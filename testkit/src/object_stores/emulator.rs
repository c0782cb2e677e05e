//! Either emulator behind one interface, for code that loops over backends.

use std::{path::Path, sync::Arc};

use anyhow::bail;
use object_store::{ObjectStore, RetryConfig};

use super::{Azurite, Backend, Moto, TestStore, unique_bucket_name};
use crate::ports::free_port;

pub enum Emulator {
    Azurite(Azurite),
    Moto(Moto),
}

impl Emulator {
    /// Starts the emulator of `backend` (S3 or Azure) on a free port, with its files (data,
    /// log) under `dir`.
    pub fn start(backend: Backend, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        Ok(match backend {
            Backend::S3 => Self::Moto(Moto::start(dir, port)?),
            Backend::Azure => Self::Azurite(Azurite::start(dir, port)?),
            Backend::Volume => bail!("a volume has no emulator"),
        })
    }

    pub const fn backend(&self) -> Backend {
        match self {
            Self::Azurite(_) => Backend::Azure,
            Self::Moto(_) => Backend::S3,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::Azurite(a) => a.port(),
            Self::Moto(m) => m.port(),
        }
    }

    pub fn log(&self) -> &Path {
        match self {
            Self::Azurite(a) => a.log(),
            Self::Moto(m) => m.log(),
        }
    }

    /// Whether objects written before [`Emulator::stop`]/[`Emulator::kill`] are there after
    /// [`Emulator::restart`]: Azurite keeps them (on disk); moto loses them (in memory), and
    /// only the buckets made through this handle come back, empty.
    pub const fn keeps_data_across_restart(&self) -> bool {
        match self {
            Self::Azurite(_) => true,
            Self::Moto(m) => m.keeps_data_across_restart(),
        }
    }

    /// Graceful stop; the port closes.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Azurite(a) => a.stop(),
            Self::Moto(m) => m.stop(),
        }
    }

    /// After writes, before a [`Emulator::kill`] that should keep them: Azurite saves its
    /// metadata every 5 s and a kill loses what it had not saved; moto saves nothing ever, so
    /// there is nothing to wait for.
    pub fn wait_for_writes_saved(&self) -> anyhow::Result<()> {
        match self {
            Self::Azurite(a) => a.wait_for_metadata_saved(),
            Self::Moto(_) => Ok(()),
        }
    }

    /// SIGKILL; the port closes.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Azurite(a) => a.kill(),
            Self::Moto(m) => m.kill(),
        }
    }

    /// Starts it again on the same port (see [`Emulator::keeps_data_across_restart`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Azurite(a) => a.restart(),
            Self::Moto(m) => m.restart_empty().await,
        }
    }

    /// Makes `bucket` (a bucket on moto, a container on Azurite).
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        match self {
            Self::Azurite(a) => a.create_container(bucket).await,
            Self::Moto(m) => m.create_bucket(bucket).await,
        }
    }

    /// The environment Baton needs to reach this emulator (no `BATON_STORAGE_URL`).
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::Azurite(a) => a.env(),
            Self::Moto(m) => m.env(),
        }
    }

    /// A client for the whole of `bucket` (keys as Baton names them, prefix included).
    pub fn client(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        self.client_with_retry(bucket, RetryConfig::default())
    }

    /// [`Emulator::client`] with its own retries (`max_retries: 0` to see a failure at once).
    pub fn client_with_retry(&self, bucket: &str, retry: RetryConfig) -> anyhow::Result<Arc<dyn ObjectStore>> {
        Ok(match self {
            Self::Azurite(a) => Arc::new(a.builder(bucket).with_retry(retry).build()?),
            Self::Moto(m) => Arc::new(m.builder(bucket).with_retry(retry).build()?),
        })
    }

    /// A new bucket or container here, for one test.
    pub async fn test_store(&self) -> anyhow::Result<TestStore> {
        let bucket = unique_bucket_name();
        self.create_bucket(&bucket).await?;
        TestStore::object_store(self, bucket)
    }
}
