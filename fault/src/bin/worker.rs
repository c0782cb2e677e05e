//! `baton-fault-worker`: the worker the fault suite runs, built on the `baton-worker` runtime.
//!
//! It serves jobs like the example model (inputs re-hashed against their recorded SHA-256, then
//! `sleep_ms` of "inference"), with one addition: a job whose params hold `"crash": true` aborts
//! the whole process the moment it starts, as a model that segfaults on a poison input would.
//!
//! Each completed execution is appended as one line (`job_id attempt worker`) to the file named
//! by `BATON_FAULT_EXECUTIONS`, so the suite can tell how often a job really ran.
//!
//! Configured like `baton-example-worker` (`BATON_AMQP_URL`, `BATON_STORAGE_DIR`,
//! `BATON_WORKER_MODEL`, `BATON_QUEUE_PREFIX`, `BATON_WORKER_PREFETCH`, `BATON_WORKER_ID`,
//! `BATON_WORKER_HEARTBEAT`, `BATON_LOG`).

use std::{io::Write, path::PathBuf};

use baton_worker::{Handler, Job, JobError, Runtime, WorkerConfig, example::ExampleHandler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

struct FaultHandler {
    worker: String,
    executions: Option<PathBuf>,
}

impl Handler for FaultHandler {
    async fn handle(&self, job: Job) -> Result<Value, JobError> {
        let (job_id, attempt) = (job.message.job_id, job.message.attempt);
        if job.message.params.get("crash").and_then(Value::as_bool) == Some(true) {
            tracing::error!(%job_id, attempt, "poison job: crashing the worker process");
            std::process::abort();
        }
        let mut result = ExampleHandler.handle(job).await?;
        if let Some(object) = result.as_object_mut() {
            object.insert("worker".into(), Value::String(self.worker.clone()));
        }
        if let Some(path) = &self.executions {
            let line = format!("{job_id} {attempt} {}\n", self.worker);
            // One short write to a file opened for appending: lines from several workers do not
            // interleave.
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(line.as_bytes()));
            if let Err(e) = written {
                tracing::warn!(error = %e, "could not record the execution");
            }
        }
        Ok(result)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = std::env::var("BATON_LOG").unwrap_or_else(|_| "info".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = WorkerConfig::from_env()?;
    let handler = FaultHandler {
        worker: config.worker_id.clone(),
        executions: std::env::var_os("BATON_FAULT_EXECUTIONS").map(PathBuf::from),
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        stop.cancel();
    });
    Runtime::new(config).run(handler, cancel).await
}
