//! Worker configuration from the environment.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

/// Where to consume from and where the volume is mounted.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `BATON_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub amqp_url: String,
    /// `BATON_STORAGE_DIR`: the worker's (read-only) mount of the shared volume (default `./data`).
    pub storage_dir: PathBuf,
    /// `BATON_WORKER_MODEL`: the model served (default `example`).
    pub model: String,
    /// `BATON_QUEUE_PREFIX` (default `baton.`), as configured on Baton.
    pub queue_prefix: String,
    /// `BATON_WORKER_PREFETCH`: most jobs held and run at once (default 1: one model instance).
    pub prefetch: u16,
    /// `BATON_WORKER_ID`: identity reported with events (default `hostname/pid`).
    pub worker_id: String,
    /// `BATON_WORKER_SHUTDOWN_TIMEOUT`: how long shutdown waits for running jobs (default 30s).
    pub shutdown_timeout: Duration,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let model = var("BATON_WORKER_MODEL", "example");
        if !baton_protocol::queue::is_valid_model(&model) {
            bail!("invalid BATON_WORKER_MODEL `{model}`: must match [a-z0-9][a-z0-9._-]{{0,63}}");
        }
        let prefetch = var("BATON_WORKER_PREFETCH", "1")
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .context("invalid BATON_WORKER_PREFETCH: expected an integer from 1 to 65535")?;
        let shutdown_secs = var("BATON_WORKER_SHUTDOWN_TIMEOUT", "30s");
        let shutdown_timeout = shutdown_secs
            .strip_suffix('s')
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .context("invalid BATON_WORKER_SHUTDOWN_TIMEOUT: expected seconds such as 30s")?;
        Ok(Self {
            amqp_url: var("BATON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            storage_dir: PathBuf::from(var("BATON_STORAGE_DIR", "./data")),
            model,
            queue_prefix: var("BATON_QUEUE_PREFIX", baton_protocol::queue::DEFAULT_PREFIX),
            prefetch,
            worker_id: std::env::var("BATON_WORKER_ID").unwrap_or_else(|_| default_worker_id()),
            shutdown_timeout,
        })
    }

    /// The queue this worker consumes.
    pub fn queue(&self) -> String {
        baton_protocol::queue::job_queue(&self.queue_prefix, &self.model)
    }
}

/// `hostname/pid`: unique per process, and recognisable in job records.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}/{}", std::process::id())
}
