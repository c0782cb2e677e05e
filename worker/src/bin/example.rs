//! `baton-example-worker`: serves the example model (see `baton_worker::example`).
//!
//! Configured by `BATON_AMQP_URL`, `BATON_STORAGE_DIR` (its read-only view of the volume),
//! `BATON_WORKER_MODEL` (default `example`), `BATON_QUEUE_PREFIX`, `BATON_WORKER_PREFETCH`,
//! `BATON_WORKER_ID`, `BATON_WORKER_SHUTDOWN_TIMEOUT`, `BATON_LOG`, and for inputs in object
//! storage `BATON_CACHE_DIR`, `BATON_CACHE_MAX_BYTES` and `BATON_OBJECT_ACCESS` (see
//! `baton_worker::cache::CacheConfig`).
//!
//! Exits with status 1 and a one-line error on stderr when its configuration is invalid or
//! RabbitMQ refuses it access (see `Runtime::run`); other failures are retried.

use std::process::ExitCode;

use baton_worker::{Runtime, WorkerConfig, example::ExampleHandler};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = std::env::var("BATON_LOG").unwrap_or_else(|_| "info".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = WorkerConfig::from_env()?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing running jobs");
        stop.cancel();
    });
    Runtime::new(config).run(ExampleHandler, cancel).await
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
