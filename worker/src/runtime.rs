//! The consume → start → run (with heartbeats) → report → ack loop, with reconnection.
//!
//! Acknowledgement: a job message is acked once its outcome is confirmed, so a worker that dies
//! mid-job hands the message back; job queues dead-letter it to Baton, which retries it
//! (counting the attempt). A job that runs past the ack deadline is acked early, before
//! RabbitMQ's consumer timeout would close the channel; from then on its lease, renewed by
//! heartbeats, is what tells Baton the attempt is alive. Heartbeats follow the interval in the
//! job message, which Baton derives from its lease.
//!
//! A process runs an attempt once: another delivery of an attempt it is running is acked and
//! dropped without events, and the first keeps running and reports.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_protocol::{ControlMessage, EventKind, FailureInfo, JobMessage, PROTOCOL_VERSION, amqp};
use futures::StreamExt;
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        BasicRejectOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    config::WorkerConfig,
    events::EventPublisher,
    handler::{Handler, Job, JobError},
    inputs,
};

pub struct Runtime {
    config: WorkerConfig,
}

/// The part of a job message every version keeps.
#[derive(serde::Deserialize)]
struct Envelope {
    version: u32,
    job_id: Uuid,
    attempt: u32,
}

/// Running attempts, so control messages can reach them.
type Running = Arc<Mutex<HashMap<(Uuid, u32), CancellationToken>>>;

struct Context<H> {
    handler: Arc<H>,
    events: EventPublisher,
    mount: PathBuf,
    default_reply_to: String,
    running: Running,
    fallback_heartbeat_interval: Duration,
    ack_deadline: Duration,
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
            let delay = Duration::from_millis(200 * (1 << failures.min(5))).min(Duration::from_secs(5));
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
        let prefix = &self.config.queue_prefix;
        let queue = self.config.queue();
        let default_reply_to = baton_protocol::queue::events_queue(prefix);
        // Separate connections: a publisher blocked by a RabbitMQ alarm must not stall acks.
        let consuming = amqp::connect(&self.config.amqp_url, "baton-worker-consume").await?;
        let publishing = amqp::connect(&self.config.amqp_url, "baton-worker-publish").await?;

        let channel = consuming.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        amqp::declare_job_queue(&channel, prefix, &queue).await?;
        let publish_channel = publishing.create_channel().await?;
        amqp::declare_quorum_queue(&publish_channel, &default_reply_to).await?;
        let mut controls = subscribe_control(&consuming, prefix).await?;

