//! A private Azurite (Azure Blob only) on a loopback port of its own, keeping its data in a
//! directory of its own: stopped and started again, it comes back on the same port with the
//! same containers and blobs.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};

use super::{azure_shared_key, client_options, emulator_process::EmulatorProcess, emulator_process::installed_tool};
use crate::poll::wait_until;

/// The emulator's one account, the same in every Azurite.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (published with Azurite; not a secret).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's metadata, saved every 5 s (LokiJS autosave) and on a graceful stop.
const METADATA_FILES: [&str; 2] = ["__azurite_db_blob__.json", "__azurite_db_blob_extent__.json"];

pub struct Azurite {
    process: EmulatorProcess,
    data: PathBuf,
}

impl Azurite {
    /// Starts Azurite on `port`, with its data under `dir` (kept across restarts).
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let program = installed_tool("azurite/node_modules/.bin/azurite-blob")?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            &data.display().to_string(),
            // object_store speaks a newer API version than an older Azurite knows.
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            // Azurite reports usage to a public endpoint unless told not to.
            "--disableTelemetry",
        ]
        .map(String::from)
        .to_vec();
        let mut process = EmulatorProcess::new("azurite", program, args, dir.join("azurite.log"), port);
        process.start()?;
        Ok(Self { process, data })
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The blob service's base URL (`AZURITE_BLOB_STORAGE_URL`): without the account.
    pub fn blob_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The account's endpoint, for a builder configured like a real account
    /// (`with_endpoint`), and for plain requests.
    pub fn account_url(&self) -> String {
        format!("{}/{ACCOUNT}", self.blob_url())
    }

    pub fn log(&self) -> &Path {
        self.process.log()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Graceful stop: Azurite writes its metadata out before it exits.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop(Duration::from_secs(10))
    }

    /// SIGKILL: no shutdown. Azurite saves its metadata every 5 s, so blobs written in the
    /// last seconds before a kill can be gone after the restart (their bytes stay on disk,
    /// unreferenced); [`Azurite::wait_for_metadata_saved`] first to keep them.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// Waits until Azurite has saved both of its metadata databases after this call, which it
    /// does within 5 s of a write. Call it after writing, not when nothing changed.
    pub fn wait_for_metadata_saved(&self) -> anyhow::Result<()> {
        let asked = SystemTime::now();
        let databases = METADATA_FILES.map(|name| self.data.join(name));
        wait_until("Azurite saving its metadata", Duration::from_secs(20), None, || {
            Ok(databases.iter().all(|db| {
                std::fs::metadata(db)
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified > asked)
            }))
        })
    }

    /// Starts it again after [`Azurite::stop`] or [`Azurite::kill`]: same port, same data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.start()
    }

    /// Creates `container` (the Blob "Create Container" call, signed with the account key).
    pub async fn create_container(&self, container: &str) -> anyhow::Result<()> {
        azure_shared_key::create_container(&self.account_url(), ACCOUNT, ACCOUNT_KEY, container).await
    }

    /// The environment a process needs to reach `container` here through object_store's
    /// `MicrosoftAzureBuilder::from_env()`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_owned()),
            ("AZURITE_BLOB_STORAGE_URL", self.blob_url()),
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.to_owned()),
            ("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A client for `container`, built in this process.
    pub fn client(&self, container: &str) -> anyhow::Result<MicrosoftAzure> {
        self.builder(container).build().context("building the Azure client")
    }

    /// The builder [`Azurite::client`] builds, for a test that adds to it. Configured as a real
    /// account with an explicit endpoint, not with `with_use_emulator`, which reads the
    /// emulator's address from this process's environment only.
    pub fn builder(&self, container: &str) -> MicrosoftAzureBuilder {
        // Client options first: `with_client_options` replaces all of them, `allow_http` too.
        MicrosoftAzureBuilder::new()
            .with_client_options(client_options())
            .with_endpoint(self.account_url())
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_container_name(container)
            .with_allow_http(true)
    }
}
