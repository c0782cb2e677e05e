use std::time::Duration;

use baton::{
    cleanup::{Cleaner, CleanupConfig, PassOutcome, Retention},
    storage::Storage,
};
use sqlx::PgPool;

use super::{exec, queued_job, status};

#[sqlx::test(migrations = "../sql")]
async fn a_pass_deletes_jobs_finished_longer_ago_than_their_retention(db: PgPool) {
    let volume = tempfile::tempdir().unwrap();
    let storage = Storage::volume_at(volume.path()).unwrap();
    let expired = queued_job(&db).await;
    exec(&db, "DELETE FROM outbox WHERE job_id = $1", expired).await;
    exec(
        &db,
        "UPDATE jobs SET status = 'succeeded', finished_at = now() - interval '2 days' WHERE id = $1",
        expired,
    )
    .await;
    let kept = queued_job(&db).await;
    exec(&db, "DELETE FROM outbox WHERE job_id = $1", kept).await;
    exec(
        &db,
        "UPDATE jobs SET status = 'failed', finished_at = now() - interval '1 hour' WHERE id = $1",
        kept,
    )
    .await;
    let unfinished = queued_job(&db).await;
    exec(
        &db,
        "UPDATE jobs SET queued_at = now() - interval '30 days' WHERE id = $1",
        unfinished,
    )
    .await;
    let config = CleanupConfig {
        retention: Retention::all(Duration::from_secs(24 * 3600)),
        ..CleanupConfig::default()
    };
    config.validate().unwrap();

    let outcome = Cleaner::new(db.clone(), storage, config).run_once().await.unwrap();
    let PassOutcome::Done(report) = outcome else {
        panic!("no other pass runs: {outcome:?}");
    };
    assert_eq!((report.jobs_succeeded, report.jobs_failed, report.jobs()), (1, 0, 1));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = $1")
        .bind(expired)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(status(&db, kept).await, ("failed".to_owned(), 1));
    assert_eq!(status(&db, unfinished).await, ("queued".to_owned(), 1));
}

#[test]
fn a_zero_cleanup_batch_is_refused_naming_its_setting() {
    let config = CleanupConfig {
        batch: 0,
        ..CleanupConfig::default()
    };
    assert_eq!(config.validate().unwrap_err().setting, "BATON_CLEANUP_BATCH");
}
