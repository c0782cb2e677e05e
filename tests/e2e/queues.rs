//! The job queue declaration every peer must repeat exactly, checked against the real RabbitMQ.

use baton_protocol::{amqp, queue};
use lapin::{
    Connection, ConnectionProperties,
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable},
};

use baton_e2e::*;

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The job queue arguments with `x-delivery-limit` carried by `limit`.
fn arguments_with_limit(prefix: &str, limit: AMQPValue) -> FieldTable {
    let mut table = amqp::field_table(&queue::job_queue_arguments(prefix));
    table.insert("x-delivery-limit".into(), limit);
    table
}

#[tokio::test]
async fn a_job_queue_redeclared_with_the_delivery_limit_in_any_integer_type_is_the_same_queue() {
    let env = TestEnv::new().await;
    let name = env.job_queue("example");
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    // As Baton declares it: a 64-bit integer.
    amqp::declare_job_queue(&channel, &env.prefix, &name).await.unwrap();
    // As other clients encode a small integer (pika: a signed 32-bit one).
    for limit in [
        AMQPValue::ShortShortInt(0),
        AMQPValue::ShortShortUInt(0),
        AMQPValue::ShortInt(0),
        AMQPValue::ShortUInt(0),
        AMQPValue::LongInt(0),
        AMQPValue::LongUInt(0),
    ] {
        let described = format!("{limit:?}");
        channel
            .queue_declare(
                name.as_str().into(),
                durable(),
                arguments_with_limit(&env.prefix, limit),
            )
            .await
            .unwrap_or_else(|e| panic!("x-delivery-limit as {described} was refused: {e}"));
    }
    // The value, unlike its type, must match: RabbitMQ refuses the declaration and closes the
    // channel.
    let refused = channel
        .queue_declare(
            name.as_str().into(),
            durable(),
            arguments_with_limit(&env.prefix, AMQPValue::LongInt(1)),
        )
        .await;
    assert!(refused.is_err(), "a different delivery limit is refused");
    connection.close(200, "done".into()).await.unwrap();
}
