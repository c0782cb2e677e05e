//! Publishing control messages (cancel an attempt) to every worker, best effort.
//!
//! Callers hand messages to [`Control`] and never wait on RabbitMQ: a lost control message only
//! costs wasted work, since Baton ignores events of attempts it has given up on.

use std::time::Duration;

use baton_protocol::ControlMessage;
use lapin::{BasicProperties, options::BasicPublishOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::amqp;
use crate::domain::JobId;

const BUFFER: usize = 4096;

/// Sends control messages to workers.
#[derive(Debug, Clone)]
pub struct Control {
    sender: mpsc::Sender<ControlMessage>,
}

impl Control {
    /// A sender and the publisher task that drains it.
    pub fn new(amqp_url: String, prefix: &str) -> (Self, ControlPublisher) {
        let (sender, receiver) = mpsc::channel(BUFFER);
        let publisher = ControlPublisher {
            amqp_url,
            exchange: baton_protocol::queue::control_exchange(prefix),
            receiver,
        };
        (Self { sender }, publisher)
    }

    pub fn send(&self, message: ControlMessage) {
        if let Err(e) = self.sender.try_send(message) {
            tracing::warn!(error = %e, "dropping a control message");
        }
    }

    /// Tells `worker` (every worker, if `None`) to stop this attempt.
    pub fn cancel(&self, job_id: JobId, attempt: i32, worker: Option<&str>, reason: &str) {
        self.send(ControlMessage::Cancel {
            job_id: job_id.into(),
            attempt: u32::try_from(attempt).unwrap_or_default(),
            worker: worker.map(str::to_owned),
            reason: reason.to_owned(),
        });
    }
}

pub struct ControlPublisher {
    amqp_url: String,
    exchange: String,
    receiver: mpsc::Receiver<ControlMessage>,
}

impl ControlPublisher {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut pending: Option<ControlMessage> = None;
        while !cancel.is_cancelled() {
            if let Err(e) = self.session(&cancel, &mut pending).await {
                tracing::warn!(error = %format!("{e:#}"), "control publisher reconnecting");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn session(
        &mut self,
        cancel: &CancellationToken,
        pending: &mut Option<ControlMessage>,
    ) -> anyhow::Result<()> {
        let connection = amqp::connect(&self.amqp_url, "baton-control").await?;
        let channel = connection.create_channel().await?;
        amqp::declare_fanout(&channel, &self.exchange).await?;
        loop {
            let message = match pending.take() {
                Some(message) => message,
                None => tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    next = self.receiver.recv() => match next {
                        Some(message) => message,
                        None => return Ok(()),
                    },
                },
            };
            let body = serde_json::to_vec(&message)?;
            let published = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await;
            if let Err(e) = published {
                // Keep the message for the next connection.
                *pending = Some(message);
                return Err(e.into());
            }
        }
    }
}
