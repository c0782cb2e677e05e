use std::{sync::Arc, time::Duration};

use baton::jobs::sweep::{SweepReport, Sweeper, SweeperConfig};
use baton_protocol::ControlMessage;
use sqlx::PgPool;

use super::{Told, error_code, exec, in_outbox, queued_job, running_job, status, timeline};

fn sweeper(db: &PgPool, lease: Duration) -> Sweeper {
    sweeper_telling(db, lease, Told::default())
}

fn sweeper_telling(db: &PgPool, lease: Duration, told: Told) -> Sweeper {
    let config = SweeperConfig {
        lease,
        ..SweeperConfig::default()
    };
    Sweeper::new(db.clone(), Arc::new(told), config).unwrap()
}

fn stop(job_id: uuid::Uuid, attempt: u32, worker: &str, reason: &str) -> ControlMessage {
    ControlMessage::Cancel {
        job_id,
        attempt,
        worker: Some(worker.to_owned()),
        reason: reason.to_owned(),
    }
}

#[sqlx::test(migrations = "../sql")]
async fn an_expired_lease_is_retried_and_its_worker_told_to_stop(db: PgPool) {
    let id = running_job(&db, "w1", "10 minutes", "-1 minute").await;
    let mut sweeper = sweeper(&db, Duration::from_millis(1));

    // Heartbeats queued while Postgres was away get one lease before any lease counts as expired.
    let first = sweeper.run_once().await.unwrap();
    assert_eq!(first, SweepReport::default());
    assert_eq!(status(&db, id).await, ("running".to_owned(), 1));

    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = sweeper.run_once().await.unwrap();
    assert_eq!(report.leases_expired, 1);
    assert_eq!(report.stops, vec![stop(id, 1, "w1", "lease_expired")]);
    assert_eq!(status(&db, id).await, ("queued".to_owned(), 2));
    assert!(in_outbox(&db, id).await);
    assert_eq!(timeline(&db, id).await, ["retried"]);
}

#[sqlx::test(migrations = "../sql")]
async fn the_last_attempt_with_an_expired_lease_fails_the_job(db: PgPool) {
    let id = running_job(&db, "w1", "10 minutes", "-1 minute").await;
    exec(&db, "UPDATE jobs SET max_attempts = 1 WHERE id = $1", id).await;
    let mut sweeper = sweeper(&db, Duration::from_millis(1));
    sweeper.run_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let report = sweeper.run_once().await.unwrap();
    assert_eq!(report.leases_expired, 1);
    assert_eq!(status(&db, id).await, ("failed".to_owned(), 1));
    assert_eq!(error_code(&db, id).await.as_deref(), Some("lease_expired"));
    assert!(!in_outbox(&db, id).await);
}

#[sqlx::test(migrations = "../sql")]
async fn a_run_past_its_timeout_fails_and_its_worker_is_told_to_stop(db: PgPool) {
    let id = running_job(&db, "w1", "2 hours", "1 minute").await;
    let told = Told::default();
    let report = sweeper_telling(&db, Duration::from_secs(60), told.clone())
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.run_timeouts, 1);
    assert_eq!(report.stops, vec![stop(id, 1, "w1", "run_timeout")]);
    assert_eq!(*told.0.lock().unwrap(), report.stops, "handed over once committed");
    assert_eq!(status(&db, id).await, ("failed".to_owned(), 1));
    assert_eq!(error_code(&db, id).await.as_deref(), Some("run_timeout"));
    assert_eq!(timeline(&db, id).await, ["timed_out"]);
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_queued_past_its_timeout_fails_and_any_taker_is_told_to_stop(db: PgPool) {
    let id = queued_job(&db).await;
    exec(
        &db,
        "UPDATE jobs SET queued_at = now() - interval '2 hours' WHERE id = $1",
        id,
    )
    .await;
    let report = sweeper(&db, Duration::from_secs(60)).run_once().await.unwrap();
    assert_eq!(report.queue_timeouts, 1);
    let every_worker = ControlMessage::Cancel {
        job_id: id,
        attempt: 1,
        worker: None,
        reason: "queue_timeout".to_owned(),
    };
    assert_eq!(report.stops, vec![every_worker]);
    assert_eq!(status(&db, id).await, ("failed".to_owned(), 1));
    assert_eq!(error_code(&db, id).await.as_deref(), Some("queue_timeout"));
    assert!(!in_outbox(&db, id).await);
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_within_their_lease_and_timeouts_are_left_alone(db: PgPool) {
    let running = running_job(&db, "w1", "10 minutes", "1 minute").await;
    let queued = queued_job(&db).await;
    let mut sweeper = sweeper(&db, Duration::from_millis(1));
    sweeper.run_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(sweeper.run_once().await.unwrap(), SweepReport::default());
    assert_eq!(status(&db, running).await, ("running".to_owned(), 1));
    assert_eq!(status(&db, queued).await, ("queued".to_owned(), 1));
}

#[test]
fn a_zero_lease_is_refused_naming_its_setting() {
    let config = SweeperConfig {
        lease: Duration::ZERO,
        ..SweeperConfig::default()
    };
    let error = config.validate().unwrap_err();
    assert_eq!(error.setting, "BATON_LEASE");
}
