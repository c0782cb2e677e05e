//! The `job_events` table: each job's timeline.

use serde_json::{Value, json};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::domain::{JobId, Owner, Sha256Hex, TimelineKind};

#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: OffsetDateTime,
    pub kind: TimelineKind,
    pub attempt: Option<i32>,
    pub worker: Option<String>,
    pub detail: Option<Value>,
}

pub async fn record(
    conn: &mut PgConnection,
    job_id: JobId,
    kind: TimelineKind,
    attempt: Option<i32>,
    worker: Option<&str>,
    detail: Option<Value>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO job_events (job_id, kind, attempt, worker, detail) VALUES ($1, $2, $3, $4, $5)",
        job_id as _,
        kind as _,
        attempt,
        worker,
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An event that happened at `at` (before the transaction that records it).
pub async fn record_at(
    conn: &mut PgConnection,
    job_id: JobId,
    kind: TimelineKind,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO job_events (job_id, kind, at) VALUES ($1, $2, $3)",
        job_id as _,
        kind as _,
        at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The same event for many jobs at once (the dispatcher's batches).
pub async fn record_many(
    db: impl PgExecutor<'_>,
    job_ids: &[JobId],
    attempts: &[i32],
    kind: TimelineKind,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO job_events (job_id, attempt, kind, at)
         SELECT job_id, attempt, $3, $4 FROM UNNEST($1::uuid[], $2::int[]) AS t(job_id, attempt)",
        job_ids as _,
        attempts,
        kind as _,
        at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Heartbeats are folded into one entry per attempt (count and time of the latest), so an
/// hours-long job's timeline stays readable.
pub async fn heartbeat(conn: &mut PgConnection, job_id: JobId, attempt: i32, worker: &str) -> sqlx::Result<()> {
    let updated = sqlx::query!(
        "UPDATE job_events
         SET at = clock_timestamp(),
             detail = jsonb_build_object('count', COALESCE((detail->>'count')::int, 0) + 1)
         WHERE job_id = $1 AND kind = $3 AND attempt = $2",
        job_id as _,
        attempt,
        TimelineKind::Heartbeat as _,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        record(
            conn,
            job_id,
            TimelineKind::Heartbeat,
            Some(attempt),
            Some(worker),
            Some(json!({"count": 1})),
        )
        .await?;
    }
    Ok(())
}

pub async fn list(db: impl PgExecutor<'_>, job_id: JobId) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        "SELECT at, kind, attempt, worker, detail FROM job_events WHERE job_id = $1 ORDER BY at, id",
        job_id as _,
    )
    .fetch_all(db)
    .await
}

/// Records `file_missing` in the timeline of every unfinished job that uses the blob. Returns how
/// many entries were written.
pub async fn record_file_missing(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<u64> {
    let recorded = sqlx::query!(
        "INSERT INTO job_events (job_id, kind, attempt, detail)
         SELECT f.job_id, $3, j.attempt,
                jsonb_build_object('input', f.name, 'sha256', f.sha256,
                                   'message', 'the input''s file is missing from the volume')
         FROM files f JOIN jobs j ON j.id = f.job_id
         WHERE f.owner = $1 AND f.sha256 = $2 AND j.status IN ('queued', 'running')",
        owner.as_str(),
        sha256.as_str(),
        TimelineKind::FileMissing as _,
    )
    .execute(conn)
    .await?;
    Ok(recorded.rows_affected())
}
