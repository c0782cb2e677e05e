//! The consume → check → run → report → ack loop, with reconnection.

use std::{path::PathBuf, sync::Arc, time::Duration};

use baton_protocol::{EventKind, FailureInfo, JobMessage};
use futures::StreamExt;
use lapin::{
    Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::WorkerConfig,
    events::EventPublisher,
    handler::{Handler, Job},
    inputs,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Runtime {
    config: WorkerConfig,
}

struct Context<H> {
    handler: Arc<H>,
    events: EventPublisher,
    mount: PathBuf,
    default_reply_to: String,
}

impl Runtime {
    pub fn new(config: WorkerConfig) -> Self {
        Self { config }
    }

    /// Consumes until `cancel` fires, reconnecting after failures. On cancellation it stops
    /// taking jobs and waits (up to the shutdown timeout) for running ones to report.
    pub async fn run<H: Handler>(self, handler: H, cancel: CancellationToken) {
        let handler = Arc::new(handler);
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            match self.session(&handler, &cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "worker session ended; reconnecting");
                }
            }
            let delay =
                Duration::from_millis(200 * (1 << failures.min(5))).min(Duration::from_secs(5));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session<H: Handler>(
        &self,
        handler: &Arc<H>,
        cancel: &CancellationToken,
        failures: &mut u32,
    ) -> anyhow::Result<()> {
        let queue = self.config.queue();
        let default_reply_to = baton_protocol::queue::events_queue(&self.config.queue_prefix);
        // Separate connections: a publisher blocked by a RabbitMQ alarm must not stall acks.
        let consuming = connect(&self.config.amqp_url, "baton-worker-consume").await?;
        let publishing = connect(&self.config.amqp_url, "baton-worker-publish").await?;

        let channel = consuming.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        declare(&channel, &queue).await?;
        let publish_channel = publishing.create_channel().await?;
        declare(&publish_channel, &default_reply_to).await?;
        let context = Arc::new(Context {
            handler: Arc::clone(handler),
            events: EventPublisher::new(publish_channel, self.config.worker_id.clone()).await?,
            mount: self.config.storage_dir.clone(),
            default_reply_to,
        });

        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        *failures = 0;
        tracing::info!(%queue, prefetch = self.config.prefetch, worker = %self.config.worker_id, "worker consuming");

        let running = TaskTracker::new();
        let outcome = loop {
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        running.spawn(process(Arc::clone(&context), delivery));
                    }
                    Some(Err(e)) => break Err(anyhow::Error::from(e)),
                    None => break Err(anyhow::anyhow!("the consumer was cancelled by RabbitMQ")),
                },
            }
        };

        if channel.status().connected()
            && let Err(e) = channel
                .basic_cancel(deliveries.tag(), BasicCancelOptions::default())
                .await
        {
            tracing::debug!(error = %e, "cancelling the consumer failed");
        }
        running.close();
        if tokio::time::timeout(self.config.shutdown_timeout, running.wait())
            .await
            .is_err()
        {
            tracing::warn!("running jobs did not finish in time; they will be redelivered");
        }
        for connection in [&consuming, &publishing] {
            if connection.status().connected()
                && let Err(e) = connection.close(200, "worker stopping".into()).await
            {
                tracing::debug!(error = %e, "closing a connection failed");
            }
        }
        outcome
    }
}

async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(connection) => Ok(connection?),
        Err(_) => anyhow::bail!("timed out connecting to RabbitMQ"),
    }
}

async fn declare(channel: &lapin::Channel, queue: &str) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(baton_protocol::queue::QUEUE_TYPE.into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), options, arguments)
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(job_id, attempt))]
async fn process<H: Handler>(context: Arc<Context<H>>, delivery: Delivery) {
    let message: JobMessage = match serde_json::from_slice(&delivery.data) {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(error = %e, "rejecting a malformed job message");
            if let Err(e) = delivery.reject(BasicRejectOptions { requeue: false }).await {
                tracing::warn!(error = %e, "reject failed");
            }
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("job_id", tracing::field::display(message.job_id));
    span.record("attempt", message.attempt);
    let reply_to = delivery.properties.reply_to().as_ref().map_or_else(
        || context.default_reply_to.clone(),
        |q| q.as_str().to_owned(),
    );
    let (job_id, attempt) = (message.job_id, message.attempt);

    if let Err(e) = context
        .events
        .publish(&reply_to, job_id, attempt, EventKind::Started)
        .await
    {
        tracing::warn!(error = %format!("{e:#}"), "could not report the start; requeueing the job");
        requeue(&delivery).await;
        return;
    }

    let outcome = match inputs::resolve(&context.mount, &message.files).await {
        Ok(inputs) => context.handler.handle(Job { message, inputs }).await,
        Err(e) => Err(e),
    };
    let kind = match outcome {
        Ok(result) => EventKind::Succeeded { result },
        Err(e) => {
            tracing::info!(code = %e.code, retryable = e.retryable, "job failed");
            EventKind::Failed {
                error: FailureInfo {
                    code: e.code,
                    message: e.message,
                },
                retryable: e.retryable,
            }
        }
    };
    match context
        .events
        .publish(&reply_to, job_id, attempt, kind)
        .await
    {
        // Ack only once Baton's queue holds the outcome.
        Ok(()) => {
            if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %e, "ack failed; the job will be redelivered and its outcome reported again");
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not report the outcome; requeueing the job");
            requeue(&delivery).await;
        }
    }
}

async fn requeue(delivery: &Delivery) {
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    if let Err(e) = delivery.nack(options).await {
        tracing::warn!(error = %e, "nack failed; RabbitMQ will redeliver when the channel closes");
    }
}
