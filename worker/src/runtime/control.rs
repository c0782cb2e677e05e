//! Baton's control exchange: a private subscription per connection, and `cancel` messages applied
//! to the attempts this process runs.

use baton_protocol::{ControlMessage, amqp};
use lapin::{
    Channel, Connection,
    options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};

use super::running::Running;

/// A private queue bound to the control exchange: it lives as long as this connection.
pub(super) async fn subscribe_control(connection: &Connection, prefix: &str) -> anyhow::Result<lapin::Consumer> {
    let exchange = baton_protocol::queue::control_exchange(prefix);
    // Declared by Baton: checked passively (no permission needed), declared only if missing.
    amqp::ensure_fanout(connection, &exchange).await?;
    let channel: Channel = connection.create_channel().await?;
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel.queue_declare("".into(), private, FieldTable::default()).await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    Ok(channel
        .basic_consume(queue.name().clone(), "".into(), options, FieldTable::default())
        .await?)
}

pub(super) fn apply_control(running: &Running, me: &str, data: &[u8]) {
    match serde_json::from_slice::<ControlMessage>(data) {
        // Meant for another worker running a copy of the same attempt.
        Ok(ControlMessage::Cancel {
            worker: Some(worker), ..
        }) if worker != me => {}
        Ok(ControlMessage::Cancel {
            job_id,
            attempt,
            reason,
            ..
        }) => {
            let token = running
                .lock()
                .expect("running map lock")
                .get(&(job_id, attempt))
                .cloned();
            if let Some(token) = token {
                tracing::info!(%job_id, attempt, %reason, "Baton asked to stop this attempt");
                token.cancel();
            }
        }
        Err(e) => tracing::debug!(error = %e, "ignoring an unknown control message"),
    }
}
