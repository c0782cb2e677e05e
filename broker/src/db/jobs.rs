//! The `jobs` table. Every state change is a guarded UPDATE on a row the caller has locked.

use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{JobStatus, Owner};

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub owner: String,
    pub model: String,
    pub params: Value,
    pub status: String,
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
}

impl JobRow {
    pub fn status(&self) -> JobStatus {
        JobStatus::parse(&self.status).unwrap_or(JobStatus::Queued)
    }

    /// Attempts used, counting the current one. Attempts before `first_attempt` do not count:
    /// a manual retry grants a fresh budget, and a message handed back unstarted uses none.
    pub fn attempts_used(&self) -> i32 {
        self.attempt - self.first_attempt + 1
    }
}

pub struct NewJob<'a> {
    pub id: Uuid,
    pub owner: &'a Owner,
    pub model: &'a str,
    pub params: &'a Value,
    pub max_attempts: i32,
    pub queue_timeout_ms: i64,
    pub run_timeout_ms: i64,
    /// `(key, hash of the request)` for an idempotent submit.
    pub idempotency: Option<(&'a str, &'a str)>,
}

/// Inserts the job; `None` when its idempotency key is already taken (the other job was
/// committed: a concurrent insert of the same key waits for it).
pub async fn insert(conn: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<Option<JobRow>> {
    let (key, hash) = job.idempotency.unzip();
    sqlx::query_as!(
        JobRow,
        r#"INSERT INTO jobs (id, owner, model, params, max_attempts, queue_timeout_ms, run_timeout_ms,
                            idempotency_key, request_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                     queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                     idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                     started_at, finished_at"#,
        job.id,
        job.owner.as_str(),
        job.model,
        job.params,
        job.max_attempts,
        job.queue_timeout_ms,
        job.run_timeout_ms,
        key,
        hash,
    )
    .fetch_optional(conn)
    .await
}

pub async fn get_by_idempotency_key(db: impl PgExecutor<'_>, owner: &Owner, key: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                  queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                  idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                  started_at, finished_at
           FROM jobs WHERE owner = $1 AND idempotency_key = $2"#,
        owner.as_str(),
        key,
    )
    .fetch_optional(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                  queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                  idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                  started_at, finished_at
           FROM jobs WHERE owner = $1 AND id = $2"#,
        owner.as_str(),
        id,
    )
    .fetch_optional(db)
    .await
}

/// Locks a job for a state change, whoever owns it (workers and background passes act for all
/// owners).
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                  queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                  idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                  started_at, finished_at
           FROM jobs WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// One page of an owner's jobs, newest first, strictly older than `before` when given.
pub async fn list(
    db: impl PgExecutor<'_>,
    owner: &Owner,
    status: Option<JobStatus>,
    model: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                  queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                  idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                  started_at, finished_at
           FROM jobs
           WHERE owner = $1
             AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR model = $3)
             AND ($4::uuid IS NULL OR id < $4)
           ORDER BY id DESC
           LIMIT $5"#,
        owner.as_str(),
        status.map(JobStatus::as_str),
        model,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Jobs by id regardless of owner: for the dispatcher, which works on behalf of all owners.
pub async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, first_attempt, max_attempts, redeliveries,
                  queue_timeout_ms, run_timeout_ms, worker, lease_expires_at, heartbeat_at, result, error,
                  idempotency_key, request_hash, created_at, updated_at, queued_at, dispatched_at,
                  started_at, finished_at
           FROM jobs WHERE id = ANY($1)"#,
        ids,
    )
    .fetch_all(db)
    .await
}

/// queued → running for `worker`, leased until `lease_ms` from now.
pub async fn start(conn: &mut PgConnection, id: Uuid, worker: &str, lease_ms: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET status = 'running', worker = $2, started_at = now(), heartbeat_at = now(),
                lease_expires_at = now() + make_interval(secs => $3::bigint / 1000.0), updated_at = now()
         WHERE id = $1",
        id,
        worker,
        lease_ms,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn renew_lease(conn: &mut PgConnection, id: Uuid, lease_ms: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $2::bigint / 1000.0)
         WHERE id = $1",
        id,
        lease_ms,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the job in a terminal status with its result or error.
pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
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
        id,
        status.as_str(),
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
    id: Uuid,
    next_attempt: i32,
    error: Option<&Value>,
    first_attempt: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET status = 'queued', attempt = $2, error = $3, first_attempt = COALESCE($4, first_attempt),
                result = NULL, worker = NULL, lease_expires_at = NULL, heartbeat_at = NULL, started_at = NULL,
                finished_at = NULL, dispatched_at = NULL, redeliveries = 0, queued_at = now(), updated_at = now()
         WHERE id = $1",
        id,
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
pub async fn advance_unstarted(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        "UPDATE jobs SET attempt = attempt + 1, first_attempt = first_attempt + 1,
                redeliveries = redeliveries + 1, dispatched_at = NULL, updated_at = now()
         WHERE id = $1
         RETURNING attempt",
        id,
    )
    .fetch_one(conn)
    .await
}

/// Running jobs whose lease ran out, locked (skipping rows another replica is handling).
pub async fn lock_expired_leases(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()
         ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Running jobs past their run timeout, locked.
pub async fn lock_run_timeouts(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'running'
           AND started_at + make_interval(secs => run_timeout_ms / 1000.0) < now()
         LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Queued jobs past their queue timeout, locked.
pub async fn lock_queue_timeouts(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE status = 'queued'
           AND queued_at + make_interval(secs => queue_timeout_ms / 1000.0) < now()
         LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Queued jobs published longer than `after_ms` ago, not started, and not waiting in the
/// outbox: `(model, ids)`.
pub async fn stale_dispatches(db: impl PgExecutor<'_>, after_ms: i64) -> sqlx::Result<Vec<(String, Vec<Uuid>)>> {
    let rows = sqlx::query!(
        r#"SELECT model, array_agg(id) AS "ids!"
           FROM jobs j
           WHERE status = 'queued' AND dispatched_at < now() - make_interval(secs => $1::bigint / 1000.0)
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id)
           GROUP BY model"#,
        after_ms,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.model, r.ids)).collect())
}

/// `(model, status, count)` over all owners, for metrics.
pub async fn count_by_model_and_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query!(r#"SELECT model, status, count(*) AS "count!" FROM jobs GROUP BY model, status"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.model, r.status, r.count)).collect())
}
