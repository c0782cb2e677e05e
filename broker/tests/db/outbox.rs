use std::time::Duration;

use baton::{db, domain::TimelineKind};
use sqlx::PgPool;

use crate::helpers::{job, owner};

#[sqlx::test(migrations = "../sql")]
async fn a_claimed_entry_is_hidden_until_released(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::outbox::enqueue(&mut conn, job.id, 1, Duration::ZERO).await.unwrap();
    assert_eq!(db::outbox::backlog(&db).await.unwrap(), 1);

    let lease = Duration::from_secs(30);
    let claimed = db::outbox::claim(&db, 10, lease).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|e| (e.job_id, e.attempt, e.tries))
            .collect::<Vec<_>>(),
        [(job.id, 1, 1)]
    );
    assert!(db::outbox::claim(&db, 10, lease).await.unwrap().is_empty());

    db::outbox::release(&db, &claimed).await.unwrap();
    let again = db::outbox::claim(&db, 10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    db::outbox::complete(&db, &again).await.unwrap();
    assert_eq!(db::outbox::backlog(&db).await.unwrap(), 0);
}

#[sqlx::test(migrations = "../sql")]
async fn a_delayed_or_postponed_entry_is_not_due(db: PgPool) {
    let first = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::outbox::enqueue(&mut conn, first.id, 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        db::outbox::claim(&db, 10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );

    let second = job(&db, "m", None).await;
    // Sub-microsecond parts are dropped, never refused.
    db::outbox::enqueue(&mut conn, second.id, 1, Duration::from_nanos(1))
        .await
        .unwrap();
    db::outbox::postpone(&db, &[second.id], Duration::from_millis(60_000))
        .await
        .unwrap();
    assert!(
        db::outbox::claim(&db, 10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_confirmed_publish_marks_the_attempt_dispatched_once(db: PgPool) {
    let job = job(&db, "m", None).await;
    let mut conn = db.acquire().await.unwrap();
    db::outbox::enqueue(&mut conn, job.id, 1, Duration::ZERO).await.unwrap();
    let sent_at = time::OffsetDateTime::now_utc();
    db::outbox::record_published(&db, &[job.id], &[1], sent_at)
        .await
        .unwrap();

    assert_eq!(db::outbox::backlog(&db).await.unwrap(), 0);
    let dispatched = db::jobs::get(&db, &owner(), job.id).await.unwrap().unwrap();
    assert!(dispatched.dispatched_at.is_some());
    let kinds: Vec<_> = db::timeline::list(&db, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [TimelineKind::Dispatched]);

    assert_eq!(db::outbox::enqueue_again(&db, &[job.id]).await.unwrap(), 1);
    assert_eq!(db::outbox::enqueue_again(&db, &[job.id]).await.unwrap(), 0);
    db::outbox::remove(&mut conn, job.id).await.unwrap();
    assert_eq!(db::outbox::backlog(&db).await.unwrap(), 0);
}
