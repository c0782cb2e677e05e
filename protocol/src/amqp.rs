//! AMQP helpers for Rust peers (feature `amqp`): connecting with a timeout and declaring the
//! protocol's queues and exchanges with exactly the arguments everyone must use.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
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

impl ConnectError {
    /// The AMQP error behind this one, if RabbitMQ answered at all.
    pub fn amqp(&self) -> Option<&lapin::Error> {
        match self {
            Self::Amqp(e) => Some(e),
            Self::TimedOut => None,
        }
    }
}

/// Whether RabbitMQ refused access (`ACCESS_REFUSED`, 403): the user lacks a permission on the
/// queue or exchange named in the error's message, or its login was refused. Reconnecting does
/// not change that; the user's permissions or credentials must.
pub fn is_access_refused(error: &lapin::Error) -> bool {
    access_refusal(error).is_some()
}

/// RabbitMQ's reason when it refused access, e.g. `ACCESS_REFUSED - access to queue
/// 'baton.jobs.other' in vhost '/' refused for user 'worker'`.
pub fn access_refusal(error: &lapin::Error) -> Option<&str> {
    soft_error(error, AMQPSoftError::ACCESSREFUSED)
}

/// Whether RabbitMQ answered `NOT_FOUND` (404): no such queue or exchange.
pub fn is_not_found(error: &lapin::Error) -> bool {
    soft_error(error, AMQPSoftError::NOTFOUND).is_some()
}

/// The message of `error` if it is the soft AMQP error `wanted`.
fn soft_error(error: &lapin::Error, wanted: AMQPSoftError) -> Option<&str> {
    match error.kind() {
        ErrorKind::ProtocolError(e) if *e.kind() == AMQPErrorKind::Soft(wanted) => Some(e.get_message().as_str()),
        _ => None,
    }
}

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

/// Makes sure the durable quorum queue `name` exists (the events queue), declaring it only if it
/// is missing. The passive declaration needs no permission, so a peer without `configure`
/// permission on a queue Baton declared can still check it. If the queue is missing and this peer
/// may not declare it, the answer is the passive declaration's `NOT_FOUND`: the queue is not
/// there yet (Baton declares it when it starts), which is worth waiting for, unlike a refusal.
pub async fn ensure_quorum_queue(connection: &Connection, name: &str) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel.queue_declare(name.into(), passive, FieldTable::default()).await {
        Ok(_) => channel.close(200, "checked".into()).await,
        Err(missing) if is_not_found(&missing) => {
            // The failed passive declaration closed that channel.
            let channel = connection.create_channel().await?;
            declare_unless_refused(declare_quorum_queue(&channel, name).await, missing)?;
            channel.close(200, "declared".into()).await
        }
        Err(e) => Err(e),
    }
}

/// [`ensure_quorum_queue`] for a durable fanout exchange (the control exchange).
pub async fn ensure_fanout(connection: &Connection, name: &str) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let checked = channel
        .exchange_declare(name.into(), ExchangeKind::Fanout, passive, FieldTable::default())
        .await;
    match checked {
        Ok(()) => channel.close(200, "checked".into()).await,
        Err(missing) if is_not_found(&missing) => {
            let channel = connection.create_channel().await?;
            declare_unless_refused(declare_fanout(&channel, name).await, missing)?;
            channel.close(200, "declared".into()).await
        }
        Err(e) => Err(e),
    }
}

fn declare_unless_refused(declared: lapin::Result<()>, missing: lapin::Error) -> lapin::Result<()> {
    match declared {
        Err(refused) if is_access_refused(&refused) => Err(missing),
        other => other,
    }
}
