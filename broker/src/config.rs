//! Configuration: environment variables (or flags) with documented defaults.
//!
//! `baton serve --help` lists every setting with its variable and default. A bad value stops
//! Baton at start with a message naming the variable.

use std::{net::SocketAddr, time::Duration};

use std::ffi::OsString;

use clap::{Args, Parser, ValueEnum};

use crate::{
    auth::AuthSettings,
    cleanup::{CleanupConfig, Retention},
    domain::parse_duration,
    quota::QuotaSettings,
    replication::ReplicationSettings,
    storage::StorageSettings,
};

/// Everything `baton serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "BATON_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/baton"
    )]
    pub database_url: String,

    /// Maximum number of pooled Postgres connections.
    #[arg(long, env = "BATON_DATABASE_POOL_SIZE", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: u32,

    /// How long start-up waits for an unreachable Postgres before giving up (`0s`: at once).
    #[arg(long, env = "BATON_DATABASE_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub database_wait: Duration,

    /// RabbitMQ connection URL (vhost as the path, `%2f` for `/`).
    #[arg(
        long,
        env = "BATON_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Prefix of every queue name (`{prefix}jobs.{model}`, `{prefix}events`).
    #[arg(long, env = "BATON_QUEUE_PREFIX", default_value = baton_protocol::queue::DEFAULT_PREFIX,
          value_parser = parse_queue_prefix)]
    pub queue_prefix: String,

    #[command(flatten)]
    pub storage: StorageSettings,

    /// Address the HTTP server listens on.
    #[arg(long, env = "BATON_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: AuthSettings,

    #[command(flatten)]
    pub quotas: QuotaSettings,

    /// Where `/metrics` is also served without credentials (e.g. `0.0.0.0:9090`), for an
    /// in-cluster scraper; on `BATON_LISTEN` it needs the admin role [default: nowhere else].
    #[arg(long, env = "BATON_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub jobs: JobSettings,

    #[command(flatten)]
    pub dispatch: DispatchSettings,

    /// How long a connection may go without complete request headers: after it opens, and
    /// between requests on a kept-alive connection (idle and slow clients are cut off).
    #[arg(long, env = "BATON_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_interval)]
    pub header_read_timeout: Duration,

    /// Most open client connections; beyond it new ones are answered 503 `busy` and closed.
    #[arg(long, env = "BATON_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    #[command(flatten)]
    pub cleanup: CleanupSettings,

    #[command(flatten)]
    pub replication: ReplicationSettings,

    /// How long shutdown waits for in-flight requests before aborting them (e.g. `30s`).
    #[arg(long, env = "BATON_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub log: LogSettings,
}

impl Settings {
    /// Settings from `--flag value` arguments over the defaults (and any `BATON_*` variables
    /// set), as `baton serve` would parse them. For embedding Baton, e.g. in tests.
    pub fn from_flags<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        #[derive(Parser)]
        #[command(args_override_self = true)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        let args = std::iter::once(OsString::from("baton")).chain(args.into_iter().map(Into::into));
        Only::try_parse_from(args).map(|only| only.settings)
    }
}

