use std::time::Duration;

use baton::{
    db,
    domain::{JobStatus, TimelineKind},
};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{backdate, job, owner};

#[sqlx::test(migrations = "../sql")]
async fn a_new_job_reads_back_queued_with_its_typed_id(db: PgPool) {
    let inserted = job(&db, "resnet50", None).await;
    assert_eq!(inserted.status, JobStatus::Queued);
    let read = db::jobs::get(&db, &owner(), inserted.id).await.unwrap().unwrap();
    assert_eq!(read.id, inserted.id);
    assert_eq!(read.status, JobStatus::Queued);
    assert_eq!(read.attempts_used(), 1);
}

#[sqlx::test(migrations = "../sql")]
async fn a_taken_idempotency_key_inserts_nothing_and_finds_the_first_job(db: PgPool) {
    let first = job(&db, "m", Some("key-1")).await;
    let owner = owner();
    let params = json!({});
    let again = db::jobs::NewJob {
        id: baton::domain::JobId::new(),
        owner: &owner,
        model: "m",
        params: &params,
        max_attempts: 1,
        queue_timeout_ms: 1000,
        run_timeout_ms: 1000,
        idempotency: Some(("key-1", "other")),
        submitted_by: "key:test",
    };
    let mut conn = db.acquire().await.unwrap();
    assert!(db::jobs::insert(&mut conn, &again).await.unwrap().is_none());
    let found = db::jobs::get_by_idempotency_key(&db, &owner, "key-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
}

#[sqlx::test(migrations = "../sql")]
async fn list_filters_by_status_and_pages_by_id(db: PgPool) {
    let older = job(&db, "m", None).await;
    let newer = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::jobs::finish(&mut conn, older.id, JobStatus::Failed, None, None, None)
        .await
        .unwrap();

    let queued = db::jobs::list(&db, &owner(), Some(JobStatus::Queued), None, None, 10)
        .await
        .unwrap();
    assert_eq!(queued.iter().map(|j| j.id).collect::<Vec<_>>(), [newer.id]);
    let page = db::jobs::list(&db, &owner(), None, Some("m"), Some(newer.id), 10)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|j| j.id).collect::<Vec<_>>(), [older.id]);
    let counts = db::jobs::count_by_model_and_status(&db).await.unwrap();
    assert!(counts.contains(&("m".to_owned(), JobStatus::Failed, 1)));
}

#[sqlx::test(migrations = "../sql")]
async fn a_started_job_is_leased_and_found_once_its_lease_runs_out(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut tx = db.begin().await.unwrap();
    db::jobs::start(&mut tx, job.id, "w1", Duration::from_millis(1500))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let running = db::jobs::get(&db, &owner(), job.id).await.unwrap().unwrap();
    assert_eq!(running.status, JobStatus::Running);
    let lease = running.lease_expires_at.unwrap() - running.started_at.unwrap();
    assert_eq!(lease.whole_milliseconds(), 1500);

    let mut tx = db.begin().await.unwrap();
    assert!(db::jobs::lock_expired_leases(&mut tx, 10).await.unwrap().is_empty());
    assert!(db::jobs::lock_run_timeouts(&mut tx, 10).await.unwrap().is_empty());
    tx.rollback().await.unwrap();

    backdate(&db, job.id, 120).await;
    let mut tx = db.begin().await.unwrap();
    assert_eq!(db::jobs::lock_expired_leases(&mut tx, 10).await.unwrap(), [job.id]);
    assert_eq!(db::jobs::lock_run_timeouts(&mut tx, 10).await.unwrap(), [job.id]);
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_waiting_past_its_queue_timeout_is_found(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut tx = db.begin().await.unwrap();
    assert!(db::jobs::lock_queue_timeouts(&mut tx, 10).await.unwrap().is_empty());
    tx.rollback().await.unwrap();
    backdate(&db, job.id, 61).await;
    let mut tx = db.begin().await.unwrap();
    assert_eq!(db::jobs::lock_queue_timeouts(&mut tx, 10).await.unwrap(), [job.id]);
}

#[sqlx::test(migrations = "../sql")]
async fn requeue_starts_the_next_attempt_and_advance_keeps_the_budget(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::jobs::start(&mut conn, job.id, "w1", Duration::from_secs(60))
        .await
        .unwrap();
    db::jobs::requeue(&mut conn, job.id, 2, Some(&json!({"code": "x"})), None)
        .await
        .unwrap();
    let requeued = db::jobs::get(&db, &owner(), job.id).await.unwrap().unwrap();
    assert_eq!(
        (requeued.status, requeued.attempt, requeued.attempts_used()),
        (JobStatus::Queued, 2, 2)
    );
    assert!(requeued.worker.is_none() && requeued.lease_expires_at.is_none());

    assert_eq!(db::jobs::advance_unstarted(&mut conn, job.id).await.unwrap(), 3);
    let advanced = db::jobs::get(&db, &owner(), job.id).await.unwrap().unwrap();
    assert_eq!((advanced.attempts_used(), advanced.redeliveries), (2, 1));
}

#[sqlx::test(migrations = "../sql")]
async fn finished_jobs_past_their_retention_are_counted_locked_and_deleted(db: PgPool) {
    let kept = job(&db, "m", None).await;
    let expired = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    for id in [kept.id, expired.id] {
        db::jobs::finish(&mut conn, id, JobStatus::Succeeded, Some("w"), Some(&json!(1)), None)
            .await
            .unwrap();
    }
    db::timeline::record(&mut conn, expired.id, TimelineKind::Succeeded, Some(1), None, None)
        .await
        .unwrap();
    backdate(&db, expired.id, 7200).await;
    let hour = Duration::from_secs(3600);

    assert_eq!(
        db::jobs::count_expired(&db, JobStatus::Succeeded, hour).await.unwrap(),
        (1, 0)
    );
    assert_eq!(
        db::jobs::count_expired(&db, JobStatus::Failed, hour).await.unwrap(),
        (0, 0)
    );
    let mut tx = db.begin().await.unwrap();
    let ids = db::jobs::lock_expired(&mut tx, JobStatus::Succeeded, hour, 10)
        .await
        .unwrap();
    assert_eq!(ids, [expired.id]);
    assert_eq!(db::jobs::delete(&mut tx, &ids).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert!(db::jobs::get(&db, &owner(), expired.id).await.unwrap().is_none());
    assert!(db::timeline::list(&db, expired.id).await.unwrap().is_empty());
    assert!(db::jobs::get(&db, &owner(), kept.id).await.unwrap().is_some());
}
