//! The command line, and the sizes and durations of a run.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "baton-bench",
    about = "Benchmarks Baton against this machine's limits and against Celery"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build Baton, start it with a fresh database, queues and volume, and run every
    /// measurement; print one table and optionally write JSON.
    All(Options),
}

#[derive(Args, Clone)]
pub struct Options {
    /// A small run (seconds) that proves the suite works; its figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Postgres server (no database): a database is created for the run and dropped after.
    #[arg(
        long,
        env = "BATON_BENCH_DATABASE_SERVER",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub database_server: String,
    /// RabbitMQ URL; the run's queues get a unique prefix and are deleted after.
    #[arg(
        long,
        env = "BATON_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Where the run's storage directory and logs go (default: bench/.run in the workspace).
    /// Use a directory on the filesystem Baton's volume would be on.
    #[arg(long, env = "BATON_BENCH_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Keep the run's directory (storage and logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// Python used to create the Celery virtualenv.
    #[arg(long, env = "BATON_BENCH_PYTHON", default_value = "python3")]
    pub python: String,
    /// Example-worker processes for the end-to-end figures.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Prefetch of each example worker.
    #[arg(long, default_value_t = 16)]
    pub worker_prefetch: u16,
    /// Queue type of Celery's queue: `quorum` (as Baton's) or `classic` (Celery's default).
    #[arg(long, default_value = "quorum")]
    pub celery_queue_type: String,
    /// Run only these parts (comma-separated): large, medium, store-large, store-medium, small,
    /// e2e, peer, slow.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Part>,
    /// Extra environment for Baton, for experiments (repeatable): `--baton-env KEY=VALUE`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub baton_env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Large,
    Medium,
    /// The large upload on S3 (moto) and Azure Blob (Azurite), next to their raw multipart put.
    StoreLarge,
    /// The 1 MiB uploads on S3 (moto) and Azure Blob (Azurite), next to their raw puts.
    StoreMedium,
    Small,
    E2e,
    Peer,
    Slow,
}

pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not KEY=VALUE"))
}

impl Options {
    pub fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Sizes and durations of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    pub large_bytes: u64,
    pub hash_bytes: u64,
    pub phase: Duration,
    pub floor: Duration,
    pub clients: usize,
    pub floor_threads: usize,
    /// Alternating slices of the volume floor and Baton in the small-jobs part.
    pub small_rounds: usize,
    /// Alternating slices of Baton with authentication off and with it on, in the small-jobs part.
    pub auth_rounds: usize,
    /// Length of each of those slices.
    pub auth_slice: Duration,
    pub pg_connections: usize,
    pub e2e_jobs: usize,
    pub peer_client_procs: usize,
    pub peer_concurrency: usize,
}

impl Scale {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                large_bytes: 128 << 20,
                hash_bytes: 64 << 20,
                phase: Duration::from_millis(1500),
                floor: Duration::from_secs(1),
                clients: 64,
                floor_threads: 16,
                small_rounds: 1,
                auth_rounds: 1,
                auth_slice: Duration::from_secs(1),
                pg_connections: 64,
                e2e_jobs: 64,
                peer_client_procs: 2,
                peer_concurrency: 2,
            }
        } else {
            Self {
                large_bytes: 2 << 30,
                hash_bytes: 1 << 30,
                phase: Duration::from_secs(10),
                floor: Duration::from_millis(2500),
                clients: 64,
                floor_threads: 16,
                small_rounds: 4,
                auth_rounds: 8,
                auth_slice: Duration::from_millis(2500),
                pg_connections: 64,
                e2e_jobs: 2000,
                peer_client_procs: 4,
                peer_concurrency: 2,
            }
        }
    }
}
