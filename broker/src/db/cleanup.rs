//! Queries of the cleanup pass: expired jobs, unreferenced and missing blobs, the single-runner
//! lock. See `cleanup` for the order they run in and why it is safe against submissions.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::{JobStatus, Owner, Sha256Hex};

/// Key of the session-level advisory lock held by the one replica running a pass.
const PASS_LOCK: i64 = 0x6261_746f_6e5f_636c; // "baton_cl"

/// A blob row as the pass sees it.
#[derive(Debug, Clone)]
pub struct BlobKey {
    pub owner: String,
    pub sha256: String,
    pub size: i64,
    pub missing: bool,
}

impl BlobKey {
    /// The typed owner and digest. Rows only hold values their CHECKs and the submit path
    /// accepted, so a row that does not parse is skipped by the caller.
    pub fn parsed(&self) -> Option<(Owner, Sha256Hex)> {
        Some((Owner::parse(&self.owner)?, Sha256Hex::parse(&self.sha256)?))
    }
}

/// Takes the pass lock on this session if no other session holds it.
pub async fn try_lock_pass(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, PASS_LOCK)
        .fetch_one(conn)
        .await
}

/// Jobs of `status` that finished more than `retention_ms` ago, oldest first, locked
/// (skipping any another transaction holds, e.g. a retry in progress).
pub async fn lock_expired_jobs(
    conn: &mut PgConnection,
    status: JobStatus,
    retention_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs
         WHERE status = $1 AND finished_at < now() - make_interval(secs => $2::bigint / 1000.0)
         ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        status.as_str(),
        retention_ms,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Deletes jobs; their files, timeline and outbox entries go with them (ON DELETE CASCADE).
/// Returns the number of files deleted.
pub async fn delete_jobs(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<i64> {
    let files = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM files WHERE job_id = ANY($1)"#, ids)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query!("DELETE FROM jobs WHERE id = ANY($1)", ids)
        .execute(&mut *conn)
        .await?;
    Ok(files)
}

/// `(jobs, files)` that [`lock_expired_jobs`] would return and [`delete_jobs`] delete, for a
/// dry run.
pub async fn count_expired_jobs(
    db: impl PgExecutor<'_>,
    status: JobStatus,
    retention_ms: i64,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(DISTINCT j.id) AS "jobs!", count(f.id) AS "files!"
           FROM jobs j LEFT JOIN files f ON f.job_id = j.id
           WHERE j.status = $1 AND j.finished_at < now() - make_interval(secs => $2::bigint / 1000.0)"#,
        status.as_str(),
        retention_ms,
    )
    .fetch_one(db)
    .await?;
    Ok((row.jobs, row.files))
}

/// `(blobs, bytes)` that no file would refer to once the expired jobs are gone, for a dry run:
/// the same rule as the three retentions, applied to every job at once.
pub async fn count_blobs_freed(
    db: impl PgExecutor<'_>,
    succeeded_ms: i64,
    failed_ms: i64,
    cancelled_ms: i64,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "blobs!", COALESCE(sum(size), 0)::bigint AS "bytes!"
           FROM blobs b
           WHERE NOT EXISTS (
               SELECT 1 FROM files f JOIN jobs j ON j.id = f.job_id
               WHERE f.owner = b.owner AND f.sha256 = b.sha256
                 AND NOT (
                     (j.status = 'succeeded' AND j.finished_at < now() - make_interval(secs => $1::bigint / 1000.0))
                     OR (j.status = 'failed' AND j.finished_at < now() - make_interval(secs => $2::bigint / 1000.0))
                     OR (j.status = 'cancelled' AND j.finished_at < now() - make_interval(secs => $3::bigint / 1000.0))
                 )
           )"#,
        succeeded_ms,
        failed_ms,
        cancelled_ms,
    )
    .fetch_one(db)
    .await?;
    Ok((row.blobs, row.bytes))
}

