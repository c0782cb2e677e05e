use std::time::{Duration, Instant};

use baton::queue::{
    amqp,
    control::{Control, ControlConfig, ControlRound},
};
use lapin::{
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};

use super::{Rabbit, amqp_url};

#[tokio::test]
async fn the_control_publisher_sends_what_is_waiting_to_every_worker() {
    let rabbit = Rabbit::new().await;
    let exchange = baton_protocol::queue::control_exchange(&rabbit.prefix);
    amqp::declare_fanout(&rabbit.channel, &exchange).await.unwrap();
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let worker = rabbit
        .channel
        .queue_declare("".into(), options, FieldTable::default())
        .await
        .unwrap();
    rabbit
        .channel
        .queue_bind(
            worker.name().clone(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let config = ControlConfig {
        queue_prefix: rabbit.prefix.clone(),
        ..ControlConfig::default()
    };
    let (control, mut publisher) = Control::new(amqp_url(), config).unwrap();
    let job_id = baton::domain::JobId::new();
    control.cancel(job_id, 3, Some("w1"), "cancelled");
    control.cancel(job_id, 3, None, "cancelled");

    assert_eq!(publisher.run_once().await.unwrap(), ControlRound { published: 2 });
    assert_eq!(publisher.run_once().await.unwrap(), ControlRound { published: 0 });
    // Published without confirms: it reaches the worker's queue shortly after.
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = rabbit
            .channel
            .basic_get(worker.name().clone(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        match got {
            Some(got) => break got,
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            None => panic!("no control message reached the worker's queue"),
        }
    };
    let message: baton_protocol::ControlMessage = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(message, baton::jobs::stop(job_id, 3, Some("w1"), "cancelled"));
    rabbit.delete(&[]).await;
    super::delete_exchanges(&[exchange]).await;
}