        let running: Running = Arc::default();
        let context = Arc::new(Context {
            handler: Arc::clone(handler),
            events: EventPublisher::new(publish_channel, self.config.worker_id.clone()).await?,
            mount: self.config.storage_dir.clone(),
            default_reply_to,
            running: Arc::clone(&running),
            fallback_heartbeat_interval: self.config.fallback_heartbeat_interval,
            ack_deadline: self.config.ack_deadline,
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

        let tasks = TaskTracker::new();
        let outcome = loop {
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        tasks.spawn(process(Arc::clone(&context), delivery));
                    }
                    Some(Err(e)) => break Err(anyhow::Error::from(e)),
                    None => break Err(anyhow::anyhow!("the consumer was cancelled by RabbitMQ")),
                },
                control = controls.next() => match control {
                    Some(Ok(delivery)) => apply_control(&running, &self.config.worker_id, &delivery.data),
                    Some(Err(e)) => break Err(anyhow::Error::from(e)),
                    None => break Err(anyhow::anyhow!("the control subscription ended")),
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
        tasks.close();
        if tokio::time::timeout(self.config.shutdown_timeout, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("running jobs did not finish in time; Baton will retry them");
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

/// A private queue bound to the control exchange: it lives as long as this connection.
async fn subscribe_control(connection: &Connection, prefix: &str) -> anyhow::Result<lapin::Consumer> {
    let channel: Channel = connection.create_channel().await?;
    let exchange = baton_protocol::queue::control_exchange(prefix);
    amqp::declare_fanout(&channel, &exchange).await?;
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

fn apply_control(running: &Running, me: &str, data: &[u8]) {
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

/// An attempt's place in the running map, removed when its processing ends, however it ends.
struct Registration {
    running: Running,
    key: (Uuid, u32),
    cancel: CancellationToken,
}

impl Registration {
    /// Registers the attempt, or returns `None` if this process is already running it.
    fn claim(running: &Running, key: (Uuid, u32)) -> Option<Self> {
        let mut map = running.lock().expect("running map lock");
        if map.contains_key(&key) {
            return None;
        }
        let cancel = CancellationToken::new();
        map.insert(key, cancel.clone());
        Some(Self {
            running: Arc::clone(running),
            key,
            cancel,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.lock().expect("running map lock").remove(&self.key);
    }
}

#[tracing::instrument(skip_all, fields(job_id, attempt))]
async fn process<H: Handler>(context: Arc<Context<H>>, delivery: Delivery) {
    let reply_to = delivery
        .properties
        .reply_to()
        .as_ref()
        .map_or_else(|| context.default_reply_to.clone(), |q| q.as_str().to_owned());
    // The envelope first: a newer version may have changed the rest of the message.
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&delivery.data) else {
        // No job to report on: dead-lettered to Baton, which records it and does not loop.
        tracing::error!("rejecting a job message without job_id, attempt and version");
        if let Err(e) = delivery.reject(BasicRejectOptions { requeue: false }).await {
            tracing::warn!(error = %e, "reject failed");
        }
        return;
    };
    let span = tracing::Span::current();
    span.record("job_id", tracing::field::display(envelope.job_id));
    span.record("attempt", envelope.attempt);
    let (job_id, attempt) = (envelope.job_id, envelope.attempt);
    let message = match serde_json::from_slice::<JobMessage>(&delivery.data) {
        Ok(message) if envelope.version <= PROTOCOL_VERSION => message,
        unusable => {
            let error = match unusable {
                Ok(_) => JobError::permanent(
                    "unsupported_version",
                    format!(
                        "job message version {} is newer than this worker's {PROTOCOL_VERSION}",
                        envelope.version
                    ),
                ),
                Err(e) => JobError::permanent("invalid_message", format!("the job message is malformed: {e}")),
            };
            tracing::error!(code = %error.code, "cannot run this job message");
            let kind = EventKind::Failed {
                error: FailureInfo {
                    code: error.code,
                    message: error.message,
                },
                retryable: false,
            };
            match context.events.publish(&reply_to, job_id, attempt, kind).await {
                Ok(()) => {
                    ack(&delivery).await;
                }
                Err(_) => give_back(&delivery).await,
            }
            return;
        }
    };

    // Registered before `started`, so that two deliveries of one attempt cannot both get past
    // this point. The second copy (Baton may publish an attempt again) is acked without any
    // event and the first runs on: acked rather than given back, because a copy of a running
    // attempt returned to Baton would end that attempt as `worker_lost`.
    let Some(registration) = Registration::claim(&context.running, (job_id, attempt)) else {
        tracing::info!("this attempt is already running here; dropping the duplicate delivery");
        ack(&delivery).await;
        return;
    };
    let cancel = registration.cancel.clone();

    if let Err(e) = context
        .events
        .publish(&reply_to, job_id, attempt, EventKind::Started)
        .await
    {
        tracing::warn!(error = %format!("{e:#}"), "could not report the start; handing the job back");
        give_back(&delivery).await;
        return;
    }

    // Baton's lease is its setting: the message says how often to renew it.
    let interval = message
        .heartbeat_interval()
        .unwrap_or(context.fallback_heartbeat_interval);
    tracing::debug!(heartbeat_ms = interval.as_millis(), "started");
    let heartbeats = tokio::spawn(heartbeat(
        Arc::clone(&context),
        reply_to.clone(),
        job_id,
        attempt,
        interval,
        cancel.clone(),
    ));
    let work = run(&context, message, cancel.clone());
    tokio::pin!(work);
    let mut acked = false;
    let deadline = tokio::time::sleep(context.ack_deadline);
    tokio::pin!(deadline);
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break Some(outcome),
            () = cancel.cancelled() => break None,
            () = &mut deadline, if !acked => {
                tracing::info!("job still running at the ack deadline: acking early, the lease guards it now");
                acked = ack(&delivery).await;
                if !acked {
                    // Ack failed: the channel is gone and RabbitMQ has handed the job back.
                    break None;
                }
            }
        }
    };
    heartbeats.abort();

    let Some(outcome) = outcome else {
        // Stopped on Baton's request: nothing to report.
        if !acked {
            ack(&delivery).await;
        }
        return;
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
    match context.events.publish(&reply_to, job_id, attempt, kind).await {
        // Ack only once Baton's queue holds the outcome.
        Ok(()) => {
            if !acked {
                ack(&delivery).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not report the outcome; handing the job back");
            if !acked {
                give_back(&delivery).await;
            }
        }
    }
}

/// Checks the message and inputs, then runs the handler.
async fn run<H: Handler>(
    context: &Context<H>,
    message: JobMessage,
    cancel: CancellationToken,
) -> Result<serde_json::Value, JobError> {
    let inputs = inputs::resolve(&context.mount, &message.files).await?;
    context
        .handler
        .handle(Job {
            message,
            inputs,
            cancel,
        })
        .await
}

/// Renews the attempt's lease every `interval` until aborted. A failed heartbeat is retried at
/// the next tick; the lease outlasts several.
async fn heartbeat<H: Handler>(
    context: Arc<Context<H>>,
    reply_to: String,
    job_id: Uuid,
    attempt: u32,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = context
            .events
            .publish(&reply_to, job_id, attempt, EventKind::Heartbeat)
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "heartbeat not confirmed");
        }
    }
}

async fn ack(delivery: &Delivery) -> bool {
    match delivery.ack(BasicAckOptions::default()).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "ack failed; RabbitMQ hands the job back to Baton");
            false
        }
    }
}

/// Returns the message to RabbitMQ, which dead-letters it to Baton; Baton decides when to
/// publish it again, with backoff, so nothing spins.
async fn give_back(delivery: &Delivery) {
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    if let Err(e) = delivery.nack(options).await {
        tracing::warn!(error = %e, "nack failed; RabbitMQ hands the job back when the channel closes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_claimed_once_until_its_processing_ends() {
        let running = Running::default();
        let key = (Uuid::nil(), 1);
        let first = Registration::claim(&running, key).expect("the first delivery runs");
        assert!(Registration::claim(&running, key).is_none(), "a second copy is refused");
        assert!(
            Registration::claim(&running, (Uuid::nil(), 2)).is_some(),
            "another attempt is not a copy"
        );
        drop(first);
        assert!(
            Registration::claim(&running, key).is_some(),
            "free again once the first ended"
        );
    }
}
