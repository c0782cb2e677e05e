use std::{sync::Arc, time::Duration};

use baton::queue::reconciler::{ReconcileRound, Reconciler, ReconcilerConfig};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::{Rabbit, amqp_url, exec, in_outbox, queued_job, timeline};

fn reconciler(db: &PgPool, rabbit: &Rabbit, wake: Arc<Notify>) -> Reconciler {
    let config = ReconcilerConfig {
        queue_prefix: rabbit.prefix.clone(),
        redispatch_after: Duration::from_secs(60),
        ..ReconcilerConfig::default()
    };
    Reconciler::new(db.clone(), amqp_url(), wake, config).unwrap()
}

/// Published `ago`, never started, no longer in the outbox.
async fn dispatched_job(db: &PgPool, ago: &'static str) -> uuid::Uuid {
    let id = queued_job(db).await;
    exec(db, "DELETE FROM outbox WHERE job_id = $1", id).await;
    exec(db, ago, id).await;
    id
}

#[sqlx::test(migrations = "../sql")]
async fn a_job_dispatched_long_ago_with_an_empty_queue_is_published_again(db: PgPool) {
    let rabbit = Rabbit::new().await;
    let lost = dispatched_job(
        &db,
        "UPDATE jobs SET dispatched_at = now() - interval '10 minutes' WHERE id = $1",
    )
    .await;
    let recent = dispatched_job(
        &db,
        "UPDATE jobs SET dispatched_at = now() - interval '5 seconds' WHERE id = $1",
    )
    .await;
    let wake = Arc::new(Notify::new());

    let round = reconciler(&db, &rabbit, Arc::clone(&wake)).run_once().await.unwrap();
    assert_eq!(
        round,
        ReconcileRound {
            stale: 1,
            redispatched: 1
        }
    );
    assert!(in_outbox(&db, lost).await);
    assert_eq!(timeline(&db, lost).await, ["redispatched"]);
    assert!(!in_outbox(&db, recent).await);
    // The dispatcher was woken: a permit is waiting.
    tokio::time::timeout(Duration::from_secs(1), wake.notified())
        .await
        .unwrap();
    rabbit.delete(&[]).await;
}

#[sqlx::test(migrations = "../sql")]
async fn a_stale_job_whose_queue_holds_messages_is_left_to_them(db: PgPool) {
    let rabbit = Rabbit::new().await;
    let queue = rabbit.job_queue();
    baton::queue::amqp::declare_job_queue(&rabbit.channel, &rabbit.prefix, &queue)
        .await
        .unwrap();
    rabbit
        .channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let waiting = dispatched_job(
        &db,
        "UPDATE jobs SET dispatched_at = now() - interval '10 minutes' WHERE id = $1",
    )
    .await;

    let round = reconciler(&db, &rabbit, Arc::new(Notify::new()))
        .run_once()
        .await
        .unwrap();
    assert_eq!(
        round,
        ReconcileRound {
            stale: 1,
            redispatched: 0
        }
    );
    assert!(!in_outbox(&db, waiting).await);
    rabbit.delete(&[queue]).await;
}
