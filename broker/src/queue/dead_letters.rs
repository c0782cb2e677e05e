//! Handles job messages RabbitMQ gave back: a worker crashed or was killed holding one,
//! rejected it, or shut down with it unstarted. Job queues dead-letter every such message, so
//! every re-run goes through Baton, counted against the job's attempts.

use baton_protocol::JobMessage;
use lapin::{message::Delivery, types::AMQPValue};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    consumer::{DeliveryHandler, with_db_retry},
    control::Control,
};
use crate::{
    db,
    jobs::lifecycle::{self, Applied},
    telemetry::metrics as m,
};

pub struct DeadLetterHandler {
    pub db: PgPool,
    pub control: Control,
}

impl DeadLetterHandler {
    /// Returns what happened and, if the attempt was running, the worker that ran it.
    async fn apply(&self, job_id: Uuid, attempt: i32, reason: &str) -> sqlx::Result<(Applied, Option<String>)> {
        let mut tx = self.db.begin().await?;
        let Some(job) = db::jobs::lock(&mut tx, job_id.into()).await? else {
            return Ok((Applied::Ignored, None));
        };
        let runner = job
            .worker
            .clone()
            .filter(|_| job.status == crate::domain::JobStatus::Running);
        let applied = lifecycle::dead_lettered(&mut tx, &job, attempt, reason).await?;
        tx.commit().await?;
        Ok((applied, runner))
    }
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
        match with_db_retry(cancel, || self.apply(message.job_id, attempt, &reason)).await {
            None => false,
            Some(Ok((applied, runner))) => {
                tracing::info!(job_id = %message.job_id, attempt, %reason, ?applied, "dead-lettered job message");
                let outcome = if applied == Applied::Ignored {
                    "stale"
                } else {
                    "handled"
                };
                metrics::counter!(m::DEAD_LETTERS, "outcome" => outcome).increment(1);
                if let Some(runner) = runner.filter(|_| applied != Applied::Ignored) {
                    self.control
                        .cancel(message.job_id.into(), attempt, Some(&runner), "worker_lost");
                }
                true
            }
            Some(Err(e)) => {
                tracing::error!(job_id = %message.job_id, error = %e, "dropping a dead-lettered message that cannot be applied");
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
