//! The consume → start → run (with heartbeats) → report → ack loop, with reconnection.
//!
//! A session opens the connections, subscribes to control messages, then consumes the model's
//! queue, handing each delivery to [`attempt`]; a failed session is retried with backoff.
//! A job message given back, or held by a worker that dies, is dead-lettered by its queue to
//! Baton, which retries the job (counting the attempt).
//!
//! A process runs an attempt once: another delivery of an attempt it is running is acked and
//! dropped without events, and the first keeps running and reports.

mod attempt;
mod control;
mod running;

use std::{sync::Arc, time::Duration};

use baton_protocol::amqp;
use futures::StreamExt;
use lapin::{
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{
    attempt::{Context, process},
    control::{apply_control, subscribe_control},
    running::Running,
};
use crate::{cache::ObjectCache, config::WorkerConfig, events::EventPublisher, handler::Handler, inputs::Inputs};

pub struct Runtime {
    config: WorkerConfig,
}

impl Runtime {
    pub fn new(config: WorkerConfig) -> Self {
        Self { config }
    }

    /// Consumes until `cancel` fires, reconnecting after failures. On cancellation it stops
    /// taking jobs and waits (up to the shutdown timeout) for running ones to report.
    ///
    /// Fails instead of reconnecting when RabbitMQ refuses access (`ACCESS_REFUSED`): the user
    /// lacks a permission the worker needs (`baton_protocol::permissions`) or its login was
    /// refused, and connecting again would not change that.
    pub async fn run<H: Handler>(self, handler: H, cancel: CancellationToken) -> anyhow::Result<()> {
        let handler = Arc::new(handler);
        let inputs = Arc::new(Inputs {
            mount: self.config.storage_dir.clone(),
            cache: ObjectCache::open(self.config.cache.clone())?,
        });
        let mut failures: u32 = 0;
        let mut backoff = reconnect_backoff();
        while !cancel.is_cancelled() {
            match self.session(&handler, &inputs, &cancel, &mut failures).await {
                Ok(()) => break,
                Err(e) => {
                    if let Some(reason) = access_refusal(&e) {
                        anyhow::bail!(
                            "RabbitMQ refused access ({reason}): the user of BATON_AMQP_URL needs valid credentials \
                             and the permissions of a worker of model `{}` with queue prefix `{}` \
                             (protocol/README.md, \"RabbitMQ users for workers\")",
                            self.config.model,
                            self.config.queue_prefix
                        );
                    }
                    // Zero: the session had connected, so the next failure starts the delays over.
                    if failures == 0 {
                        backoff = reconnect_backoff();
                    }
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "worker session ended; reconnecting");
                }
            }
            let delay = backoff.next().unwrap_or(RECONNECT_MAX_DELAY);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        Ok(())
    }

    async fn session<H: Handler>(
        &self,
        handler: &Arc<H>,
        inputs: &Arc<Inputs>,
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
        // Baton declares the events queue; checked passively (no permission needed) and declared
        // only when Baton has never run, so that the first `started` is routable.
        amqp::ensure_quorum_queue(&publishing, &default_reply_to).await?;
        let publish_channel = publishing.create_channel().await?;
        let mut controls = subscribe_control(&consuming, prefix).await?;

        let running: Running = Arc::default();
        let context = Arc::new(Context {
            handler: Arc::clone(handler),
            events: EventPublisher::new(publish_channel, self.config.worker_id.clone()).await?,
            inputs: Arc::clone(inputs),
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

/// RabbitMQ's reason, if it refused access somewhere in `error`'s chain.
fn access_refusal(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        let amqp = cause.downcast_ref::<lapin::Error>().or_else(|| {
            cause
                .downcast_ref::<amqp::ConnectError>()
                .and_then(amqp::ConnectError::amqp)
        });
        amqp.and_then(amqp::access_refusal).map(str::to_owned)
    })
}

/// The longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Pauses between reconnection attempts: 400 ms doubling to at most 5 s, without end.
fn reconnect_backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;

    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(400))
        .with_factor(2.0)
        .with_max_delay(RECONNECT_MAX_DELAY)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_from_400_ms_up_to_5_s() {
        let delays: Vec<u128> = reconnect_backoff().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
