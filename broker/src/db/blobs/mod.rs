//! The `blobs` table: one row per distinct content per owner, whose bytes are in the store the
//! row names.
//! Submissions claim rows ([`claim`]); cleanup pages through them, locks and deletes them.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

pub mod moves;

use super::interval;

use crate::{
    domain::{Owner, Sha256Hex},
    storage::StoreName,
};

/// Outcome of [`claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobClaim {
    /// This transaction inserted the row: the bytes must be put in place before commit.
    Inserted,
    /// The row was committed earlier and is now locked against deletion until commit; its
    /// bytes are in this store.
    Existing(StoreName),
}

/// Inserts the blob row, or locks the existing one against deletion (`FOR KEY SHARE`, which
/// cleanup's `FOR UPDATE` waits for) until the transaction ends. Loops in the rare case that
/// the existing row is deleted between the insert attempt and the lock.
pub async fn claim(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    size: u64,
    md5: &str,
    store: &StoreName,
) -> sqlx::Result<BlobClaim> {
    let size = i64::try_from(size).expect("file sizes fit in i64");
    loop {
        let inserted = sqlx::query_scalar!(
            "INSERT INTO blobs (owner, sha256, size, md5, store) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (owner, sha256) DO NOTHING
             RETURNING true AS \"inserted!\"",
            owner.as_str(),
            sha256.as_str(),
            size,
            md5,
            store.as_str(),
        )
        .fetch_optional(&mut *conn)
        .await?;
        if inserted.is_some() {
            return Ok(BlobClaim::Inserted);
        }
        let locked = sqlx::query_scalar!(
            "SELECT store FROM blobs WHERE owner = $1 AND sha256 = $2 FOR KEY SHARE",
            owner.as_str(),
            sha256.as_str(),
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(store) = locked {
            return Ok(BlobClaim::Existing(StoreName::from_stored(&store)));
        }
    }
}

/// A blob row as the pass sees it.
#[derive(Debug, Clone)]
pub struct BlobKey {
    pub owner: String,
    pub sha256: String,
    pub size: i64,
    pub missing: bool,
    pub store: String,
}

impl BlobKey {
    /// The typed owner and digest. Rows only hold values their CHECKs and the submit path
    /// accepted, so a row that does not parse is skipped by the caller.
    pub fn parsed(&self) -> Option<(Owner, Sha256Hex)> {
        Some((Owner::parse(&self.owner)?, Sha256Hex::parse(&self.sha256)?))
    }

    pub fn store(&self) -> StoreName {
        StoreName::from_stored(&self.store)
    }
}

/// `(blobs, bytes)` that no file would refer to once the expired jobs are gone, for a dry run:
/// the same rule as the three retentions, applied to every job at once.
pub async fn count_freed(
    db: impl PgExecutor<'_>,
    succeeded: Duration,
    failed: Duration,
    cancelled: Duration,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "blobs!", COALESCE(sum(size), 0)::bigint AS "bytes!"
           FROM blobs b
           WHERE NOT EXISTS (
               SELECT 1 FROM files f JOIN jobs j ON j.id = f.job_id
               WHERE f.owner = b.owner AND f.sha256 = b.sha256
                 AND NOT (
                     (j.status = 'succeeded' AND j.finished_at < now() - $1::interval)
                     OR (j.status = 'failed' AND j.finished_at < now() - $2::interval)
                     OR (j.status = 'cancelled' AND j.finished_at < now() - $3::interval)
                 )
           )"#,
        interval(succeeded),
        interval(failed),
        interval(cancelled),
    )
    .fetch_one(db)
    .await?;
    Ok((row.blobs, row.bytes))
}

/// The next page of blob rows that no file refers to, after `(owner, sha256)` in key order.
pub async fn unreferenced(db: impl PgExecutor<'_>, after: (&str, &str), limit: i64) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!", store FROM blobs b
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

/// Where a locked blob's bytes are: its store, and the store a migration moved it from while
/// that copy is kept.
#[derive(Debug, Clone)]
pub struct Stored {
    pub store: String,
    pub previous_store: Option<String>,
}

/// Locks a blob row `FOR UPDATE`, unless a submission holds it (`FOR KEY SHARE`, until its
/// commit) or it is gone. Returns where its bytes are.
pub async fn lock(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        "SELECT store, previous_store FROM blobs WHERE owner = $1 AND sha256 = $2 FOR UPDATE SKIP LOCKED",
        owner.as_str(),
        sha256.as_str(),
    )
    .fetch_optional(conn)
    .await
}

/// Whether any file refers to the blob. Run as a statement of its own after [`lock`], so
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

pub async fn delete(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<()> {
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
pub async fn reserve_key(
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
pub async fn page_after(db: impl PgExecutor<'_>, after: (&str, &str), limit: i64) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!", store FROM blobs
           WHERE (owner, sha256) > ($1, $2)
           ORDER BY owner, sha256 LIMIT $3"#,
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Marks a locked blob row as missing its file. False when it was already marked.
pub async fn mark_missing(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE blobs SET missing_at = now() WHERE owner = $1 AND sha256 = $2 AND missing_at IS NULL",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() > 0)
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
pub async fn existing(
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

/// Every store a row names, as its store or as the store a migration moved it from.
pub async fn stores_named(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT store AS "store!" FROM blobs GROUP BY store
           UNION
           SELECT previous_store AS "store!" FROM blobs WHERE previous_store IS NOT NULL GROUP BY previous_store"#
    )
    .fetch_all(db)
    .await
}

/// The next page of the blob rows whose bytes are in `store`, after `(owner, sha256)`.
pub async fn page_in_store(
    db: impl PgExecutor<'_>,
    store: &StoreName,
    after: (&str, &str),
    limit: i64,
) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!", store FROM blobs
           WHERE store = $1 AND (owner, sha256) > ($2, $3)
           ORDER BY owner, sha256 LIMIT $4"#,
        store.as_str(),
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Of the given `(owner, sha256)` pairs, those whose committed row names `store`, as its store
/// or as the store a migration moved it from (whose copy is still kept).
pub async fn naming_store(
    db: impl PgExecutor<'_>,
    store: &StoreName,
    owners: &[String],
    sha256s: &[String],
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        r#"SELECT b.owner, b.sha256 FROM blobs b
           JOIN UNNEST($2::text[], $3::text[]) AS c(owner, sha256)
             ON c.owner = b.owner AND c.sha256 = b.sha256
           WHERE b.store = $1 OR b.previous_store = $1"#,
        store.as_str(),
        owners,
        sha256s,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.owner, r.sha256)).collect())
}

/// Whether an unfinished migration is moving blobs into `store`: until it switches a row, the
/// copy it made there has no row naming it.
pub async fn is_migration_target(db: impl PgExecutor<'_>, store: &StoreName) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM storage_migrations WHERE target = $1 AND finished_at IS NULL) AS "moving!""#,
        store.as_str(),
    )
    .fetch_one(db)
    .await
}