/// Upload limits, enforced while the bytes stream in.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest accepted file (bytes, or with a unit: `512MiB`, `10GiB`).
    #[arg(long, env = "BATON_MAX_FILE_BYTES", default_value = "10GiB", value_parser = parse_bytes)]
    pub max_file_bytes: u64,

    /// Largest total of all files in one job.
    #[arg(long, env = "BATON_MAX_JOB_BYTES", default_value = "20GiB", value_parser = parse_bytes)]
    pub max_job_bytes: u64,

    /// Most files in one job.
    #[arg(long, env = "BATON_MAX_FILES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_files: u32,

    /// Largest `params` JSON document.
    #[arg(long, env = "BATON_MAX_PARAMS_BYTES", default_value = "64KiB", value_parser = parse_bytes)]
    pub max_params_bytes: u64,

    /// Most uploads in progress at once; beyond it a submit is answered 503 `busy` at once.
    /// A slow upload costs a socket and a few KiB (never a thread), so this can be high.
    #[arg(long, env = "BATON_MAX_UPLOADS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_uploads: u32,

    /// Slowest accepted upload, in bytes per second: a body that sends less than this times
    /// `BATON_UPLOAD_RATE_WINDOW` within any such window is cut with 408 `upload_too_slow`.
    #[arg(long, env = "BATON_UPLOAD_MIN_RATE", default_value = "1KiB", value_parser = parse_bytes)]
    pub upload_min_rate: u64,

    /// The window over which `BATON_UPLOAD_MIN_RATE` is measured; a body that sends nothing
    /// for this long is cut too.
    #[arg(long, env = "BATON_UPLOAD_RATE_WINDOW", default_value = "30s", value_parser = parse_interval)]
    pub upload_rate_window: Duration,
}

impl Limits {
    /// Largest request body: the job's files plus room for part headers and text parts.
    pub fn max_body_bytes(&self) -> u64 {
        let overhead = crate::http::MAX_PART_OVERHEAD * (u64::from(self.max_files) + 8);
        self.max_job_bytes
            .saturating_add(self.max_params_bytes)
            .saturating_add(overhead)
    }

    /// The rules every upload body is held to as it arrives.
    pub fn body_rules(&self) -> crate::http::BodyRules {
        crate::http::BodyRules {
            max_bytes: self.max_body_bytes(),
            max_overhead: crate::http::MAX_PART_OVERHEAD,
            min_rate: self.upload_min_rate,
            window: self.upload_rate_window,
        }
    }
}

/// Defaults for each job (a submission may override the first three) and how unfinished jobs
/// are watched.
#[derive(Debug, Clone, Args)]
pub struct JobSettings {
    /// Attempts a job gets before it fails (a submit may ask for 1 to 20).
    #[arg(long, env = "BATON_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,

    /// How long a job may wait in the queue before a worker starts it (e.g. `24h`).
    #[arg(long, env = "BATON_QUEUE_TIMEOUT", default_value = "24h", value_parser = parse_duration)]
    pub queue_timeout: Duration,

    /// How long one attempt may run (e.g. `6h`).
    #[arg(long, env = "BATON_RUN_TIMEOUT", default_value = "24h", value_parser = parse_duration)]
    pub run_timeout: Duration,

    /// How long a started attempt stays leased without a heartbeat before it counts as lost.
    #[arg(long, env = "BATON_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How often expired leases, timeouts and stuck dispatches are looked for.
    #[arg(long, env = "BATON_RECONCILE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub reconcile_interval: Duration,

    /// A job dispatched this long ago and never started, while its queue is empty, is published
    /// again (its message was lost, or its queue deleted).
    #[arg(long, env = "BATON_REDISPATCH_AFTER", default_value = "2m", value_parser = parse_duration)]
    pub redispatch_after: Duration,
}

/// How the outbox is published to RabbitMQ.
#[derive(Debug, Clone, Args)]
pub struct DispatchSettings {
    /// Most jobs published per round, all confirms in flight together.
    #[arg(long, env = "BATON_DISPATCH_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub dispatch_batch: u32,

    /// How often the outbox is polled when nothing wakes the dispatcher (e.g. `1s`).
    #[arg(long, env = "BATON_DISPATCH_POLL", default_value = "1s", value_parser = parse_duration)]
    pub dispatch_poll: Duration,

    /// Most unacknowledged worker events Baton holds at once.
    #[arg(long, env = "BATON_EVENTS_PREFETCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub events_prefetch: u16,
}

/// Retention of finished jobs, and the cleanup pass that applies it and reconciles the volume
/// with the database.
#[derive(Debug, Clone, Args)]
pub struct CleanupSettings {
    /// How long a finished job and its files are kept after it finished (e.g. `30d`; `0s`
    /// deletes finished jobs at the next pass). The per-status settings below override it.
    #[arg(long, env = "BATON_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,

