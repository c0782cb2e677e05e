//! Applying worker events. The current attempt number and the worker that started it form the
//! fencing token: an event for another attempt, or from another worker, changes nothing. States
//! only move forward, so duplicates change nothing either.

use std::time::Duration;

use baton_protocol::{ControlMessage, EventKind, WorkerEvent};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::lifecycle::{self, Applied};
use crate::{
    db::{self, timeline},
    domain::{JobStatus, TimelineKind},
    telemetry::metrics as m,
};

/// What an event did, and a control message to send if the sender should stop working on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub applied: Applied,
    pub control: Option<ControlMessage>,
}

impl Outcome {
    fn ignored() -> Self {
        Self {
            applied: Applied::Ignored,
            control: None,
        }
    }
}

#[tracing::instrument(skip_all, fields(job_id = %event.job_id, attempt = event.attempt, kind = event.type_name()))]
pub async fn apply(db: &PgPool, event: &WorkerEvent, lease: Duration) -> sqlx::Result<Outcome> {
    let Ok(attempt) = i32::try_from(event.attempt) else {
        return Ok(Outcome::ignored());
    };
    let mut tx = db.begin().await?;
    let Some(job) = db::jobs::lock(&mut tx, event.job_id.into()).await? else {
        return Ok(Outcome::ignored());
    };
    let status = job.status;
    let current = job.attempt == attempt && !status.is_terminal();
    let runner = job.worker.as_deref() == Some(event.worker.as_str());
    // A worker that should not be working on this attempt is told to stop.
    let stop = |reason: &str| ControlMessage::Cancel {
        job_id: job.id.into(),
        attempt: event.attempt,
        worker: Some(event.worker.clone()),
        reason: reason.to_owned(),
    };
    let stop_reason = if status.is_terminal() {
        status.as_str()
    } else {
        "superseded"
    };

    let outcome = match &event.kind {
        EventKind::Started if current && status == JobStatus::Queued => {
            db::jobs::start(&mut tx, job.id, &event.worker, lease).await?;
            timeline::record(
                &mut tx,
                job.id,
                TimelineKind::Started,
                Some(attempt),
                Some(&event.worker),
                None,
            )
            .await?;
            metrics::counter!(m::ATTEMPTS_STARTED, "model" => job.model.clone()).increment(1);
            let wait = (OffsetDateTime::now_utc() - job.queued_at).as_seconds_f64().max(0.0);
            metrics::histogram!(m::QUEUE_WAIT, "model" => job.model.clone()).record(wait);
            moved(JobStatus::Running)
        }
        // The same worker saying it again.
        EventKind::Started if current && runner => Outcome::ignored(),
        EventKind::Started => Outcome {
            applied: Applied::Ignored,
            control: Some(stop(stop_reason)),
        },
        EventKind::Heartbeat if current && runner && status == JobStatus::Running => {
            db::jobs::renew_lease(&mut tx, job.id, lease).await?;
            timeline::heartbeat(&mut tx, job.id, attempt, &event.worker).await?;
            Outcome {
                applied: Applied::LeaseRenewed,
                control: None,
            }
        }
        EventKind::Heartbeat => Outcome {
            applied: Applied::Ignored,
            control: Some(stop(stop_reason)),
        },
        EventKind::Succeeded { result } if current && (runner || job.worker.is_none()) => {
            db::jobs::finish(
                &mut tx,
                job.id,
                JobStatus::Succeeded,
                Some(&event.worker),
                Some(result),
                None,
            )
            .await?;
            timeline::record(
                &mut tx,
                job.id,
                TimelineKind::Succeeded,
                Some(attempt),
                Some(&event.worker),
                None,
            )
            .await?;
            lifecycle::record_finished(&job, JobStatus::Succeeded);
            moved(JobStatus::Succeeded)
        }
        EventKind::Failed { error, retryable } if current && (runner || job.worker.is_none()) => {
            let applied = lifecycle::retry_or_fail(&mut tx, &job, json!(error), *retryable, "failed").await?;
            Outcome { applied, control: None }
        }
        EventKind::Succeeded { .. } | EventKind::Failed { .. } => Outcome::ignored(),
    };
    // Ignored events stay visible in the timeline (heartbeats aside: a stray worker sends many).
    if outcome.applied == Applied::Ignored && !matches!(event.kind, EventKind::Heartbeat) {
        let reason = if job.attempt != attempt {
            "another attempt is current"
        } else if status.is_terminal() {
            "the job already finished"
        } else if job.worker.is_some() && !runner {
            "another worker runs this attempt"
        } else {
            "duplicate"
        };
        let detail = json!({ "event": event.type_name(), "reason": reason });
        timeline::record(
            &mut tx,
            job.id,
            TimelineKind::Ignored,
            Some(attempt),
            Some(&event.worker),
            Some(detail),
        )
        .await?;
    }
    tx.commit().await?;
    let applied = if outcome.applied == Applied::Ignored {
        "false"
    } else {
        "true"
    };
    metrics::counter!(m::WORKER_EVENTS, "type" => event.type_name(), "applied" => applied).increment(1);
    Ok(outcome)
}

fn moved(status: JobStatus) -> Outcome {
    Outcome {
        applied: Applied::Moved(status),
        control: None,
    }
}
