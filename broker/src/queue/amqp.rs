//! Connecting to RabbitMQ and declaring Baton's queues.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties,
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection named `name` (shown in RabbitMQ's management UI). A TCP connect that
/// succeeds but a handshake that never completes is cut off after a timeout.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("timed out connecting to RabbitMQ after {CONNECT_TIMEOUT:?}"),
    }
}

/// The arguments every Baton queue is declared with; workers must use the same.
pub fn queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(baton_protocol::queue::QUEUE_TYPE.into()),
    );
    arguments
}

/// Declares a durable quorum queue (idempotent when it already exists with these arguments).
pub async fn declare_queue(channel: &Channel, name: &str) -> lapin::Result<()> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            queue_arguments(),
        )
        .await?;
    Ok(())
}
