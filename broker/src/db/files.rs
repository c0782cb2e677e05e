//! The `files` table: a job's inputs, each referring to a blob.

use crate::domain::{FileId, JobId, Owner, Sha256Hex};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

/// A job's input file joined with its blob.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: FileId,
    pub job_id: JobId,
    pub owner: String,
    pub position: i32,
    pub name: String,
    pub filename: String,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    pub md5: String,
    pub created_at: OffsetDateTime,
    /// The store that holds the blob's bytes.
    pub store: String,
}

pub struct NewFile<'a> {
    pub id: FileId,
    pub job_id: JobId,
    pub owner: &'a Owner,
    pub position: i32,
    pub name: &'a str,
    pub filename: &'a str,
    pub sha256: &'a Sha256Hex,
    pub content_type: &'a str,
}

pub async fn insert(conn: &mut PgConnection, file: &NewFile<'_>) -> sqlx::Result<OffsetDateTime> {
    sqlx::query_scalar!(
        "INSERT INTO files (id, job_id, owner, position, name, filename, sha256, content_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING created_at",
        file.id as _,
        file.job_id as _,
        file.owner.as_str(),
        file.position,
        file.name,
        file.filename,
        file.sha256.as_str(),
        file.content_type,
    )
    .fetch_one(conn)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner, id: FileId) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as!(
        FileRow,
        r#"SELECT f.id, f.job_id, f.owner, f.position, f.name, f.filename, f.sha256,
                  f.content_type, b.size, b.md5, f.created_at, b.store
           FROM files f JOIN blobs b ON b.owner = f.owner AND b.sha256 = f.sha256
           WHERE f.owner = $1 AND f.id = $2"#,
        owner.as_str(),
        id as _,
    )
    .fetch_optional(db)
    .await
}

/// The files of several jobs, ordered by job and position.
pub async fn of_jobs(db: impl PgExecutor<'_>, job_ids: &[JobId]) -> sqlx::Result<Vec<FileRow>> {
    sqlx::query_as!(
        FileRow,
        r#"SELECT f.id, f.job_id, f.owner, f.position, f.name, f.filename, f.sha256,
                  f.content_type, b.size, b.md5, f.created_at, b.store
           FROM files f JOIN blobs b ON b.owner = f.owner AND b.sha256 = f.sha256
           WHERE f.job_id = ANY($1)
           ORDER BY f.job_id, f.position"#,
        job_ids as _,
    )
    .fetch_all(db)
    .await
}
