//! What a model implementation provides.

use std::{future::Future, path::PathBuf};

use baton_protocol::{FileRef, JobMessage};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A job ready to run: the message and, per file, a checked path under the mount.
#[derive(Debug, Clone)]
pub struct Job {
    pub message: JobMessage,
    pub inputs: Vec<Input>,
    /// Fires when Baton asks to stop this attempt (cancelled, timed out, lease lost). The
    /// runtime then drops the handler's future; handlers doing blocking work should check it.
    pub cancel: CancellationToken,
}

/// An input file: its reference and where to read it.
#[derive(Debug, Clone)]
pub struct Input {
    pub file: FileRef,
    pub path: PathBuf,
}

/// Why a job failed, as reported to Baton and the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    pub code: String,
    pub message: String,
    /// Whether another attempt might succeed (a transient fault rather than a bad input).
    pub retryable: bool,
}

impl JobError {
    /// A failure that another attempt will not fix.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that may go away (out of memory, a flaky device).
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }
}

/// Runs a model on a job. Called concurrently up to the prefetch limit.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, job: Job) -> impl Future<Output = Result<Value, JobError>> + Send;
}
