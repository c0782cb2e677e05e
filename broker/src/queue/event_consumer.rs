//! Carries worker events from the events queue to `jobs::reports`, and the control messages it
//! decides back to workers. An event is acknowledged only after its effect committed, so a
//! crash or a Postgres outage means redelivery, which the idempotent state machine absorbs.

use std::time::Duration;

use baton_protocol::{EventKind, FailureInfo, WorkerEvent};
use lapin::message::Delivery;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    consumer::{DeliveryHandler, with_db_retry},
    control::Control,
};
use crate::jobs;

/// The [`DeliveryHandler`] of the events queue.
pub struct WorkerEventHandler {
    pub db: PgPool,
    pub control: Control,
    pub lease: Duration,
}

impl DeliveryHandler for WorkerEventHandler {
    /// One lane per job: a job's events apply in the order the worker sent them.
    fn key(&self, delivery: &Delivery) -> u64 {
        #[derive(serde::Deserialize)]
        struct JobOnly {
            job_id: uuid::Uuid,
        }
        serde_json::from_slice::<JobOnly>(&delivery.data).map_or(0, |e| e.job_id.as_u64_pair().1)
    }

    async fn handle(&self, delivery: &Delivery, cancel: &CancellationToken) -> bool {
        let event = match serde_json::from_slice::<WorkerEvent>(&delivery.data) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, bytes = delivery.data.len(), "dropping a malformed worker event");
                return true;
            }
        };
        match with_db_retry(cancel, || jobs::reports::apply(&self.db, &event, self.lease)).await {
            None => false,
            Some(Ok(outcome)) => {
                tracing::debug!(job_id = %event.job_id, applied = ?outcome.applied, "worker event");
                if let Some(message) = outcome.control {
                    self.control.send(message);
                }
                true
            }
            Some(Err(e)) => {
                // Not transient: retrying would loop forever on the same error. An outcome
                // Postgres refuses (a NUL character in JSON text, say) fails the job rather than
                // leaving it running until its lease runs out.
                tracing::error!(job_id = %event.job_id, error = %e, "a worker event cannot be applied");
                if let EventKind::Succeeded { .. } | EventKind::Failed { .. } = event.kind {
                    let failed = WorkerEvent {
                        kind: EventKind::Failed {
                            error: FailureInfo {
                                code: "invalid_result".into(),
                                message: "the worker's outcome could not be stored".into(),
                            },
                            retryable: false,
                        },
                        ..event.clone()
                    };
                    if let Some(Err(e)) =
                        with_db_retry(cancel, || jobs::reports::apply(&self.db, &failed, self.lease)).await
                    {
                        tracing::error!(job_id = %event.job_id, error = %e, "could not fail the job either");
                    }
                }
                true
            }
        }
    }
}
