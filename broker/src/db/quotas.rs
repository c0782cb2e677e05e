//! The `quotas` and `submit_buckets` tables, and the usage figures quotas are checked against.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::domain::Owner;

/// An owner's overrides; a `None` column takes the default.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRow {
    pub owner: String,
    pub stored_bytes: Option<i64>,
    pub active_jobs: Option<i64>,
    pub submit_rate: Option<f64>,
    pub updated_at: OffsetDateTime,
}

pub async fn get(db: impl PgExecutor<'_>, owner: &Owner) -> sqlx::Result<Option<QuotaRow>> {
    sqlx::query_as!(QuotaRow, r#"SELECT * FROM quotas WHERE owner = $1"#, owner.as_str())
        .fetch_optional(db)
        .await
}

/// Sets the owner's overrides (all three: `None` returns one to the default).
pub async fn set(
    db: impl PgExecutor<'_>,
    owner: &Owner,
    stored_bytes: Option<i64>,
    active_jobs: Option<i64>,
    submit_rate: Option<f64>,
) -> sqlx::Result<QuotaRow> {
    sqlx::query_as!(
        QuotaRow,
        r#"INSERT INTO quotas (owner, stored_bytes, active_jobs, submit_rate) VALUES ($1, $2, $3, $4)
           ON CONFLICT (owner) DO UPDATE SET stored_bytes = EXCLUDED.stored_bytes,
               active_jobs = EXCLUDED.active_jobs, submit_rate = EXCLUDED.submit_rate, updated_at = now()
           RETURNING *"#,
        owner.as_str(),
        stored_bytes,
        active_jobs,
        submit_rate,
    )
    .fetch_one(db)
    .await
}

/// Removes the owner's overrides; whether it had any.
pub async fn reset(db: impl PgExecutor<'_>, owner: &Owner) -> sqlx::Result<bool> {
    let done = sqlx::query!(r#"DELETE FROM quotas WHERE owner = $1"#, owner.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Bytes of the owner's distinct stored content.
pub async fn stored_bytes(db: impl PgExecutor<'_>, owner: &Owner) -> sqlx::Result<u64> {
    let sum = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(size), 0)::bigint AS "sum!" FROM blobs WHERE owner = $1"#,
        owner.as_str()
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(sum).unwrap_or_default())
}

/// The owner's jobs queued or running.
pub async fn active_jobs(db: impl PgExecutor<'_>, owner: &Owner) -> sqlx::Result<u64> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM jobs WHERE owner = $1 AND status IN ('queued', 'running')"#,
        owner.as_str()
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Takes the owner's quota lock until the transaction ends.
pub async fn lock_owner(conn: &mut PgConnection, owner: &Owner) -> sqlx::Result<()> {
    sqlx::query!(
        r#"SELECT pg_advisory_xact_lock(hashtextextended('baton.quota:' || $1, 0)) AS "locked!: ()""#,
        owner.as_str()
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Takes one submission from the owner's bucket (refilled at `rate` per second, holding at most
/// one second's worth and at least one). `None` when taken; otherwise how long until one is
/// available.
pub async fn take_submission(db: impl PgExecutor<'_>, owner: &Owner, rate: f64) -> sqlx::Result<Option<Duration>> {
    let burst = rate.max(1.0);
    let row = sqlx::query!(
        r#"WITH current AS (
               SELECT least($2::float8,
                            tokens + $3::float8 * extract(epoch FROM clock_timestamp() - refreshed_at)::float8)
                      AS tokens
               FROM submit_buckets WHERE owner = $1
           ), taken AS (
               INSERT INTO submit_buckets AS b (owner, tokens, refreshed_at)
               VALUES ($1, $2::float8 - 1, clock_timestamp())
               ON CONFLICT (owner) DO UPDATE
                   SET tokens = least($2::float8, b.tokens + $3::float8
                                      * extract(epoch FROM clock_timestamp() - b.refreshed_at)::float8) - 1,
                       refreshed_at = clock_timestamp()
                   WHERE least($2::float8, b.tokens + $3::float8
                               * extract(epoch FROM clock_timestamp() - b.refreshed_at)::float8) >= 1
               RETURNING tokens
           )
           SELECT (SELECT tokens FROM taken) AS taken, (SELECT tokens FROM current) AS available"#,
        owner.as_str(),
        burst,
        rate,
    )
    .fetch_one(db)
    .await?;
    if row.taken.is_some() {
        return Ok(None);
    }
    let available = row.available.unwrap_or(0.0);
    let wait = ((1.0 - available) / rate).max(0.0);
    Ok(Some(Duration::from_secs_f64(wait.min(86_400.0))))
}
