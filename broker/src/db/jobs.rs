//! The `jobs` table.

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
    pub max_attempts: i32,
    pub worker: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub dispatched_at: Option<OffsetDateTime>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

pub struct NewJob<'a> {
    pub id: Uuid,
    pub owner: &'a Owner,
    pub model: &'a str,
    pub params: &'a Value,
}

pub async fn insert(conn: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<JobRow> {
    sqlx::query_as!(
        JobRow,
        r#"INSERT INTO jobs (id, owner, model, params)
           VALUES ($1, $2, $3, $4)
           RETURNING id, owner, model, params, status, attempt, max_attempts, worker, result,
                     error, created_at, updated_at, dispatched_at, started_at, finished_at"#,
        job.id,
        job.owner.as_str(),
        job.model,
        job.params,
    )
    .fetch_one(conn)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, owner, model, params, status, attempt, max_attempts, worker, result,
                  error, created_at, updated_at, dispatched_at, started_at, finished_at
           FROM jobs WHERE owner = $1 AND id = $2"#,
        owner.as_str(),
        id,
    )
    .fetch_optional(db)
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
        r#"SELECT id, owner, model, params, status, attempt, max_attempts, worker, result,
                  error, created_at, updated_at, dispatched_at, started_at, finished_at
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
        r#"SELECT id, owner, model, params, status, attempt, max_attempts, worker, result,
                  error, created_at, updated_at, dispatched_at, started_at, finished_at
           FROM jobs WHERE id = ANY($1)"#,
        ids,
    )
    .fetch_all(db)
    .await
}

pub async fn mark_dispatched(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET dispatched_at = now(), updated_at = now()
         WHERE id = ANY($1) AND dispatched_at IS NULL",
        ids,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// `(model, status, count)` over all owners, for metrics.
pub async fn count_by_model_and_status(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT model, status, count(*) AS "count!" FROM jobs GROUP BY model, status"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.model, r.status, r.count))
        .collect())
}
