//! The `files` and `blobs` tables.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Owner, Sha256Hex};

/// A job's input file joined with its blob.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub owner: String,
    pub position: i32,
    pub name: String,
    pub filename: String,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    pub md5: String,
    pub created_at: OffsetDateTime,
}

/// Outcome of [`claim_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobClaim {
    /// This transaction inserted the row: the bytes must be put in place before commit.
    Inserted,
    /// The row was committed earlier and is now locked against deletion until commit.
    Existing,
}

/// Inserts the blob row, or locks the existing one against deletion (`FOR KEY SHARE`, which
/// cleanup's `FOR UPDATE` waits for) until the transaction ends. Loops in the rare case that
/// the existing row is deleted between the insert attempt and the lock.
pub async fn claim_blob(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    size: u64,
    md5: &str,
) -> sqlx::Result<BlobClaim> {
    let size = i64::try_from(size).expect("file sizes fit in i64");
    loop {
        let inserted = sqlx::query_scalar!(
            "INSERT INTO blobs (owner, sha256, size, md5) VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner, sha256) DO NOTHING
             RETURNING true AS \"inserted!\"",
            owner.as_str(),
            sha256.as_str(),
            size,
            md5,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if inserted.is_some() {
            return Ok(BlobClaim::Inserted);
        }
        let locked = sqlx::query_scalar!(
            "SELECT true AS \"locked!\" FROM blobs WHERE owner = $1 AND sha256 = $2 FOR KEY SHARE",
            owner.as_str(),
            sha256.as_str(),
        )
        .fetch_optional(&mut *conn)
        .await?;
        if locked.is_some() {
            return Ok(BlobClaim::Existing);
        }
    }
}

pub struct NewFile<'a> {
    pub id: Uuid,
    pub job_id: Uuid,
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
        file.id,
        file.job_id,
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

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner, id: Uuid) -> sqlx::Result<Option<FileRow>> {
    sqlx::query_as!(
        FileRow,
        r#"SELECT f.id, f.job_id, f.owner, f.position, f.name, f.filename, f.sha256,
                  f.content_type, b.size, b.md5, f.created_at
           FROM files f JOIN blobs b ON b.owner = f.owner AND b.sha256 = f.sha256
           WHERE f.owner = $1 AND f.id = $2"#,
        owner.as_str(),
        id,
    )
    .fetch_optional(db)
    .await
}

/// The files of several jobs, ordered by job and position.
pub async fn of_jobs(db: impl PgExecutor<'_>, job_ids: &[Uuid]) -> sqlx::Result<Vec<FileRow>> {
    sqlx::query_as!(
        FileRow,
        r#"SELECT f.id, f.job_id, f.owner, f.position, f.name, f.filename, f.sha256,
                  f.content_type, b.size, b.md5, f.created_at
           FROM files f JOIN blobs b ON b.owner = f.owner AND b.sha256 = f.sha256
           WHERE f.job_id = ANY($1)
           ORDER BY f.job_id, f.position"#,
        job_ids,
    )
    .fetch_all(db)
    .await
}
