//! One delivery, from the job message to the ack: `started`, the handler with heartbeats and the
//! ack deadline, then the outcome.
//!
//! A job message is acked once its outcome is confirmed, so a worker that dies mid-job hands the
//! message back. A job that runs past the ack deadline is acked early, before RabbitMQ's consumer
//! timeout would close the channel; from then on its lease, renewed by heartbeats at the interval
//! the job message gives, is what tells Baton the attempt is alive.

use std::{sync::Arc, time::Duration};

use baton_protocol::{EventKind, FailureInfo, JobMessage, PROTOCOL_VERSION};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::running::{Registration, Running};
use crate::{
    events::EventPublisher,
    handler::{Handler, Job, JobError},
    inputs::Inputs,
};

/// The part of a job message every version keeps.
#[derive(serde::Deserialize)]
struct Envelope {
    version: u32,
    job_id: Uuid,
    attempt: u32,
}

/// What the attempts of one session share.
pub(super) struct Context<H> {
    pub(super) handler: Arc<H>,
    pub(super) events: EventPublisher,
    pub(super) inputs: Arc<Inputs>,
    pub(super) default_reply_to: String,
    pub(super) running: Running,
    pub(super) fallback_heartbeat_interval: Duration,
    pub(super) ack_deadline: Duration,
}

#[tracing::instrument(skip_all, fields(job_id, attempt))]
pub(super) async fn process<H: Handler>(context: Arc<Context<H>>, delivery: Delivery) {
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

    // A URL that dies before the fetch could start would fail the attempt for nothing: given
    // back unstarted, the attempt is published again with fresh URLs, at no cost to its budget.
    if let Some(file) = context.inputs.expiring(&message.files, time::OffsetDateTime::now_utc()) {
        tracing::warn!(input = %file.name,
            "a signed input URL has expired or is about to; handing the job back for a fresh one");
        give_back(&delivery).await;
        return;
    }

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
    // Held until the handler returns: cached inputs are not evicted while it reads them.
    let resolved = context.inputs.resolve(&message.files).await?;
    let inputs = resolved.inputs.clone();
    let outcome = context
        .handler
        .handle(Job {
            message,
            inputs,
            cancel,
        })
        .await;
    drop(resolved);
    outcome
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
