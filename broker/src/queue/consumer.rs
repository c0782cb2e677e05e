//! A supervised RabbitMQ consumer: reconnects and resubscribes after any failure, and restarts
//! a subscription that went quiet while its queue holds messages (a consumer can stop receiving
//! without any error after a broker restart).

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use super::{AmqpHealth, amqp};
use crate::{
    db,
    service::{Backoff, InvalidConfig, Service, pause},
};

/// Handles one delivery. Returns `false` when cancelled before the delivery was dealt with: it
/// is then left unacknowledged for redelivery.
pub trait DeliveryHandler: Send + Sync + 'static {
    fn handle(&self, delivery: &Delivery, cancel: &CancellationToken) -> impl Future<Output = bool> + Send;

    /// Deliveries with the same key are handled one after another, in order; different keys
    /// run concurrently on separate lanes.
    fn key(&self, _delivery: &Delivery) -> u64 {
        0
    }
}

/// Which queue to consume, and what to declare first.
#[derive(Debug, Clone)]
pub enum Source {
    /// A plain durable quorum queue.
    Queue(String),
    /// The dead-letter queue of the given prefix (with its exchange and binding).
    DeadLetters { prefix: String },
}

impl Source {
    fn queue(&self) -> String {
        match self {
            Self::Queue(name) => name.clone(),
            Self::DeadLetters { prefix } => baton_protocol::queue::dead_letter_queue(prefix),
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Names the connection in RabbitMQ and the consumer in logs.
    pub name: &'static str,
    /// Unacknowledged deliveries RabbitMQ may hand over at once (`BATON_EVENTS_PREFETCH` for
    /// worker events, default 256).
    pub prefetch: u16,
    /// How many deliveries are handled at once (each lane in order; default 16).
    pub lanes: usize,
    /// How long a subscription may stay silent while its queue has ready messages (default 15 s).
    pub watchdog: Duration,
    /// Most deliveries one [`Consumer::run_once`] handles (default 256).
    pub batch: usize,
    /// Longest one [`Consumer::run_once`] may take (default 60 s).
    pub batch_timeout: Duration,
    /// Pauses between reconnects after consecutive failures (200 ms doubling to 5 s).
    pub reconnect: Backoff,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            name: "baton-consumer",
            prefetch: 256,
            lanes: 16,
            watchdog: Duration::from_secs(15),
            batch: 256,
            batch_timeout: Duration::from_secs(60),
            reconnect: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
        }
    }
}

impl ConsumerConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        InvalidConfig::at_least_one("BATON_EVENTS_PREFETCH", u64::from(self.prefetch))?;
        InvalidConfig::at_least_one("consumer lanes", u64::try_from(self.lanes).unwrap_or(u64::MAX))?;
        InvalidConfig::positive("consumer watchdog", self.watchdog)?;
        InvalidConfig::at_least_one("consumer batch", u64::try_from(self.batch).unwrap_or(u64::MAX))?;
        InvalidConfig::positive("consumer batch timeout", self.batch_timeout)
    }
}

/// What one [`Consumer::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeRound {
    /// Deliveries handled and acknowledged.
    pub handled: usize,
    /// Whether deliveries may remain (the batch was full, or a handler stopped early).
    pub more: bool,
}

pub struct Consumer<H> {
    config: ConsumerConfig,
    amqp_url: String,
    source: Source,
    handler: Arc<H>,
    /// Set when this consumer's connection state is reported in health checks.
    health: Option<AmqpHealth>,
}

