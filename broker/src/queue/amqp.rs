//! Connecting to RabbitMQ and declaring Baton's topology. The shared pieces live in
//! `baton_protocol::amqp`, so Baton and the worker runtime declare queues identically.

use anyhow::Context;
use lapin::{
    Channel, Connection,
    options::{QueueBindOptions, QueueDeclareOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::FieldTable,
    uri::AMQPUri,
};

pub use baton_protocol::amqp::{declare_fanout, declare_job_queue, declare_quorum_queue as declare_queue};

/// Opens a connection named `name`, with the protocol's connect timeout. A failure names the
/// server and `BATON_AMQP_URL`, never the URL itself (it holds a password).
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    baton_protocol::amqp::connect(url, name).await.with_context(|| {
        let server = server(url).unwrap_or_else(|_| "the configured server".to_owned());
        format!("cannot connect to RabbitMQ at {server} (BATON_AMQP_URL)")
    })
}

/// `host:port` of an AMQP URL, or why it is not one (without echoing it).
pub fn server(url: &str) -> Result<String, String> {
    let uri: AMQPUri = url.parse()?;
    let host = uri.authority.host;
    Ok(if host.contains(':') {
        format!("[{host}]:{}", uri.authority.port)
    } else {
        format!("{host}:{}", uri.authority.port)
    })
}

/// Checks `BATON_AMQP_URL` at start, so a typo stops Baton instead of becoming a reconnect loop.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    match server(url) {
        Ok(_) => Ok(()),
        Err(reason) => anyhow::bail!("BATON_AMQP_URL is not a valid AMQP URL: {reason}"),
    }
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
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// RabbitMQ's 404 NOT_FOUND channel error: the queue or exchange named does not exist.
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_of_an_amqp_url_leaves_the_credentials_out() {
        assert_eq!(
            server("amqp://guest:s3cret@rabbit.example:5673/%2f").unwrap(),
            "rabbit.example:5673"
        );
        assert_eq!(server("amqp://127.0.0.1").unwrap(), "127.0.0.1:5672");
        let error = check_url("http://guest:s3cret@rabbit.example/")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("BATON_AMQP_URL is not a valid AMQP URL"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
