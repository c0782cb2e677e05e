use std::time::Duration;

use baton::queue::{
    amqp,
    consumer::{ConsumeRound, Consumer, ConsumerConfig, Source},
    control::{Control, ControlConfig, ControlPublisher},
    dead_letters::DeadLetterHandler,
    event_consumer::WorkerEventHandler,
};
use lapin::{
    BasicProperties,
    options::BasicPublishOptions,
    types::{AMQPValue, FieldTable},
};
use serde_json::json;
use sqlx::PgPool;

use super::{MODEL, Rabbit, amqp_url, queued_job, running_job, status, timeline};

fn control(rabbit: &Rabbit) -> (Control, ControlPublisher) {
    let config = ControlConfig {
        queue_prefix: rabbit.prefix.clone(),
        ..ControlConfig::default()
    };
    Control::new(amqp_url(), config).unwrap()
}

fn config(name: &'static str) -> ConsumerConfig {
    ConsumerConfig {
        name,
        ..ConsumerConfig::default()
    }
}

async fn publish(rabbit: &Rabbit, queue: &str, body: &[u8], properties: BasicProperties) {
    rabbit
        .channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../sql")]
async fn the_event_consumer_applies_what_is_waiting_and_drops_what_it_cannot_read(db: PgPool) {
    let rabbit = Rabbit::new().await;
    let queue = baton_protocol::queue::events_queue(&rabbit.prefix);
    amqp::declare_queue(&rabbit.channel, &queue).await.unwrap();
    let id = queued_job(&db).await;
    let started = json!({ "version": 1, "job_id": id, "attempt": 1, "worker": "w1", "type": "started" });
    publish(&rabbit, &queue, b"not json", BasicProperties::default()).await;
    publish(
        &rabbit,
        &queue,
        started.to_string().as_bytes(),
        BasicProperties::default(),
    )
    .await;

    let handler = WorkerEventHandler {
        db: db.clone(),
        control: control(&rabbit).0,
        lease: Duration::from_secs(60),
    };
    let consumer = Consumer::new(amqp_url(), Source::Queue(queue.clone()), handler, config("test-events")).unwrap();
    let round = consumer.run_once().await.unwrap();
    assert_eq!(
        round,
        ConsumeRound {
            handled: 2,
            more: false
        }
    );
    assert_eq!(status(&db, id).await, ("running".to_owned(), 1));
    assert_eq!(timeline(&db, id).await, ["started"]);
    assert_eq!(rabbit.ready(&queue).await, 0);

    assert_eq!(consumer.run_once().await.unwrap(), ConsumeRound::default());
    rabbit.delete(&[queue]).await;
}

#[sqlx::test(migrations = "../sql")]
async fn the_dead_letter_consumer_retries_a_lost_attempt_and_stops_its_worker(db: PgPool) {
    let rabbit = Rabbit::new().await;
    let queue = baton_protocol::queue::dead_letter_queue(&rabbit.prefix);
    amqp::declare_dead_letters(&rabbit.channel, &rabbit.prefix)
        .await
        .unwrap();
    let running = running_job(&db, "w1", "1 minute", "1 minute").await;
    let unstarted = queued_job(&db).await;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-first-death-reason".into(),
        AMQPValue::LongString("delivery_limit".into()),
    );
    for id in [running, unstarted] {
        let message = json!({ "version": 1, "job_id": id, "model": MODEL, "params": {}, "attempt": 1, "files": [] });
        let properties = BasicProperties::default().with_headers(headers.clone());
        publish(&rabbit, &queue, message.to_string().as_bytes(), properties).await;
    }

    let (control, mut control_publisher) = control(&rabbit);
    let handler = DeadLetterHandler {
        db: db.clone(),
        control,
    };
    let source = Source::DeadLetters {
        prefix: rabbit.prefix.clone(),
    };
    let consumer = Consumer::new(amqp_url(), source, handler, config("test-dead-letters")).unwrap();
    assert_eq!(
        consumer.run_once().await.unwrap(),
        ConsumeRound {
            handled: 2,
            more: false
        }
    );

    // Started: the worker is gone, which ends the attempt like a lost lease.
    assert_eq!(status(&db, running).await, ("queued".to_owned(), 2));
    assert_eq!(timeline(&db, running).await, ["retried"]);
    // Unstarted: published again as a new attempt that does not use the budget.
    assert_eq!(status(&db, unstarted).await, ("queued".to_owned(), 2));
    assert_eq!(timeline(&db, unstarted).await, ["returned"]);
    // Only the worker that ran an attempt is told to stop it.
    assert_eq!(control_publisher.run_once().await.unwrap().published, 1);

    let exchanges = [
        baton_protocol::queue::dead_letter_exchange(&rabbit.prefix),
        baton_protocol::queue::control_exchange(&rabbit.prefix),
    ];
    rabbit.delete(&[queue]).await;
    super::delete_exchanges(&exchanges).await;
}
