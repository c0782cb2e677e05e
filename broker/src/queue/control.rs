//! Publishing control messages (cancel an attempt) to every worker, best effort.
//!
//! Callers hand messages to [`Control`] and never wait on RabbitMQ: a lost control message only
//! costs wasted work, since Baton ignores events of attempts it has given up on.

use std::time::Duration;

use baton_protocol::ControlMessage;
use lapin::{BasicProperties, Channel, Connection, options::BasicPublishOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::amqp;
use crate::{
    domain::JobId,
    jobs::{self, ToWorkers},
    service::{InvalidConfig, Service, pause},
};

/// Control publisher settings.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Queue name prefix (`BATON_QUEUE_PREFIX`): the exchange is `<prefix>control`.
    pub queue_prefix: String,
    /// Messages waiting for the publisher before new ones are dropped (default 4096).
    pub buffer: usize,
    /// Pause before reconnecting after a failure (default 1 s).
    pub reconnect_delay: Duration,
    /// Longest a round of publishing may take before the connection is dropped (default 15 s).
    pub round_timeout: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            queue_prefix: baton_protocol::queue::DEFAULT_PREFIX.to_owned(),
            buffer: 4096,
            reconnect_delay: Duration::from_secs(1),
            round_timeout: Duration::from_secs(15),
        }
    }
}

impl ControlConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::at_least_one("control buffer", u64::try_from(self.buffer).unwrap_or(u64::MAX))?;
        InvalidConfig::positive("control reconnect delay", self.reconnect_delay)?;
        InvalidConfig::positive("control round timeout", self.round_timeout)
    }
}

/// Sends control messages to workers.
#[derive(Debug, Clone)]
pub struct Control {
    sender: mpsc::Sender<ControlMessage>,
}

impl Control {
    /// A sender and the publisher service that drains it.
    pub fn new(amqp_url: String, config: ControlConfig) -> Result<(Self, ControlPublisher), InvalidConfig> {
        config.validate()?;
        let (sender, receiver) = mpsc::channel(config.buffer);
        let publisher = ControlPublisher {
            amqp_url,
            exchange: baton_protocol::queue::control_exchange(&config.queue_prefix),
            receiver,
            pending: None,
            session: None,
            config,
        };
        Ok((Self { sender }, publisher))
    }

    pub fn send(&self, message: ControlMessage) {
        if let Err(e) = self.sender.try_send(message) {
            tracing::warn!(error = %e, "dropping a control message");
        }
    }

    /// Tells `worker` (every worker, if `None`) to stop this attempt.
    pub fn cancel(&self, job_id: JobId, attempt: i32, worker: Option<&str>, reason: &str) {
        self.send(jobs::stop(job_id, attempt, worker, reason));
    }
}

impl ToWorkers for Control {
    fn send(&self, message: ControlMessage) {
        Control::send(self, message);
    }
}

/// What one round of the publisher did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlRound {
    pub published: usize,
}

pub struct ControlPublisher {
    amqp_url: String,
    exchange: String,
    receiver: mpsc::Receiver<ControlMessage>,
    /// Taken from the buffer but not yet published: kept for the next connection.
    pending: Option<ControlMessage>,
    session: Option<(Connection, Channel)>,
    config: ControlConfig,
}

impl ControlPublisher {
    /// Publishes every message waiting now, connecting first if needed.
    #[tracing::instrument(name = "control", skip_all, fields(published = tracing::field::Empty))]
    pub async fn run_once(&mut self) -> anyhow::Result<ControlRound> {
        let mut round = ControlRound::default();
        let result = self.publish_waiting(&mut round).await;
        tracing::Span::current().record("published", round.published);
        if result.is_err() {
            self.session = None;
        }
        result.map(|()| round)
    }

    async fn publish_waiting(&mut self, round: &mut ControlRound) -> anyhow::Result<()> {
        while let Some(message) = self.pending.take().or_else(|| self.receiver.try_recv().ok()) {
            // Kept until RabbitMQ took it, even if this round is abandoned midway.
            self.pending = Some(message.clone());
            let body = serde_json::to_vec(&message)?;
            let exchange = self.exchange.clone();
            self.channel()
                .await?
                .basic_publish(
                    exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await?;
            self.pending = None;
            round.published += 1;
        }
        Ok(())
    }

    async fn channel(&mut self) -> anyhow::Result<&Channel> {
        let alive = self
            .session
            .as_ref()
            .is_some_and(|(connection, channel)| connection.status().connected() && channel.status().connected());
        if !alive {
            let connection = amqp::connect(&self.amqp_url, "baton-control").await?;
            let channel = connection.create_channel().await?;
            amqp::declare_fanout(&channel, &self.exchange).await?;
            self.session = Some((connection, channel));
        }
        Ok(&self.session.as_ref().expect("connected above").1)
    }

    async fn close(&mut self) {
        if let Some((connection, _)) = self.session.take()
            && let Err(e) = connection.close(200, "stopping".into()).await
        {
            tracing::debug!(error = %e, "closing the control connection failed");
        }
    }
}

impl Service for ControlPublisher {
    fn name(&self) -> &'static str {
        "control-publisher"
    }

    async fn run(mut self, cancel: CancellationToken) {
        loop {
            if self.pending.is_none() {
                // Connected ahead of the first message, with the exchange declared.
                if let Err(e) = self.channel().await {
                    self.session = None;
                    tracing::warn!(error = %format!("{e:#}"), "control publisher reconnecting");
                    if pause(&cancel, self.config.reconnect_delay).await.is_break() {
                        break;
                    }
                    continue;
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    next = self.receiver.recv() => match next {
                        Some(message) => self.pending = Some(message),
                        None => break,
                    },
                }
            }
            let failed = match tokio::time::timeout(self.config.round_timeout, self.run_once()).await {
                Ok(Ok(_)) => false,
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "control publisher reconnecting");
                    true
                }
                Err(_) => {
                    tracing::warn!(timeout = ?self.config.round_timeout, "control publishing timed out; reconnecting");
                    self.session = None;
                    true
                }
            };
            if failed && pause(&cancel, self.config.reconnect_delay).await.is_break() {
                break;
            }
        }
        self.close().await;
    }
}
