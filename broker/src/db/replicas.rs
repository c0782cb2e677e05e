//! The `blob_replicas` table: which blobs on the volume have a verified copy in the replica store.
//!
//! The replicator adds rows for blobs it has not seen ([`enqueue_recent`], [`enqueue_all`]),
//! claims due ones ([`claim`]), copies each while holding its blob row ([`hold_blob`]) and
//! records the outcome ([`record_replicated`], [`record_failure`]).

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

use super::interval;
use crate::{
    domain::{Owner, Sha256Hex},
    storage::StoreName,
};

/// Adds a row for each blob on the volume stored within `window` that has none for `store`.
pub async fn enqueue_recent(db: impl PgExecutor<'_>, store: &StoreName, window: Duration) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "INSERT INTO blob_replicas (owner, sha256, store)
         SELECT b.owner, b.sha256, $1 FROM blobs b
         WHERE b.store = 'volume' AND b.created_at > now() - $2::interval
           AND NOT EXISTS (SELECT 1 FROM blob_replicas r
                           WHERE r.owner = b.owner AND r.sha256 = b.sha256 AND r.store = $1)
         ON CONFLICT (owner, sha256, store) DO NOTHING",
        store.as_str(),
        interval(window),
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Adds a row for every blob on the volume that has none for `store`: the backfill of blobs
/// stored before replication was turned on, or while no replicator ran.
pub async fn enqueue_all(db: impl PgExecutor<'_>, store: &StoreName) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "INSERT INTO blob_replicas (owner, sha256, store)
         SELECT b.owner, b.sha256, $1 FROM blobs b
         WHERE b.store = 'volume'
           AND NOT EXISTS (SELECT 1 FROM blob_replicas r
                           WHERE r.owner = b.owner AND r.sha256 = b.sha256 AND r.store = $1)
         ON CONFLICT (owner, sha256, store) DO NOTHING",
        store.as_str(),
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A blob claimed for copying.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub owner: String,
    pub sha256: String,
    pub size: i64,
    /// Copies started, this one included.
    pub attempts: i32,
}

impl Claimed {
    /// The typed owner and digest; rows only hold values their CHECKs accepted.
    pub fn parsed(&self) -> Option<(Owner, Sha256Hex)> {
        Some((Owner::parse(&self.owner)?, Sha256Hex::parse(&self.sha256)?))
    }
}

/// Claims up to `limit` due, unreplicated blobs that are on the volume and not known to be
/// missing there, oldest first, by pushing their next attempt `lease` ahead (another replica's
/// claim skips them until then).
pub async fn claim(
    db: impl PgExecutor<'_>,
    store: &StoreName,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"WITH due AS (
               SELECT r.owner, r.sha256 FROM blob_replicas r
               JOIN blobs b ON b.owner = r.owner AND b.sha256 = r.sha256
               WHERE r.store = $1 AND r.replicated_at IS NULL AND r.next_attempt_at <= now()
                 AND b.store = 'volume' AND b.missing_at IS NULL
               ORDER BY r.next_attempt_at
               LIMIT $2
               FOR UPDATE OF r SKIP LOCKED
           )
           UPDATE blob_replicas r
           SET attempts = r.attempts + 1, next_attempt_at = now() + $3::interval
           FROM due, blobs b
           WHERE r.owner = due.owner AND r.sha256 = due.sha256 AND r.store = $1
             AND b.owner = r.owner AND b.sha256 = r.sha256
           RETURNING r.owner, r.sha256, b.size, r.attempts"#,
        store.as_str(),
        limit,
        interval(lease),
    )
    .fetch_all(db)
    .await
}

/// Holds a blob row against deletion (`FOR KEY SHARE`, which cleanup's `FOR UPDATE SKIP
/// LOCKED` passes over and uploads share) until the transaction ends. False when the row is
/// gone or its bytes left the volume.
pub async fn hold_blob(conn: &mut PgConnection, owner: &Owner, sha256: &Sha256Hex) -> sqlx::Result<bool> {
    let store = sqlx::query_scalar!(
        "SELECT store FROM blobs WHERE owner = $1 AND sha256 = $2 FOR KEY SHARE",
        owner.as_str(),
        sha256.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(store.as_deref() == Some(StoreName::VOLUME))
}

/// Marks the copy verified.
pub async fn record_replicated(
    conn: &mut PgConnection,
    owner: &Owner,
    sha256: &Sha256Hex,
    store: &StoreName,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE blob_replicas SET replicated_at = now(), last_error = NULL
         WHERE owner = $1 AND sha256 = $2 AND store = $3",
        owner.as_str(),
        sha256.as_str(),
        store.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed copy, to be tried again after `retry_in`.
pub async fn record_failure(
    db: impl PgExecutor<'_>,
    owner: &Owner,
    sha256: &Sha256Hex,
    store: &StoreName,
    error: &str,
    retry_in: Duration,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE blob_replicas SET last_error = $4, next_attempt_at = now() + $5::interval
         WHERE owner = $1 AND sha256 = $2 AND store = $3 AND replicated_at IS NULL",
        owner.as_str(),
        sha256.as_str(),
        store.as_str(),
        error,
        interval(retry_in),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// How far the replica is behind the volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Blobs on the volume without a verified copy (those missing from the volume aside).
    pub blobs: i64,
    pub bytes: i64,
    /// Age of the oldest of them, in seconds; 0 when there is none.
    pub lag_seconds: f64,
}

/// The blobs on the volume without a verified copy in `store`, whether or not the replicator
/// has seen them yet.
pub async fn backlog(db: impl PgExecutor<'_>, store: &StoreName) -> sqlx::Result<Backlog> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "blobs!", COALESCE(sum(b.size), 0)::bigint AS "bytes!",
                  COALESCE(EXTRACT(EPOCH FROM now() - min(b.created_at)), 0)::float8 AS "lag!"
           FROM blobs b
           WHERE b.store = 'volume' AND b.missing_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM blob_replicas r
                             WHERE r.owner = b.owner AND r.sha256 = b.sha256 AND r.store = $1
                               AND r.replicated_at IS NOT NULL)"#,
        store.as_str(),
    )
    .fetch_one(db)
    .await?;
    Ok(Backlog {
        blobs: row.blobs,
        bytes: row.bytes,
        lag_seconds: row.lag.max(0.0),
    })
}
