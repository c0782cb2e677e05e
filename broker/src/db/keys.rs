//! The `api_keys` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::Owner;

/// A key as stored: every column of `api_keys`.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub secret_sha256: String,
    pub owner: String,
    pub role: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub secret_sha256: &'a str,
    pub owner: &'a Owner,
    pub role: &'a str,
    pub name: &'a str,
    pub expires_at: Option<OffsetDateTime>,
}

pub async fn insert(db: impl PgExecutor<'_>, key: &NewKeyRow<'_>) -> sqlx::Result<KeyRow> {
    sqlx::query_as!(
        KeyRow,
        r#"INSERT INTO api_keys (id, secret_sha256, owner, role, name, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING *"#,
        key.id,
        key.secret_sha256,
        key.owner.as_str(),
        key.role,
        key.name,
        key.expires_at,
    )
    .fetch_one(db)
    .await
}

/// Stores the bootstrap key, or replaces its secret and role if it exists. A revoked bootstrap
/// key stays revoked.
pub async fn upsert(db: impl PgExecutor<'_>, key: &NewKeyRow<'_>) -> sqlx::Result<KeyRow> {
    sqlx::query_as!(
        KeyRow,
        r#"INSERT INTO api_keys (id, secret_sha256, owner, role, name, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (id) DO UPDATE
               SET secret_sha256 = EXCLUDED.secret_sha256, owner = EXCLUDED.owner, role = EXCLUDED.role
           RETURNING *"#,
        key.id,
        key.secret_sha256,
        key.owner.as_str(),
        key.role,
        key.name,
        key.expires_at,
    )
    .fetch_one(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as!(KeyRow, r#"SELECT * FROM api_keys WHERE id = $1"#, id)
        .fetch_optional(db)
        .await
}

/// Keys, newest first, of one owner or of all.
pub async fn list(db: impl PgExecutor<'_>, owner: Option<&Owner>) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        r#"SELECT * FROM api_keys WHERE $1::text IS NULL OR owner = $1 ORDER BY created_at DESC, id"#,
        owner.map(Owner::as_str),
    )
    .fetch_all(db)
    .await
}

/// Revokes the key (a second revoke keeps the first time); `None` if there is no such key.
pub async fn revoke(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        r#"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn touch(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query!(r#"UPDATE api_keys SET last_used_at = now() WHERE id = $1"#, id)
        .execute(db)
        .await?;
    Ok(())
}
