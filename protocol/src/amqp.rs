//! AMQP helpers for Rust peers (feature `amqp`): connecting with a timeout and declaring the
//! protocol's queues and exchanges with exactly the arguments everyone must use.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use serde_json::{Value, json};

use crate::queue;

/// How long a connection attempt may take, handshake included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    Amqp(lapin::Error),
    TimedOut,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Amqp(e) => write!(f, "{e}"),
            Self::TimedOut => write!(f, "timed out connecting to RabbitMQ after {CONNECT_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Opens a connection named `name` (shown in RabbitMQ's management UI). A TCP connect that
/// succeeds but a handshake that never completes is cut off after [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, name: &str) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(result) => result.map_err(ConnectError::Amqp),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

/// Converts the JSON description of queue arguments to an AMQP table: strings become long
/// strings, integers long-long integers.
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

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares a model's job queue with [`queue::job_queue_arguments`].
pub async fn declare_job_queue(channel: &Channel, prefix: &str, name: &str) -> lapin::Result<()> {
    let arguments = field_table(&queue::job_queue_arguments(prefix));
    channel.queue_declare(name.into(), durable(), arguments).await?;
    Ok(())
}

/// Declares a plain durable quorum queue (the events and dead-letter queues).
pub async fn declare_quorum_queue(channel: &Channel, name: &str) -> lapin::Result<()> {
    let arguments = field_table(&json!({ "x-queue-type": queue::QUEUE_TYPE }));
    channel.queue_declare(name.into(), durable(), arguments).await?;
    Ok(())
}

/// Declares a durable fanout exchange (dead letters, control).
pub async fn declare_fanout(channel: &Channel, name: &str) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
}
