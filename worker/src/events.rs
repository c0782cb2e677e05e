//! Publishing events to Baton, each confirmed before the runtime moves on.

use std::time::Duration;

use anyhow::{Context, bail};
use baton_protocol::{EventKind, PROTOCOL_VERSION, WorkerEvent};
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use uuid::Uuid;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct EventPublisher {
    channel: Channel,
    worker_id: String,
}

impl EventPublisher {
    pub async fn new(channel: Channel, worker_id: String) -> lapin::Result<Self> {
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel, worker_id })
    }

    /// Publishes one event to `queue` and waits for RabbitMQ's confirm.
    pub async fn publish(&self, queue: &str, job_id: Uuid, attempt: u32, kind: EventKind) -> anyhow::Result<()> {
        let event = WorkerEvent {
            version: PROTOCOL_VERSION,
            job_id,
            attempt,
            worker: self.worker_id.clone(),
            kind,
        };
        let body = serde_json::to_vec(&event)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let publish = async {
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    properties,
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>(confirm)
        };
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
            .await
            .context("no confirm from RabbitMQ in time")??;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => bail!("event queue `{queue}` does not exist"),
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                bail!("RabbitMQ did not accept the event")
            }
        }
    }
}
