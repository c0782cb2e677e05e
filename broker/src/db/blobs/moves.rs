//! Blob rows moving between stores: what a migration still has to copy, the one-statement
//! switch of a row to its new store, and the copies left in the store a blob was moved from.
//!
//! The rule for a left-behind copy: it may go once no unfinished job (queued or running)
//! created before the row's `moved_at` refers to the blob, since only such a job can hold a
//! message that names the old copy (messages are built from the row when an attempt is
//! published).

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use super::BlobKey;
use crate::domain::{Owner, Sha256Hex};

/// Blobs and bytes in one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTotals {
    pub store: String,
    pub blobs: i64,
    pub bytes: i64,
    /// Of those, rows marked missing their bytes (nothing to copy).
    pub missing: i64,
}

/// What is stored outside `target`, per store.
pub async fn outside(db: impl PgExecutor<'_>, target: &str) -> sqlx::Result<Vec<StoreTotals>> {
    sqlx::query_as!(
        StoreTotals,
        r#"SELECT store, count(*) AS "blobs!", COALESCE(sum(size), 0)::bigint AS "bytes!",
                  count(*) FILTER (WHERE missing_at IS NOT NULL) AS "missing!"
           FROM blobs WHERE store <> $1 GROUP BY store ORDER BY store"#,
        target,
    )
    .fetch_all(db)
    .await
}

/// The next page of blob rows outside `target`, after `(owner, sha256)` in key order.
pub async fn outside_page(
    db: impl PgExecutor<'_>,
    target: &str,
    after: (&str, &str),
    limit: i64,
) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!", store FROM blobs
           WHERE store <> $1 AND (owner, sha256) > ($2, $3)
           ORDER BY owner, sha256 LIMIT $4"#,
        target,
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Blobs moved into `target` since `since`, and their bytes: a migration's progress.
pub async fn moved_since(db: impl PgExecutor<'_>, target: &str, since: OffsetDateTime) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "blobs!", COALESCE(sum(size), 0)::bigint AS "bytes!"
           FROM blobs WHERE store = $1 AND moved_at >= $2"#,
        target,
        since,
    )
    .fetch_one(db)
    .await?;
    Ok((row.blobs, row.bytes))
}

/// Where a blob row's bytes are, read under its lock.
#[derive(Debug, Clone)]
pub struct Placed {
    pub store: String,
    pub previous_store: Option<String>,
    pub moved_at: Option<OffsetDateTime>,
}

/// Locks a blob row against other movers and removers (`FOR NO KEY UPDATE`, which submissions'
/// `FOR KEY SHARE` does not wait for). `None` when the row is gone, or when `skip_locked` and
/// another transaction holds it.
pub async fn lock(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    skip_locked: bool,
) -> sqlx::Result<Option<Placed>> {
    if skip_locked {
        sqlx::query_as!(
            Placed,
            "SELECT store, previous_store, moved_at FROM blobs WHERE owner = $1 AND sha256 = $2
             FOR NO KEY UPDATE SKIP LOCKED",
            owner.as_str(),
            sha256.as_str(),
        )
        .fetch_optional(conn)
        .await
    } else {
        sqlx::query_as!(
            Placed,
            "SELECT store, previous_store, moved_at FROM blobs WHERE owner = $1 AND sha256 = $2
             FOR NO KEY UPDATE",
            owner.as_str(),
            sha256.as_str(),
        )
        .fetch_optional(conn)
        .await
    }
}

/// Switches a row from `from` to `to` in one statement, keeping `from` as the copy to remove
/// later. A no-op (false) when the row changed meanwhile.
pub async fn switch(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    from: &str,
    to: &str,
) -> sqlx::Result<bool> {
    // The wall clock at the switch, not the transaction's start: a job created before this
    // instant may have been published with the old location.
    let updated = sqlx::query!(
        "UPDATE blobs SET store = $4, previous_store = $3, moved_at = clock_timestamp()
         WHERE owner = $1 AND sha256 = $2 AND store = $3",
        owner.as_str(),
        sha256.as_str(),
        from,
        to,
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A blob whose previous copy is still kept.
#[derive(Debug, Clone)]
pub struct Kept {
    pub owner: String,
    pub sha256: String,
    pub size: i64,
    pub previous_store: String,
}

/// The next page of blobs whose previous copy no unfinished job holds any more.
pub async fn releasable(db: impl PgExecutor<'_>, after: (&str, &str), limit: i64) -> sqlx::Result<Vec<Kept>> {
    sqlx::query_as!(
        Kept,
        r#"SELECT owner, sha256, size, previous_store AS "previous_store!" FROM blobs b
           WHERE previous_store IS NOT NULL AND (owner, sha256) > ($1, $2)
             AND NOT EXISTS (
                 SELECT 1 FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE f.owner = b.owner AND f.sha256 = b.sha256
                   AND j.status IN ('queued', 'running') AND j.created_at < b.moved_at)
           ORDER BY owner, sha256 LIMIT $3"#,
        after.0,
        after.1,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Whether an unfinished job created before `moved_at` refers to the blob. Run as a statement
/// of its own after [`lock`], so it sees every job committed before the lock.
pub async fn is_held(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    moved_at: OffsetDateTime,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM files f JOIN jobs j ON j.id = f.job_id
               WHERE f.owner = $1 AND f.sha256 = $2
                 AND j.status IN ('queued', 'running') AND j.created_at < $3) AS "held!""#,
        owner.as_str(),
        sha256.as_str(),
        moved_at,
    )
    .fetch_one(conn)
    .await
}

/// Forgets a locked row's previous copy, once it is removed.
pub async fn forget_previous(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE blobs SET previous_store = NULL, moved_at = NULL WHERE owner = $1 AND sha256 = $2",
        owner.as_str(),
        sha256.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Previous copies still kept, per store: blobs, bytes, and the unfinished jobs holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCopies {
    pub store: String,
    pub blobs: i64,
    pub bytes: i64,
    pub jobs: i64,
}

pub async fn held(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<HeldCopies>> {
    sqlx::query_as!(
        HeldCopies,
        r#"WITH kept AS (SELECT owner, sha256, size, previous_store, moved_at FROM blobs
                          WHERE previous_store IS NOT NULL)
           SELECT k.previous_store AS "store!", count(*) AS "blobs!",
                  COALESCE(sum(k.size), 0)::bigint AS "bytes!",
                  (SELECT count(DISTINCT j.id) FROM kept k2
                   JOIN files f ON f.owner = k2.owner AND f.sha256 = k2.sha256
                   JOIN jobs j ON j.id = f.job_id
                   WHERE k2.previous_store = k.previous_store
                     AND j.status IN ('queued', 'running') AND j.created_at < k2.moved_at) AS "jobs!"
           FROM kept k GROUP BY k.previous_store ORDER BY 1"#,
    )
    .fetch_all(db)
    .await
}

/// The largest blobs in `store`, for measuring how fast it reads.
pub async fn largest_in(db: impl PgExecutor<'_>, store: &str, limit: i64) -> sqlx::Result<Vec<BlobKey>> {
    sqlx::query_as!(
        BlobKey,
        r#"SELECT owner, sha256, size, missing_at IS NOT NULL AS "missing!", store FROM blobs
           WHERE store = $1 AND missing_at IS NULL
           ORDER BY size DESC LIMIT $2"#,
        store,
        limit,
    )
    .fetch_all(db)
    .await
}
