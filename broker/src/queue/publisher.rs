//! Publishing with confirms: many messages in flight, each judged by its own confirm.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};

use super::{AmqpHealth, amqp};

/// A message ready to go to a queue through the default exchange.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub queue: String,
    pub message_id: String,
    pub reply_to: String,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("unroutable: queue {0} does not exist")]
    Unroutable(String),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("no confirm within {0:?}")]
    Timeout(Duration),
    #[error("not connected: {0}")]
    Connect(String),
}

struct Session {
    connection: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

/// Owns one connection and one confirm-mode channel, reopened after any failure.
pub struct Publisher {
    url: String,
    prefix: String,
    session: Option<Session>,
    confirm_timeout: Duration,
    health: AmqpHealth,
}

impl Publisher {
    pub fn new(url: String, prefix: String, confirm_timeout: Duration, health: AmqpHealth) -> Self {
        Self {
            url,
            prefix,
            session: None,
            confirm_timeout,
            health,
        }
    }

    /// Connects if needed. Errors mean RabbitMQ is unreachable right now.
    pub async fn ensure_connected(&mut self) -> Result<(), PublishError> {
        let alive = self
            .session
            .as_ref()
            .is_some_and(|s| s.connection.status().connected() && s.channel.status().connected());
        if alive {
            return Ok(());
        }
        self.reset().await;
        let connection = amqp::connect(&self.url, "baton-publisher")
            .await
            .map_err(|e| PublishError::Connect(format!("{e:#}")))?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        self.session = Some(Session {
            connection,
            channel,
            declared: HashSet::new(),
        });
        self.health.set_publisher(true);
        tracing::info!("publisher connected to RabbitMQ");
        Ok(())
    }

    /// Publishes every message with all confirms in flight at once; one result per message.
    /// A message counts as published only on a positive confirm that was not a return.
    pub async fn publish_all(&mut self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let timeout = self.confirm_timeout;
        match tokio::time::timeout(timeout, self.publish_all_inner(messages)).await {
            Ok(results) => {
                if results.iter().any(|r| matches!(r, Err(PublishError::Amqp(_)))) {
                    self.reset().await;
                }
                results
            }
            Err(_) => {
                // Blocked by a resource alarm or a dead peer: start afresh next round.
                tracing::warn!(?timeout, "publishing timed out; reconnecting");
                self.reset().await;
                messages.iter().map(|_| Err(PublishError::Timeout(timeout))).collect()
            }
        }
    }

    async fn publish_all_inner(&mut self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        if let Err(e) = self.ensure_connected().await {
            let reason = e.to_string();
            return messages
                .iter()
                .map(|_| Err(PublishError::Connect(reason.clone())))
                .collect();
        }
        let session = self.session.as_mut().expect("connected above");

        for message in messages {
            if !session.declared.contains(&message.queue) {
                if let Err(e) = amqp::declare_job_queue(&session.channel, &self.prefix, &message.queue).await {
                    let reason = e.to_string();
                    return messages
                        .iter()
                        .map(|_| Err(PublishError::Connect(reason.clone())))
                        .collect();
                }
                session.declared.insert(message.queue.clone());
            }
        }

        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.as_str().into())
                .with_reply_to(message.reply_to.as_str().into());
            let published = session
                .channel
                .basic_publish(
                    "".into(),
                    message.queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    properties,
                )
                .await;
            pending.push(published);
        }

        let confirms = join_all(pending.into_iter().map(|published| async move {
            match published {
                Ok(confirm) => confirm.await.map_err(PublishError::from),
                Err(e) => Err(PublishError::from(e)),
            }
        }))
        .await;

        confirms
            .into_iter()
            .zip(messages)
            .map(|(confirm, message)| match confirm? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_returned)) => {
                    // The queue vanished under us: forget it so the next round declares it.
                    session.declared.remove(&message.queue);
                    Err(PublishError::Unroutable(message.queue.clone()))
                }
                Confirmation::Nack(_) => Err(PublishError::Nacked),
                // Only possible if confirm mode was lost; never count it as published.
                Confirmation::NotRequested => Err(PublishError::Nacked),
            })
            .collect()
    }

    async fn reset(&mut self) {
        self.health.set_publisher(false);
        if let Some(session) = self.session.take()
            && session.connection.status().connected()
            && let Err(e) = session.connection.close(200, "reconnecting".into()).await
        {
            tracing::debug!(error = %e, "closing the old publisher connection failed");
        }
    }

    pub async fn close(mut self) {
        self.reset().await;
    }
}
