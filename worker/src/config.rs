//! Worker configuration from the environment.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

use crate::cache::CacheConfig;

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
    /// `BATON_WORKER_HEARTBEAT`: how often a running job's lease is renewed when its job message
    /// does not say (one published by a Baton older than `heartbeat_interval_ms`), default 10s.
    /// Messages from current Baton carry the interval its lease needs, and that one wins: only
    /// Baton knows its lease.
    pub fallback_heartbeat_interval: Duration,
    /// `BATON_WORKER_ACK_DEADLINE`: a job still running after this long has its message acked
    /// early, before RabbitMQ's consumer timeout (30 minutes by default) would close the channel
    /// and hand the job to another worker; from then on the lease alone guards it (default 20m).
    pub ack_deadline: Duration,
    /// `BATON_CACHE_DIR`, `BATON_CACHE_MAX_BYTES`, `BATON_OBJECT_ACCESS`: the local cache of
    /// object-stored inputs and how they are read (see [`CacheConfig`]).
    pub cache: CacheConfig,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let model = var("BATON_WORKER_MODEL", "example");
        if !baton_protocol::queue::is_valid_model(&model) {
            bail!("invalid BATON_WORKER_MODEL `{model}`: must match [a-z0-9][a-z0-9._-]{{0,63}}");
        }
        let prefetch = var("BATON_WORKER_PREFETCH", "1")
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .context("invalid BATON_WORKER_PREFETCH: expected an integer from 1 to 65535")?;
        let duration = |name: &str, default: &str| {
            parse_duration(&var(name, default))
                .with_context(|| format!("invalid {name}: expected a duration such as 500ms, 30s or 20m"))
        };
        let shutdown_timeout = duration("BATON_WORKER_SHUTDOWN_TIMEOUT", "30s")?;
        let fallback_heartbeat_interval = duration("BATON_WORKER_HEARTBEAT", "10s")?;
        let ack_deadline = duration("BATON_WORKER_ACK_DEADLINE", "20m")?;
        Ok(Self {
            amqp_url: var("BATON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            storage_dir: PathBuf::from(var("BATON_STORAGE_DIR", "./data")),
            model,
            queue_prefix: var("BATON_QUEUE_PREFIX", baton_protocol::queue::DEFAULT_PREFIX),
            prefetch,
            worker_id: std::env::var("BATON_WORKER_ID").unwrap_or_else(|_| default_worker_id()),
            shutdown_timeout,
            fallback_heartbeat_interval,
            ack_deadline,
            cache: CacheConfig::from_env()?,
        })
    }

    /// The queue this worker consumes.
    pub fn queue(&self) -> String {
        baton_protocol::queue::job_queue(&self.queue_prefix, &self.model)
    }
}

/// Parses a positive duration with units (`500ms`, `30s`, `20m`, `2h`); a bare number, zero,
/// or a value that overflows is `None`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    humantime::parse_duration(raw).ok().filter(|d| !d.is_zero())
}

/// `hostname/pid-xxxx`: unique per process start (the suffix tells apart restarts that reuse a
/// pid, as containers do), and recognisable in job records.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}/{}-{:04x}", std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("20m"), Some(Duration::from_secs(1200)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("213503982334602d"), None);
    }
}
