//! JSON shapes of the API.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::openapi::{
    form,
    schemas::{self, Failure, Id, Model},
};
use crate::{
    db::{files::FileRow, jobs::JobRow},
    domain::{FileId, JobId, JobStatus, TimelineKind},
};

/// A job: what was asked, where it is, and its outcome. Every property is always present;
/// those that do not apply yet are null.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[schema(value_type = Id)]
    pub id: JobId,
    pub status: JobStatus,
    /// The owner the job belongs to.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub owner: String,
    /// Who submitted it: `key:<key id>`, `oidc:<token subject>`, or `anonymous` (authentication
    /// off); null for jobs submitted before authentication existed.
    #[schema(required = true)]
    pub submitted_by: Option<String>,
    #[schema(value_type = Model)]
    pub model: String,
    #[schema(schema_with = form::params)]
    pub params: Value,
    /// The current attempt, starting at 1. Events of any other attempt are ignored.
    pub attempt: i32,
    /// Attempts used so far (since the last manual retry), counting the current one.
    pub attempts_used: i32,
    pub max_attempts: i32,
    /// How long the job may wait in the queue before a worker starts it.
    pub queue_timeout_ms: i64,
    /// How long one attempt may run.
    pub run_timeout_ms: i64,
    /// The worker that ran (or is running) the current attempt.
    #[schema(required = true)]
    pub worker: Option<String>,
    /// Until when the running attempt's lease holds without another heartbeat.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub lease_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub heartbeat_at: Option<OffsetDateTime>,
    /// The client's `Idempotency-Key`, if it sent one.
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the current attempt was queued (at submit, or at its retry).
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// When RabbitMQ confirmed the current attempt's message.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub dispatched_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub finished_at: Option<OffsetDateTime>,
    pub files: Vec<FileView>,
    #[schema(schema_with = result_schema, required = true)]
    pub result: Option<Value>,
    /// The last failure: why the job failed or was cancelled, or why the previous attempt
    /// failed while the job is retried.
    #[schema(value_type = Option<Failure>, required = true)]
    pub error: Option<Value>,
}

fn result_schema() -> utoipa::openapi::schema::Object {
    schemas::any_json(
        "The model's output once the job succeeded, any JSON value exactly as the worker returned it; \
         null before.",
    )
}

/// An input file of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    #[schema(value_type = Id)]
    pub id: FileId,
    #[schema(value_type = Id)]
    pub job_id: JobId,
    /// The input's name (the multipart part name).
    pub name: String,
    /// The client's file name, sanitised.
    pub filename: String,
    #[schema(minimum = 0)]
    pub size: i64,
    /// Sniffed from the bytes.
    pub content_type: String,
    /// Lowercase hex; also the download's `ETag`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// Lowercase hex.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub md5: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where to download the bytes.
    pub content_url: String,
}

/// One entry of a job's timeline. Its schema, one per kind, is in `openapi::timeline`.
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: TimelineKind,
    pub attempt: Option<i32>,
    pub worker: Option<String>,
    pub detail: Option<Value>,
}

/// A job's timeline, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    #[schema(value_type = Id)]
    pub job_id: JobId,
    pub events: Vec<EventView>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(value_type = Option<Id>, required = true)]
    pub next_cursor: Option<String>,
}

impl JobView {
    pub fn new(job: JobRow, files: Vec<FileRow>) -> Self {
        let attempts_used = job.attempts_used();
        Self {
            id: job.id,
            status: job.status,
            owner: job.owner,
            submitted_by: job.submitted_by,
            model: job.model,
            params: job.params,
            attempt: job.attempt,
            attempts_used,
            max_attempts: job.max_attempts,
            queue_timeout_ms: job.queue_timeout_ms,
            run_timeout_ms: job.run_timeout_ms,
            worker: job.worker,
            lease_expires_at: job.lease_expires_at,
            heartbeat_at: job.heartbeat_at,
            idempotency_key: job.idempotency_key,
            created_at: job.created_at,
            updated_at: job.updated_at,
            queued_at: job.queued_at,
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
