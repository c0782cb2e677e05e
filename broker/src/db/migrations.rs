//! The `storage_migrations` table: migrations between stores. While one is unfinished, every
//! replica sends new uploads to its target; at most one is unfinished at a time.

use sqlx::PgExecutor;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRow {
    pub id: i64,
    /// The stores blobs were moved from, comma-separated.
    pub source: String,
    pub target: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// The unfinished migration, if any.
pub async fn active(db: impl PgExecutor<'_>) -> sqlx::Result<Option<MigrationRow>> {
    sqlx::query_as!(
        MigrationRow,
        "SELECT id, source, target, started_at, finished_at FROM storage_migrations WHERE finished_at IS NULL"
    )
    .fetch_optional(db)
    .await
}

/// The most recent migration, finished or not.
pub async fn latest(db: impl PgExecutor<'_>) -> sqlx::Result<Option<MigrationRow>> {
    sqlx::query_as!(
        MigrationRow,
        "SELECT id, source, target, started_at, finished_at FROM storage_migrations ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(db)
    .await
}

/// Records a new unfinished migration; `None` when another is unfinished already (the unique
/// index allows one).
pub async fn start(db: impl PgExecutor<'_>, source: &str, target: &str) -> sqlx::Result<Option<MigrationRow>> {
    sqlx::query_as!(
        MigrationRow,
        "INSERT INTO storage_migrations (source, target) VALUES ($1, $2)
         ON CONFLICT DO NOTHING
         RETURNING id, source, target, started_at, finished_at",
        source,
        target,
    )
    .fetch_optional(db)
    .await
}

/// Marks a migration finished: replicas send new uploads to their configured store again.
pub async fn finish(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE storage_migrations SET finished_at = now() WHERE id = $1 AND finished_at IS NULL",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}
