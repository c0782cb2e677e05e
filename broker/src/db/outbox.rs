//! The `outbox` table: job attempts waiting to be published.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

use super::interval;

use crate::domain::{JobId, TimelineKind};

/// A claimed outbox entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub job_id: JobId,
    pub attempt: i32,
    pub tries: i32,
    /// Until when this claim hides the entry; identifies the claim when releasing it.
    pub claimed_until: time::OffsetDateTime,
}

/// Records the intent to publish `attempt` of a job, `delay` from now.
pub async fn enqueue(conn: &mut PgConnection, job_id: JobId, attempt: i32, delay: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO outbox (job_id, attempt, available_at) VALUES ($1, $2, now() + $3::interval)
         ON CONFLICT (job_id) DO UPDATE
         SET attempt = EXCLUDED.attempt, available_at = EXCLUDED.available_at, tries = 0",
        job_id as _,
        attempt,
        interval(delay),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due entries for `lease`: they become invisible to other dispatchers
/// until the lease runs out, so a dispatcher that dies mid-publish loses nothing.
pub async fn claim(db: impl PgExecutor<'_>, limit: i64, lease: Duration) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as!(
        Entry,
        "UPDATE outbox SET available_at = now() + $2::interval, tries = tries + 1
         WHERE job_id IN (
             SELECT job_id FROM outbox WHERE available_at <= now()
             ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING job_id, attempt, tries, available_at AS claimed_until",
        limit,
        interval(lease),
    )
    .fetch_all(db)
    .await
}

/// Makes claimed entries due again at once (a round failed midway), unless someone else has
/// claimed them since.
pub async fn release(db: impl PgExecutor<'_>, entries: &[Entry]) -> sqlx::Result<()> {
    let (ids, until): (Vec<JobId>, Vec<time::OffsetDateTime>) =
        entries.iter().map(|e| (e.job_id, e.claimed_until)).unzip();
    sqlx::query!(
        "UPDATE outbox SET available_at = now()
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS claim(job_id, until)
         WHERE outbox.job_id = claim.job_id AND outbox.available_at = claim.until",
        &ids as _,
        &until,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Removes entries whose attempt was published (or is no longer wanted).
pub async fn complete(db: impl PgExecutor<'_>, entries: &[Entry]) -> sqlx::Result<()> {
    let (ids, attempts): (Vec<JobId>, Vec<i32>) = entries.iter().map(|e| (e.job_id, e.attempt)).unzip();
    sqlx::query!(
        "DELETE FROM outbox o USING UNNEST($1::uuid[], $2::int[]) AS done(job_id, attempt)
         WHERE o.job_id = done.job_id AND o.attempt = done.attempt",
        &ids as _,
        &attempts,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Makes entries due again after `delay` (a failed publish).
pub async fn postpone(db: impl PgExecutor<'_>, job_ids: &[JobId], delay: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE outbox SET available_at = now() + $2::interval WHERE job_id = ANY($1)",
        job_ids as _,
        interval(delay),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Number of entries waiting, for readiness and metrics.
pub async fn backlog(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(db)
        .await
}

/// Drops a job's pending publication (it was cancelled or timed out).
pub async fn remove(conn: &mut PgConnection, job_id: JobId) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM outbox WHERE job_id = $1", job_id as _)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues the current attempt of these jobs for publishing again, unless already queued.
pub async fn enqueue_again(db: impl PgExecutor<'_>, job_ids: &[JobId]) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "WITH again AS (
             UPDATE jobs SET dispatched_at = NULL, updated_at = now()
             WHERE id = ANY($1) AND status = 'queued'
             RETURNING id, attempt)
         INSERT INTO outbox (job_id, attempt) SELECT id, attempt FROM again
         ON CONFLICT (job_id) DO NOTHING",
        job_ids as _,
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Everything a confirmed publish records, in one round trip: the outbox entries go, the
/// attempts are marked dispatched (unless the job moved on), and the timeline gets a
/// `dispatched` entry at `sent_at`.
pub async fn record_published(
    db: impl PgExecutor<'_>,
    job_ids: &[JobId],
    attempts: &[i32],
    sent_at: time::OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "WITH sent AS (SELECT * FROM UNNEST($1::uuid[], $2::int[]) AS t(job_id, attempt)),
         done AS (
             DELETE FROM outbox o USING sent WHERE o.job_id = sent.job_id AND o.attempt = sent.attempt),
         marked AS (
             UPDATE jobs SET dispatched_at = now(), updated_at = now() FROM sent
             WHERE jobs.id = sent.job_id AND jobs.attempt = sent.attempt AND jobs.dispatched_at IS NULL)
         INSERT INTO job_events (job_id, attempt, kind, at) SELECT job_id, attempt, $4, $3 FROM sent",
        job_ids as _,
        attempts,
        sent_at,
        TimelineKind::Dispatched as _,
    )
    .execute(db)
    .await?;
    Ok(())
}
