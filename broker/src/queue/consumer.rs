//! A supervised RabbitMQ consumer: reconnects and resubscribes after any failure, and restarts
//! a subscription that went quiet while its queue holds messages (a consumer can stop receiving
//! without any error after a broker restart).

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{AmqpHealth, amqp};
use crate::db;

/// How long a subscription may stay silent while its queue has ready messages.
const WATCHDOG: Duration = Duration::from_secs(15);

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

pub struct Consumer<H> {
    pub name: &'static str,
    pub amqp_url: String,
    pub source: Source,
    pub prefetch: u16,
    /// How many deliveries are handled at once (each lane in order).
    pub lanes: usize,
    pub handler: Arc<H>,
    /// Set when this consumer's connection state is reported in health checks.
    pub health: Option<AmqpHealth>,
}

impl<H: DeliveryHandler> Consumer<H> {
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            match self.consume(&cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    self.set_health(false);
                    failures = failures.saturating_add(1);
                    tracing::warn!(consumer = self.name, error = %format!("{e:#}"), failures, "consumer stopped; reconnecting");
                }
            }
            let delay = Duration::from_millis(200 * (1 << failures.min(5))).min(Duration::from_secs(5));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.set_health(false);
    }

    fn set_health(&self, up: bool) {
        if let Some(health) = &self.health {
            health.set_consumer(up);
        }
    }

    async fn consume(&self, cancel: &CancellationToken, failures: &mut u32) -> anyhow::Result<()> {
        let queue = self.source.queue();
        let connection = amqp::connect(&self.amqp_url, self.name).await?;
        let channel = connection.create_channel().await?;
        match &self.source {
            Source::Queue(name) => amqp::declare_queue(&channel, name).await?,
            Source::DeadLetters { prefix } => amqp::declare_dead_letters(&channel, prefix).await?,
        }
        channel.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
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
        tracing::info!(consumer = self.name, %queue, "consuming");

        let (lanes, mut lane_tasks) = self.start_lanes(cancel);
        let mut watchdog = tokio::time::interval(WATCHDOG);
        watchdog.tick().await;
        let mut received_since_check = false;
        let outcome = loop {
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                _ = watchdog.tick() => {
                    if !received_since_check && let Some(ready) = amqp::ready_messages(&connection, &queue).await? && ready > 0 {
                        break Err(anyhow::anyhow!("no delivery for {WATCHDOG:?} while {ready} messages are ready"));
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
                        let lane = usize::try_from(self.handler.key(&delivery) % lanes.len() as u64).unwrap_or_default();
                        if lanes[lane].send(delivery).await.is_err() {
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
        close(&connection, self.name).await;
        outcome
    }

    /// Spawns the lanes: each handles its deliveries in order and acks each once handled.
    fn start_lanes(&self, cancel: &CancellationToken) -> (Vec<mpsc::Sender<Delivery>>, JoinSet<anyhow::Result<()>>) {
        let count = self.lanes.max(1);
        let depth = (usize::from(self.prefetch) / count).max(1);
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
    let mut failures: u32 = 0;
    loop {
        match operation().await {
            Err(e) if db::is_unavailable(&e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "Postgres unavailable; will try again");
                let delay = Duration::from_millis(100 * (1 << failures.min(6)));
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            other => return Some(other),
        }
    }
}
