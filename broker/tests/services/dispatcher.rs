use std::{sync::Arc, time::Duration};

use baton::{
    queue::{
        AmqpHealth,
        dispatcher::{DispatchRound, Dispatcher, DispatcherConfig},
        publisher::Publisher,
    },
    storage::Storage,
};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::{Rabbit, amqp_url, exec, in_outbox, queued_job, status};

fn dispatcher(db: &PgPool, rabbit: &Rabbit) -> Dispatcher {
    let publisher = Publisher::new(
        amqp_url(),
        rabbit.prefix.clone(),
        Duration::from_secs(15),
        AmqpHealth::default(),
    );
    let config = DispatcherConfig {
        queue_prefix: rabbit.prefix.clone(),
        ..DispatcherConfig::default()
    };
    // These jobs have no input files: the volume is never read.
    let storage = Storage::volume_at(&std::env::temp_dir().join("baton-dispatcher-tests")).unwrap();
    Dispatcher::new(db.clone(), storage, publisher, Arc::new(Notify::new()), config).unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn a_round_publishes_due_entries_and_drops_those_of_finished_jobs(db: PgPool) {
    let rabbit = Rabbit::new().await;
    let due = queued_job(&db).await;
    let finished = queued_job(&db).await;
    exec(
        &db,
        "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = $1",
        finished,
    )
    .await;
    let later = queued_job(&db).await;
    exec(
        &db,
        "UPDATE outbox SET available_at = now() + interval '1 hour' WHERE job_id = $1",
        later,
    )
    .await;

    let mut dispatcher = dispatcher(&db, &rabbit);
    let round = dispatcher.run_once().await.unwrap();
    assert_eq!(
        round,
        DispatchRound {
            claimed: 2,
            published: 1,
            failed: 0,
            stale: 1,
        }
    );
    assert_eq!(rabbit.ready(&rabbit.job_queue()).await, 1);
    assert!(!in_outbox(&db, due).await);
    assert!(!in_outbox(&db, finished).await);
    assert!(in_outbox(&db, later).await);
    let dispatched: bool = sqlx::query_scalar("SELECT dispatched_at IS NOT NULL FROM jobs WHERE id = $1")
        .bind(due)
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(dispatched);
    assert_eq!(status(&db, due).await, ("queued".to_owned(), 1));

    assert_eq!(dispatcher.run_once().await.unwrap(), DispatchRound::default());
    let queue = rabbit.job_queue();
    rabbit.delete(&[queue]).await;
}
