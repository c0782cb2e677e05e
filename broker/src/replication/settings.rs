//! `BATON_REPLICATION_*`: how the background copy to the replica store runs.

use std::time::Duration;

use clap::Args;

use super::ReplicationConfig;
use crate::config::parse_interval;

/// The background copy of the volume to `BATON_STORAGE_REPLICA_URL` (unused without it).
#[derive(Debug, Clone, Args)]
pub struct ReplicationSettings {
    /// Pause between replication rounds when nothing is left to copy.
    #[arg(long, env = "BATON_REPLICATION_INTERVAL", default_value = "5s", value_parser = parse_interval)]
    pub replication_interval: Duration,

    /// Most blobs a replica of Baton claims per round.
    #[arg(long, env = "BATON_REPLICATION_BATCH", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub replication_batch: u32,

    /// Blobs one replica of Baton copies at once.
    #[arg(long, env = "BATON_REPLICATION_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub replication_concurrency: u32,

    /// Longest one blob's copy and read-back may take before it counts as failed.
    #[arg(long, env = "BATON_REPLICATION_COPY_TIMEOUT", default_value = "30m", value_parser = parse_interval)]
    pub replication_copy_timeout: Duration,

    /// Delay before a failed copy is tried again; it doubles with each failure of that blob.
    #[arg(long, env = "BATON_REPLICATION_BACKOFF_MIN", default_value = "1s", value_parser = parse_interval)]
    pub replication_backoff_min: Duration,

    /// Longest delay between retries of one blob's copy.
    #[arg(long, env = "BATON_REPLICATION_BACKOFF_MAX", default_value = "5m", value_parser = parse_interval)]
    pub replication_backoff_max: Duration,
}

impl ReplicationSettings {
    pub fn config(&self) -> ReplicationConfig {
        ReplicationConfig {
            interval: self.replication_interval,
            batch: self.replication_batch,
            concurrency: self.replication_concurrency,
            copy_timeout: self.replication_copy_timeout,
            backoff_min: self.replication_backoff_min,
            backoff_max: self.replication_backoff_max,
        }
    }
}
