//! RabbitMQ connections and the removal of a test's or run's queues and exchanges.

use std::time::Duration;

use anyhow::Context;
use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};

/// A connection named `name` (shown in RabbitMQ's management UI), given up after 10 s.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, properties))
        .await
        .context("timed out connecting to RabbitMQ")?
        .context("connecting to RabbitMQ")
}

/// Deletes `queues` and `exchanges`; missing ones are fine, and any other failure is reported on
/// stderr without stopping the rest.
pub async fn delete(url: &str, queues: &[String], exchanges: &[String]) -> anyhow::Result<()> {
    let connection = connect(url, "baton-testkit-cleanup").await?;
    for queue in queues {
        // A failed delete closes its channel: one channel per delete.
        let channel = connection.create_channel().await?;
        if let Err(e) = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("  could not delete queue {queue}: {e}");
        }
    }
    for exchange in exchanges {
        let channel = connection.create_channel().await?;
        if let Err(e) = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            eprintln!("  could not delete exchange {exchange}: {e}");
        }
    }
    // Channels a failed delete closed may still be closing on the server's side, which can fail
    // this close; the connection goes either way.
    connection.close(200, "done".into()).await.ok();
    Ok(())
}