impl<H: DeliveryHandler> Consumer<H> {
    pub fn new(amqp_url: String, source: Source, handler: H, config: ConsumerConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Self {
            config,
            amqp_url,
            source,
            handler: Arc::new(handler),
            health: None,
        })
    }

    /// Reports this consumer's connection state in health checks.
    pub fn with_health(mut self, health: AmqpHealth) -> Self {
        self.health = Some(health);
        self
    }

    /// Handles the deliveries ready now, one at a time and in order, up to a batch: declares the
    /// queue, gets each message, handles it and acknowledges it. What the long-running
    /// subscription of [`Service::run`] does, without waiting for more.
    #[tracing::instrument(skip_all, fields(consumer = self.config.name, handled = Empty))]
    pub async fn run_once(&self) -> anyhow::Result<ConsumeRound> {
        let mut round = ConsumeRound::default();
        let drained = tokio::time::timeout(self.config.batch_timeout, self.drain(&mut round)).await;
        tracing::Span::current().record("handled", round.handled);
        match drained {
            Ok(result) => result.map(|()| round),
            Err(_) => anyhow::bail!("{} timed out after {:?}", self.config.name, self.config.batch_timeout),
        }
    }

    async fn drain(&self, round: &mut ConsumeRound) -> anyhow::Result<()> {
        let queue = self.source.queue();
        let connection = amqp::connect(&self.amqp_url, self.config.name).await?;
        let result = async {
            let channel = connection.create_channel().await?;
            self.declare(&channel).await?;
            let never = CancellationToken::new();
            while round.handled < self.config.batch {
                let Some(message) = channel
                    .basic_get(queue.as_str().into(), BasicGetOptions::default())
                    .await?
                else {
                    return Ok(());
                };
                if !self.handler.handle(&message.delivery, &never).await {
                    break;
                }
                message.delivery.ack(BasicAckOptions::default()).await?;
                round.handled += 1;
            }
            round.more = true;
            Ok(())
        }
        .await;
        close(&connection, self.config.name).await;
        result
    }

    async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        match &self.source {
            Source::Queue(name) => amqp::declare_queue(channel, name).await,
            Source::DeadLetters { prefix } => amqp::declare_dead_letters(channel, prefix).await,
        }
    }

    fn set_health(&self, up: bool) {
        if let Some(health) = &self.health {
            health.set_consumer(up);
        }
    }

    async fn consume(&self, cancel: &CancellationToken, failures: &mut u32) -> anyhow::Result<()> {
        let queue = self.source.queue();
        let connection = amqp::connect(&self.amqp_url, self.config.name).await?;
        let channel = connection.create_channel().await?;
        self.declare(&channel).await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.set_health(true);
        *failures = 0;
        tracing::info!(consumer = self.config.name, %queue, "consuming");

        let (lanes, mut lane_tasks) = self.start_lanes(cancel);
        let mut watchdog = tokio::time::interval(self.config.watchdog);
        watchdog.tick().await;
        let mut received_since_check = false;
        let outcome = loop {
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                _ = watchdog.tick() => {
                    if !received_since_check && let Err(e) = self.check_not_stuck(&connection, &queue).await {
                        break Err(e);
                    }
                    received_since_check = false;
                }
                ended = lane_tasks.join_next() => {
                    break match ended {
                        Some(Ok(Ok(()))) | None => Ok(()),
                        Some(Ok(Err(e))) => Err(e),
                        Some(Err(e)) => Err(anyhow::anyhow!("a lane panicked: {e}")),
                    };
                }
                next = deliveries.next() => match next {
                    Some(delivery) => {
                        received_since_check = true;
                        let delivery = delivery?;
                        let lane = &lanes[self.lane_of(&delivery, lanes.len())];
                        if lane.send(delivery).await.is_err() {
                            break Err(anyhow::anyhow!("a lane stopped"));
                        }
                    }
                    None => break Err(anyhow::anyhow!("the subscription was cancelled by RabbitMQ")),
                },
            }
        };
        // Let the lanes finish what they hold (handlers stop early on cancellation), then close.
        drop(lanes);
        while lane_tasks.join_next().await.is_some() {}
        close(&connection, self.config.name).await;
        outcome
    }

    /// An error if the queue holds ready messages: called when none arrived for a watchdog period.
    async fn check_not_stuck(&self, connection: &Connection, queue: &str) -> anyhow::Result<()> {
        match amqp::ready_messages(connection, queue).await? {
            Some(ready) if ready > 0 => {
                let quiet = self.config.watchdog;
                Err(anyhow::anyhow!(
                    "no delivery for {quiet:?} while {ready} messages are ready"
                ))
            }
            _ => Ok(()),
        }
    }

    fn lane_of(&self, delivery: &Delivery, lanes: usize) -> usize {
        usize::try_from(self.handler.key(delivery) % lanes as u64).unwrap_or_default()
    }

    /// Spawns the lanes: each handles its deliveries in order and acks each once handled.
    fn start_lanes(&self, cancel: &CancellationToken) -> (Vec<mpsc::Sender<Delivery>>, JoinSet<anyhow::Result<()>>) {
        let count = self.config.lanes.max(1);
        let depth = (usize::from(self.config.prefetch) / count).max(1);
        let mut senders = Vec::with_capacity(count);
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            let (sender, mut receiver) = mpsc::channel::<Delivery>(depth);
            senders.push(sender);
            let (handler, cancel) = (Arc::clone(&self.handler), cancel.clone());
            tasks.spawn(async move {
                while let Some(delivery) = receiver.recv().await {
                    if !handler.handle(&delivery, &cancel).await {
                        return Ok(());
                    }
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Ok(())
            });
        }
        (senders, tasks)
    }
}

impl<H: DeliveryHandler> Service for Consumer<H> {
    fn name(&self) -> &'static str {
        self.config.name
    }

    async fn run(self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            match self.consume(&cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    self.set_health(false);
                    failures = failures.saturating_add(1);
                    let consumer = self.config.name;
                    tracing::warn!(consumer, error = %format!("{e:#}"), failures, "consumer stopped; reconnecting");
                }
            }
            if pause(&cancel, self.config.reconnect.delay(failures.saturating_add(1)))
                .await
                .is_break()
            {
                break;
            }
        }
        self.set_health(false);
    }
}

async fn close(connection: &Connection, name: &str) {
    if let Err(e) = connection.close(200, "closing".into()).await {
        tracing::debug!(consumer = name, error = %e, "closing a connection failed");
    }
}

/// Runs `operation` until it succeeds, fails for a reason other than Postgres being
/// unreachable, or `cancel` fires (`None`). Used so a delivery is acknowledged only after its
/// effect committed.
pub async fn with_db_retry<T, F, Fut>(cancel: &CancellationToken, mut operation: F) -> Option<sqlx::Result<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(6400));
    let mut failures: u32 = 0;
    loop {
        match operation().await {
            Err(e) if db::is_unavailable(&e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "Postgres unavailable; will try again");
                if pause(cancel, backoff.delay(failures)).await.is_break() {
                    return None;
                }
            }
            other => return Some(other),
        }
    }
}
