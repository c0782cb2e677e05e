//! A private moto server (S3) on a loopback port of its own. Moto keeps everything in memory:
//! stopped and started again it comes back on the same port EMPTY. [`Moto::restart_empty`]
//! says so in its name, and makes again (empty) the buckets this handle had created, so a
//! client sees missing objects rather than a missing bucket.

use std::{path::Path, sync::Mutex, time::Duration};

use anyhow::{Context, bail};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3CopyIfNotExists};

use super::{
    client_options,
    emulator_process::{EmulatorProcess, installed_tool},
};

/// Moto accepts any credentials; these are what Baton is given.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    process: EmulatorProcess,
    buckets: Mutex<Vec<String>>,
}

impl Moto {
    /// Starts moto on `port`; its log goes under `dir`.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let program = installed_tool("moto-venv/bin/moto_server")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from).to_vec();
        let mut process = EmulatorProcess::new("moto", program, args, dir.join("moto.log"), port);
        process.start()?;
        Ok(Self {
            process,
            buckets: Mutex::new(Vec::new()),
        })
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `AWS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    pub fn log(&self) -> &Path {
        self.process.log()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Moto keeps no data across a restart.
    pub const fn keeps_data_across_restart(&self) -> bool {
        false
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop(Duration::from_secs(10))
    }

    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// Starts it again on the same port, with every object gone; the buckets this handle had
    /// created are made again, empty.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        self.process.start()?;
        let buckets = self.buckets.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        for bucket in buckets {
            self.put_bucket(&bucket).await?;
        }
        Ok(())
    }

    /// Creates `bucket` (an unsigned `PUT /{bucket}`: moto checks no signatures by default).
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.put_bucket(bucket).await?;
        self.buckets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(bucket.to_owned());
        Ok(())
    }

    async fn put_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .context("CreateBucket request")?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("CreateBucket {bucket} answered {status}: {body}");
        }
        Ok(())
    }

    /// The environment a process needs to reach this server through object_store's
    /// `AmazonS3Builder::from_env()`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            // What real S3 needs too: moto honours no other way of copying if absent.
            ("AWS_COPY_IF_NOT_EXISTS", "multipart".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A client for `bucket`, built in this process.
    pub fn client(&self, bucket: &str) -> anyhow::Result<AmazonS3> {
        self.builder(bucket).build().context("building the S3 client")
    }

    /// The builder [`Moto::client`] builds, for a test that adds to it.
    pub fn builder(&self, bucket: &str) -> AmazonS3Builder {
        // The one create-if-absent copy moto honours; the header variants overwrite silently.
        self.bare_builder(bucket)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
    }

    /// [`Moto::builder`] without a way to copy if absent (`copy_if_not_exists` is unsupported).
    pub fn bare_builder(&self, bucket: &str) -> AmazonS3Builder {
        // Client options first: `with_client_options` replaces all of them, `allow_http` too.
        AmazonS3Builder::new()
            .with_client_options(client_options())
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .with_bucket_name(bucket)
    }
}
