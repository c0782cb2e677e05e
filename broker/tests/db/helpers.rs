//! Rows the tests start from, and moving their clocks back instead of waiting.

use baton::{
    db::{
        self,
        jobs::{JobRow, NewJob},
    },
    domain::{JobId, Owner},
};
use serde_json::json;
use sqlx::PgPool;

pub fn owner() -> Owner {
    Owner::default_owner()
}

/// A committed queued job for `model`, optionally with an idempotency key.
pub async fn job(db: &PgPool, model: &str, key: Option<&str>) -> JobRow {
    let owner = owner();
    let params = json!({});
    let new = NewJob {
        id: JobId::new(),
        owner: &owner,
        model,
        params: &params,
        max_attempts: 3,
        queue_timeout_ms: 60_000,
        run_timeout_ms: 60_000,
        idempotency: key.map(|key| (key, "hash")),
        submitted_by: "key:test",
    };
    let mut conn = db.acquire().await.unwrap();
    db::jobs::insert(&mut conn, &new).await.unwrap().expect("a fresh key")
}

/// Moves a job's timestamps `seconds` into the past, as if that much time had gone by.
pub async fn backdate(db: &PgPool, id: JobId, seconds: i64) {
    sqlx::query(
        "UPDATE jobs SET created_at = created_at - make_interval(secs => $2),
                queued_at = queued_at - make_interval(secs => $2),
                started_at = started_at - make_interval(secs => $2),
                lease_expires_at = lease_expires_at - make_interval(secs => $2),
                dispatched_at = dispatched_at - make_interval(secs => $2),
                finished_at = finished_at - make_interval(secs => $2)
         WHERE id = $1",
    )
    .bind(id)
    .bind(seconds as f64)
    .execute(db)
    .await
    .unwrap();
}