    /// Retention of succeeded jobs [default: BATON_RETENTION].
    #[arg(long, env = "BATON_RETENTION_SUCCEEDED", value_parser = parse_duration)]
    pub retention_succeeded: Option<Duration>,

    /// Retention of failed jobs [default: BATON_RETENTION].
    #[arg(long, env = "BATON_RETENTION_FAILED", value_parser = parse_duration)]
    pub retention_failed: Option<Duration>,

    /// Retention of cancelled jobs [default: BATON_RETENTION].
    #[arg(long, env = "BATON_RETENTION_CANCELLED", value_parser = parse_duration)]
    pub retention_cancelled: Option<Duration>,

    /// How often a cleanup pass runs (one replica at a time; the first one interval after start).
    #[arg(long, env = "BATON_CLEANUP_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub cleanup_interval: Duration,

    /// Age (by modification time) after which an upload's temp file, or a blob file that no row
    /// knows, counts as abandoned and is removed.
    #[arg(long, env = "BATON_CLEANUP_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub cleanup_grace: Duration,

    /// Most jobs deleted in one transaction.
    #[arg(long, env = "BATON_CLEANUP_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub cleanup_batch: u32,
}

impl CleanupSettings {
    pub fn config(&self) -> CleanupConfig {
        CleanupConfig {
            retention: Retention {
                succeeded: self.retention_succeeded.unwrap_or(self.retention),
                failed: self.retention_failed.unwrap_or(self.retention),
                cancelled: self.retention_cancelled.unwrap_or(self.retention),
            },
            interval: self.cleanup_interval,
            grace: self.cleanup_grace,
            batch: self.cleanup_batch,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// Log filter in `tracing` syntax (e.g. `info,baton=debug`).
    #[arg(long = "log", env = "BATON_LOG", default_value = "info")]
    pub filter: String,

    /// Log format.
    #[arg(long = "log-format", env = "BATON_LOG_FORMAT", default_value = "text")]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses a byte count: a plain integer or one with a unit (`KB`, `MB`, `GB`, `KiB`, `MiB`,
/// `GiB`, `TiB`; `K`, `M`, `G` mean the binary units).
pub fn parse_bytes(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{raw}` is not a byte count such as 1048576 or 512MiB"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{raw}` is too large"))
}

/// A duration that is not zero: how often something repeats.
pub(crate) fn parse_interval(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        Duration::ZERO => Err("an interval must be longer than 0".into()),
        interval => Ok(interval),
    }
}

fn parse_queue_prefix(raw: &str) -> Result<String, String> {
    let ok = raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("use at most 64 characters from [A-Za-z0-9._:-]".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_accept_plain_numbers_and_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("10GiB"), Ok(10 << 30));
        assert_eq!(parse_bytes("2MB"), Ok(2_000_000));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("10XB").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn intervals_are_longer_than_zero() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_interval("0s").is_err());
    }

    #[test]
    fn upload_rules_follow_the_limits() {
        let settings = Settings::from_flags(["--upload-min-rate", "2KiB", "--upload-rate-window", "10s"]).unwrap();
        let rules = settings.limits.body_rules();
        assert_eq!(rules.min_rate, 2048);
        assert_eq!(rules.window, Duration::from_secs(10));
        assert!(rules.max_bytes > settings.limits.max_job_bytes);
        assert!(Settings::from_flags(["--upload-rate-window", "0s"]).is_err());
    }

    #[test]
    fn each_terminal_status_falls_back_to_the_common_retention() {
        let settings = Settings::from_flags(["--retention", "7d", "--retention-failed", "0s"]).unwrap();
        let cleanup = settings.cleanup.config();
        assert_eq!(cleanup.retention.succeeded, Duration::from_secs(7 * 86_400));
        assert_eq!(cleanup.retention.failed, Duration::ZERO);
        assert_eq!(cleanup.retention.cancelled, Duration::from_secs(7 * 86_400));
    }
}
