//! Connecting to RabbitMQ and declaring Baton's topology. The shared pieces live in
//! `baton_protocol::amqp`, so Baton and the worker runtime declare queues identically.

use lapin::{
    Channel, Connection,
    options::{QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};

pub use baton_protocol::amqp::{declare_fanout, declare_job_queue, declare_quorum_queue as declare_queue};

/// Opens a connection named `name`, with the protocol's connect timeout.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    Ok(baton_protocol::amqp::connect(url, name).await?)
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
        Err(e) if e.to_string().contains("NOT_FOUND") => Ok(None),
        Err(e) => Err(e),
    }
}
