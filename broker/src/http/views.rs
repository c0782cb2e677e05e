//! JSON shapes of the API.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::{files::FileRow, jobs::JobRow},
    domain::JobStatus,
};

/// A job: what was asked, where it is, and its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub status: JobStatus,
    pub model: String,
    /// The parameters as submitted.
    #[schema(value_type = Object)]
    pub params: Value,
    /// The current attempt, starting at 1.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The worker that ran (or is running) the current attempt.
    pub worker: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When RabbitMQ confirmed the current attempt's message.
    #[serde(with = "time::serde::rfc3339::option")]
    pub dispatched_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub files: Vec<FileView>,
    /// The model's output once the job succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// `{code, message}` of the last failure.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// An input file of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub job_id: Uuid,
    /// The input's name (the multipart part name).
    pub name: String,
    /// The client's file name, sanitised.
    pub filename: String,
    pub size: i64,
    /// Sniffed from the bytes.
    pub content_type: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex.
    pub md5: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where to download the bytes.
    pub content_url: String,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl JobView {
    pub fn new(job: JobRow, files: Vec<FileRow>) -> Self {
        Self {
            id: job.id,
            status: JobStatus::parse(&job.status).unwrap_or(JobStatus::Queued),
            model: job.model,
            params: job.params,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            worker: job.worker,
            created_at: job.created_at,
            updated_at: job.updated_at,
            dispatched_at: job.dispatched_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            files: files.into_iter().map(FileView::from).collect(),
            result: job.result,
            error: job.error,
        }
    }
}

impl From<FileRow> for FileView {
    fn from(file: FileRow) -> Self {
        Self {
            content_url: format!("/v1/files/{}/content", file.id),
            id: file.id,
            job_id: file.job_id,
            name: file.name,
            filename: file.filename,
            size: file.size,
            content_type: file.content_type,
            sha256: file.sha256,
            md5: file.md5,
            created_at: file.created_at,
        }
    }
}
