//! Carries job messages RabbitMQ gave back (the dead-letter queue) to `jobs::returned`, which
//! decides what they mean, and the control message it decides back to the worker.

use baton_protocol::JobMessage;
use lapin::{message::Delivery, types::AMQPValue};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    consumer::{DeliveryHandler, with_db_retry},
    control::Control,
};
use crate::{
    jobs::{self, lifecycle::Applied},
    telemetry::metrics as m,
};

/// The [`DeliveryHandler`] of the dead-letter queue.
pub struct DeadLetterHandler {
    pub db: PgPool,
    pub control: Control,
}

impl DeliveryHandler for DeadLetterHandler {
    fn key(&self, delivery: &Delivery) -> u64 {
        serde_json::from_slice::<JobMessage>(&delivery.data).map_or(0, |m| m.job_id.as_u64_pair().1)
    }

    async fn handle(&self, delivery: &Delivery, cancel: &CancellationToken) -> bool {
        let reason = death_reason(delivery);
        let message = match serde_json::from_slice::<JobMessage>(&delivery.data) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, %reason, "dropping an unreadable dead-lettered message");
                metrics::counter!(m::DEAD_LETTERS, "outcome" => "unreadable").increment(1);
                return true;
            }
        };
        let attempt = i32::try_from(message.attempt).unwrap_or(-1);
        match with_db_retry(cancel, || {
            jobs::returned::apply(&self.db, message.job_id.into(), attempt, &reason)
        })
        .await
        {
            None => false,
            Some(Ok(outcome)) => {
                let applied = outcome.applied;
                tracing::info!(job_id = %message.job_id, attempt, %reason, ?applied, "dead-lettered job message");
                let outcome_label = if applied == Applied::Ignored {
                    "stale"
                } else {
                    "handled"
                };
                metrics::counter!(m::DEAD_LETTERS, "outcome" => outcome_label).increment(1);
                if let Some(message) = outcome.control {
                    self.control.send(message);
                }
                true
            }
            Some(Err(e)) => {
                let job_id = message.job_id;
                tracing::error!(%job_id, error = %e, "dropping a dead-lettered message that cannot be applied");
                true
            }
        }
    }
}

/// RabbitMQ's `x-first-death-reason` header: `delivery_limit` (returned by a worker: crash,
/// nack, shutdown), `rejected`, `expired` or `maxlen`.
fn death_reason(delivery: &Delivery) -> String {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-first-death-reason").cloned())
        .and_then(|value| match value {
            AMQPValue::LongString(s) => Some(s.to_string()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
