//! The `jobs` table. Every state change is a guarded UPDATE on a row the caller has locked.
//!
//! Queries that return whole jobs select `*` into [`JobRow`], whose fields are the table's
//! columns: the column list is written once, in `sql/`. Statuses a query always means are SQL
//! literals (partial indexes match on them); statuses that vary are bound as [`JobStatus`].
//! Durations are bound as intervals ([`super::interval`]); the stored `*_ms` columns become
//! intervals in SQL with `* interval '1 millisecond'`.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use super::interval;
use time::OffsetDateTime;

use crate::domain::{JobId, JobStatus, Owner};

/// A job as stored: every column of `jobs`, by name.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: JobId,
    pub owner: String,
    pub model: String,
    pub params: Value,
    pub status: JobStatus,
    pub attempt: i32,
    pub first_attempt: i32,
    pub max_attempts: i32,
    pub redeliveries: i32,
    pub queue_timeout_ms: i64,
    pub run_timeout_ms: i64,
    pub worker: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub heartbeat_at: Option<OffsetDateTime>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub queued_at: OffsetDateTime,
    pub dispatched_at: Option<OffsetDateTime>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// `key:<id>`, `oidc:<subject>` or `anonymous`; none for jobs from before authentication.
    pub submitted_by: Option<String>,
}

impl JobRow {
    /// Attempts used, counting the current one. Attempts before `first_attempt` do not count:
    /// a manual retry grants a fresh budget, and a message handed back unstarted uses none.
    pub fn attempts_used(&self) -> i32 {
        self.attempt - self.first_attempt + 1
    }
}

pub struct NewJob<'a> {
    pub id: JobId,
    pub owner: &'a Owner,
    pub model: &'a str,
    pub params: &'a Value,
    pub max_attempts: i32,
    pub queue_timeout_ms: i64,
    pub run_timeout_ms: i64,
    /// `(key, hash of the request)` for an idempotent submit.
    pub idempotency: Option<(&'a str, &'a str)>,
    pub submitted_by: &'a str,
}

/// Inserts the job; `None` when its idempotency key is already taken (the other job was
/// committed: a concurrent insert of the same key waits for it).
pub async fn insert(conn: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<Option<JobRow>> {
    let (key, hash) = job.idempotency.unzip();
    sqlx::query_as!(
        JobRow,
        r#"INSERT INTO jobs (id, owner, model, params, max_attempts, queue_timeout_ms, run_timeout_ms,
                            idempotency_key, request_hash, submitted_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING *"#,
        job.id as _,
        job.owner.as_str(),
        job.model,
        job.params,
        job.max_attempts,
        job.queue_timeout_ms,
        job.run_timeout_ms,
        key,
        hash,
        job.submitted_by,
    )
    .fetch_optional(conn)
    .await
}

pub async fn get_by_idempotency_key(db: impl PgExecutor<'_>, owner: &Owner, key: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT * FROM jobs WHERE owner = $1 AND idempotency_key = $2"#,
        owner.as_str(),
        key,
    )
    .fetch_optional(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner, id: JobId) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT * FROM jobs WHERE owner = $1 AND id = $2"#,
        owner.as_str(),
        id as _,
    )
    .fetch_optional(db)
    .await
}

/// Locks a job for a state change, whoever owns it (workers and background passes act for all
/// owners).
pub async fn lock(conn: &mut PgConnection, id: JobId) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(JobRow, r#"SELECT * FROM jobs WHERE id = $1 FOR UPDATE"#, id as _,)
        .fetch_optional(conn)
        .await
}

/// One page of an owner's jobs, newest first, strictly older than `before` when given.
pub async fn list(
    db: impl PgExecutor<'_>,
    owner: &Owner,
    status: Option<JobStatus>,
    model: Option<&str>,
    before: Option<JobId>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT * FROM jobs
           WHERE owner = $1
             AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR model = $3)
             AND ($4::uuid IS NULL OR id < $4)
           ORDER BY id DESC
           LIMIT $5"#,
        owner.as_str(),
        status as _,
        model,
        before as _,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Jobs by id regardless of owner: for the dispatcher, which works on behalf of all owners.
pub async fn get_many(db: impl PgExecutor<'_>, ids: &[JobId]) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(JobRow, r#"SELECT * FROM jobs WHERE id = ANY($1)"#, ids as _,)
        .fetch_all(db)
        .await
}

