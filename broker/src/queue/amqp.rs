//! Connecting to RabbitMQ and declaring Baton's topology.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use serde_json::Value;

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

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Converts the protocol's JSON description of queue arguments to an AMQP table.
pub fn field_table(arguments: &Value) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments.as_object().into_iter().flatten() {
        let value = match value {
            Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Value::Number(n) => AMQPValue::LongLongInt(n.as_i64().unwrap_or_default()),
            Value::Bool(b) => AMQPValue::Boolean(*b),
            _ => continue,
        };
        table.insert(key.as_str().into(), value);
    }
    table
}

fn quorum() -> FieldTable {
    field_table(&serde_json::json!({ "x-queue-type": baton_protocol::queue::QUEUE_TYPE }))
}

/// Declares a model's job queue with the protocol's arguments.
pub async fn declare_job_queue(channel: &Channel, prefix: &str, queue: &str) -> lapin::Result<()> {
    let arguments = field_table(&baton_protocol::queue::job_queue_arguments(prefix));
    channel.queue_declare(queue.into(), durable(), arguments).await?;
    Ok(())
}

/// Declares a plain durable quorum queue (the events queue).
pub async fn declare_queue(channel: &Channel, name: &str) -> lapin::Result<()> {
    channel.queue_declare(name.into(), durable(), quorum()).await?;
    Ok(())
}

/// Declares the dead-letter exchange and the queue Baton reads it from.
pub async fn declare_dead_letters(channel: &Channel, prefix: &str) -> lapin::Result<()> {
    let exchange = baton_protocol::queue::dead_letter_exchange(prefix);
    let queue = baton_protocol::queue::dead_letter_queue(prefix);
    declare_fanout(channel, &exchange).await?;
    declare_queue(channel, &queue).await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares a durable fanout exchange.
pub async fn declare_fanout(channel: &Channel, name: &str) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
}

/// Ready messages in a queue, or `None` if the queue does not exist. Uses its own channel
/// because a passive declare of a missing queue closes the channel.
pub async fn ready_messages(connection: &Connection, queue: &str) -> lapin::Result<Option<u32>> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
    {
        Ok(declared) => {
            let count = declared.message_count();
            if let Err(e) = channel.close(200, "done".into()).await {
                tracing::debug!(error = %e, "closing a probe channel failed");
            }
            Ok(Some(count))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    error.to_string().contains("NOT_FOUND")
}