/// The next page of blob rows that no file refers to, after `(owner, sha256)` in key order.
pub async fn unreferenced_blobs(
    db: impl PgExecutor<'_>,
    after: (&str, &str),
    limit: i64,
) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!" FROM blobs b
           WHERE (owner, sha256) > ($1, $2)
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.owner = b.owner AND f.sha256 = b.sha256)
           ORDER BY owner, sha256 LIMIT $3"#,
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Locks a blob row `FOR UPDATE`, unless a submission holds it (`FOR KEY SHARE`, until its
/// commit) or it is gone. Returns its size.
pub async fn lock_blob(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT size FROM blobs WHERE owner = $1 AND sha256 = $2 FOR UPDATE SKIP LOCKED",
        owner.as_str(),
        sha256.as_str(),
    )
    .fetch_optional(conn)
    .await
}

/// Whether any file refers to the blob. Run as a statement of its own after [`lock_blob`], so
/// its snapshot includes every file committed before the lock was taken.
pub async fn is_referenced(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM files WHERE owner = $1 AND sha256 = $2) AS "referenced!""#,
        owner.as_str(),
        sha256.as_str(),
    )
    .fetch_one(conn)
    .await
}

pub async fn delete_blob(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM blobs WHERE owner = $1 AND sha256 = $2",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a placeholder row for a blob key that has no row, in a transaction the caller rolls
/// back: while it is uncommitted, every upload of that content waits at its own insert, so no
/// upload can claim or place the file. Waits at most `lock_timeout_ms` for an upload already
/// inserting the same key (then fails with `lock_not_available`). Returns false when a
/// committed row exists: the file belongs to it and must stay.
pub async fn reserve_blob_key(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    lock_timeout_ms: i64,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT set_config('lock_timeout', $1, true) AS "set!""#,
        format!("{lock_timeout_ms}ms")
    )
    .fetch_one(&mut *conn)
    .await?;
    let reserved = sqlx::query_scalar!(
        r#"INSERT INTO blobs (owner, sha256, size, md5) VALUES ($1, $2, 0, repeat('0', 32))
           ON CONFLICT (owner, sha256) DO NOTHING
           RETURNING true AS "reserved!""#,
        owner.as_str(),
        sha256.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(reserved.is_some())
}

/// The next page of all blob rows, after `(owner, sha256)` in key order.
pub async fn blobs_after(db: impl PgExecutor<'_>, after: (&str, &str), limit: i64) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!" FROM blobs
           WHERE (owner, sha256) > ($1, $2)
           ORDER BY owner, sha256 LIMIT $3"#,
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Marks a locked blob row as missing its file, and records `file_missing` in the timeline of
/// every unfinished job that uses it. Returns how many timeline entries were written, or `None`
/// when the row was already marked (and nothing was written).
pub async fn mark_missing(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<Option<u64>> {
    let updated = sqlx::query!(
        "UPDATE blobs SET missing_at = now() WHERE owner = $1 AND sha256 = $2 AND missing_at IS NULL",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    let marked = sqlx::query!(
        "INSERT INTO job_events (job_id, kind, attempt, detail)
         SELECT f.job_id, 'file_missing', j.attempt,
                jsonb_build_object('input', f.name, 'sha256', f.sha256,
                                   'message', 'the input''s file is missing from the volume')
         FROM files f JOIN jobs j ON j.id = f.job_id
         WHERE f.owner = $1 AND f.sha256 = $2 AND j.status IN ('queued', 'running')",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(Some(marked.rows_affected()))
}

/// Clears the missing mark of a blob whose file is back.
pub async fn clear_missing(db: impl PgExecutor<'_>, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE blobs SET missing_at = NULL WHERE owner = $1 AND sha256 = $2 AND missing_at IS NOT NULL",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Of the given `(owner, sha256)` pairs, those that have a committed row.
pub async fn existing_blobs(
    db: impl PgExecutor<'_>,
    owners: &[String],
    sha256s: &[String],
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        r#"SELECT b.owner, b.sha256 FROM blobs b
           JOIN UNNEST($1::text[], $2::text[]) AS c(owner, sha256)
             ON c.owner = b.owner AND c.sha256 = b.sha256"#,
        owners,
        sha256s,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.owner, r.sha256)).collect())
}

/// Blob rows currently marked missing, for metrics.
pub async fn count_missing(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM blobs WHERE missing_at IS NOT NULL"#)
        .fetch_one(db)
        .await
}