/// queued → running for `worker`, leased until `lease` from now.
pub async fn start(conn: &mut PgConnection, id: JobId, worker: &str, lease: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET status = 'running', worker = $2, started_at = now(), heartbeat_at = now(),
                lease_expires_at = now() + $3::interval, updated_at = now()
         WHERE id = $1",
        id as _,
        worker,
        interval(lease),
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn renew_lease(conn: &mut PgConnection, id: JobId, lease: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + $2::interval WHERE id = $1",
        id as _,
        interval(lease),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the job in a terminal status with its result or error.
pub async fn finish(
    conn: &mut PgConnection,
    id: JobId,
    status: JobStatus,
    worker: Option<&str>,
    result: Option<&Value>,
    error: Option<&Value>,
) -> sqlx::Result<()> {
    debug_assert!(status.is_terminal());
    sqlx::query!(
        "UPDATE jobs SET status = $2, result = $3, error = $4, worker = COALESCE($5, worker),
                finished_at = now(), lease_expires_at = NULL, updated_at = now()
         WHERE id = $1",
        id as _,
        status as _,
        result,
        error,
        worker,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Back to queued for attempt `next_attempt` (with the last error kept for the record).
/// `first_attempt` is set for a manual retry, which grants a fresh budget of attempts.
pub async fn requeue(
    conn: &mut PgConnection,
    id: JobId,
    next_attempt: i32,
    error: Option<&Value>,
    first_attempt: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET status = 'queued', attempt = $2, error = $3, first_attempt = COALESCE($4, first_attempt),
                result = NULL, worker = NULL, lease_expires_at = NULL, heartbeat_at = NULL, started_at = NULL,
                finished_at = NULL, dispatched_at = NULL, redeliveries = 0, queued_at = now(), updated_at = now()
         WHERE id = $1",
        id as _,
        next_attempt,
        error,
        first_attempt,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The current attempt came back from RabbitMQ unstarted: the job moves to a fresh attempt
/// number (so a late `started` of the returned copy is stale) that does not use the budget.
/// Returns the new attempt.
pub async fn advance_unstarted(conn: &mut PgConnection, id: JobId) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        "UPDATE jobs SET attempt = attempt + 1, first_attempt = first_attempt + 1,
                redeliveries = redeliveries + 1, dispatched_at = NULL, updated_at = now()
         WHERE id = $1
         RETURNING attempt",
        id as _,
    )
    .fetch_one(conn)
    .await
}

/// Running jobs whose lease ran out, locked (skipping rows another replica is handling).
pub async fn lock_expired_leases(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<JobId>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()
         ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Running jobs past their run timeout, locked.
pub async fn lock_run_timeouts(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<JobId>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'running'
           AND started_at + run_timeout_ms * interval '1 millisecond' < now()
         LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Queued jobs past their queue timeout, locked.
pub async fn lock_queue_timeouts(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<JobId>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'queued'
           AND queued_at + queue_timeout_ms * interval '1 millisecond' < now()
         LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Queued jobs published longer than `after` ago, not started, and not waiting in the
/// outbox: `(model, ids)`.
pub async fn stale_dispatches(db: impl PgExecutor<'_>, after: Duration) -> sqlx::Result<Vec<(String, Vec<JobId>)>> {
    let rows = sqlx::query!(
        r#"SELECT model, array_agg(id) AS "ids!: Vec<JobId>"
           FROM jobs j
           WHERE status = 'queued' AND dispatched_at < now() - $1::interval
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id)
           GROUP BY model"#,
        interval(after),
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.model, r.ids)).collect())
}

/// `(model, status, count)` over all owners, for metrics.
pub async fn count_by_model_and_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, JobStatus, i64)>> {
    let rows = sqlx::query!(r#"SELECT model, status, count(*) AS "count!" FROM jobs GROUP BY model, status"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.model, r.status, r.count)).collect())
}

/// Jobs of `status` that finished more than `retention` ago, oldest first, locked (skipping any
/// another transaction holds, e.g. a retry in progress).
pub async fn lock_expired(
    conn: &mut PgConnection,
    status: JobStatus,
    retention: Duration,
    limit: i64,
) -> sqlx::Result<Vec<JobId>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs
         WHERE status = $1 AND finished_at < now() - $2::interval
         ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        status as _,
        interval(retention),
        limit,
    )
    .fetch_all(conn)
    .await
}

/// `(jobs, files)` that [`lock_expired`] would return and [`delete`] delete, for a dry run.
pub async fn count_expired(
    db: impl PgExecutor<'_>,
    status: JobStatus,
    retention: Duration,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(DISTINCT j.id) AS "jobs!", count(f.id) AS "files!"
           FROM jobs j LEFT JOIN files f ON f.job_id = j.id
           WHERE j.status = $1 AND j.finished_at < now() - $2::interval"#,
        status as _,
        interval(retention),
    )
    .fetch_one(db)
    .await?;
    Ok((row.jobs, row.files))
}

/// Deletes jobs; their files, timeline and outbox entries go with them (ON DELETE CASCADE).
/// Returns the number of files deleted.
pub async fn delete(conn: &mut PgConnection, ids: &[JobId]) -> sqlx::Result<i64> {
    let files = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM files WHERE job_id = ANY($1)"#,
        ids as _
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM jobs WHERE id = ANY($1)", ids as _)
        .execute(&mut *conn)
        .await?;
    Ok(files)
}
