//! Consumes worker events and applies them to jobs.
//!
//! An event is acknowledged only after its effect committed, so a crash or a Postgres outage
//! means redelivery, which the idempotent state machine absorbs.

use std::time::Duration;

use baton_protocol::WorkerEvent;
use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{AmqpHealth, amqp};
use crate::{db, jobs};

/// Event consumer settings.
#[derive(Debug, Clone)]
pub struct EventConsumerConfig {
    pub amqp_url: String,
    pub queue: String,
    pub prefetch: u16,
}

pub struct EventConsumer {
    db: PgPool,
    config: EventConsumerConfig,
    health: AmqpHealth,
}

impl EventConsumer {
    pub fn new(db: PgPool, config: EventConsumerConfig, health: AmqpHealth) -> Self {
        Self { db, config, health }
    }

    /// Consumes until cancelled, reconnecting and resubscribing after any failure.
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            match self.consume(&cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    self.health.set_consumer(false);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "event consumer stopped; reconnecting");
                }
            }
            let delay =
                Duration::from_millis(200 * (1 << failures.min(5))).min(Duration::from_secs(5));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.health.set_consumer(false);
    }

    async fn consume(&self, cancel: &CancellationToken, failures: &mut u32) -> anyhow::Result<()> {
        let connection = amqp::connect(&self.config.amqp_url, "baton-events").await?;
        let channel = connection.create_channel().await?;
        amqp::declare_queue(&channel, &self.config.queue).await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                self.config.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.set_consumer(true);
        *failures = 0;
        tracing::info!(queue = %self.config.queue, "consuming worker events");

        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    if let Err(e) = connection.close(200, "shutting down".into()).await {
                        tracing::debug!(error = %e, "closing the events connection failed");
                    }
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some(delivery) => {
                        if !self.handle(delivery?, cancel).await? {
                            return Ok(());
                        }
                    }
                    None => anyhow::bail!("the events consumer was cancelled by RabbitMQ"),
                },
            }
        }
    }

    /// Applies one event and acks it. Returns false when cancelled before the event was applied
    /// (it stays unacked and is redelivered).
    async fn handle(&self, delivery: Delivery, cancel: &CancellationToken) -> anyhow::Result<bool> {
        match serde_json::from_slice::<WorkerEvent>(&delivery.data) {
            Ok(event) => {
                let mut failures: u32 = 0;
                loop {
                    match jobs::events::apply(&self.db, &event).await {
                        Ok(applied) => {
                            tracing::debug!(job_id = %event.job_id, ?applied, "worker event");
                            break;
                        }
                        Err(e) if db::is_unavailable(&e) => {
                            failures = failures.saturating_add(1);
                            tracing::warn!(error = %e, "Postgres unavailable; will apply the event again");
                            let delay = Duration::from_millis(100 * (1 << failures.min(6)));
                            tokio::select! {
                                () = cancel.cancelled() => return Ok(false),
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                        Err(e) => {
                            // Not transient: retrying would loop forever on the same error.
                            tracing::error!(job_id = %event.job_id, error = %e, "dropping a worker event that cannot be applied");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, bytes = delivery.data.len(), "dropping a malformed worker event");
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(true)
    }
}
