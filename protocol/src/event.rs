//! Events a worker reports about a job attempt.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// An event about one attempt of one job, published by a worker to the queue named in the job
/// message's `reply_to` property (default exchange, that queue name as routing key), as a
/// persistent JSON message with publisher confirms.
///
/// Baton applies events idempotently: within an attempt a job only moves forward (`queued` →
/// `running` → `succeeded` | `failed`, or to the next attempt after a retryable failure), and an
/// event for an attempt other than the job's current one, from a worker other than the one that
/// started it, or a repeat of an event already applied, changes nothing. A worker may therefore
/// safely resend an event whose confirm it did not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerEvent {
    /// Protocol version of this message ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
    pub version: u32,
    /// The job this event is about.
    pub job_id: Uuid,
    /// The attempt this event is about, copied from the job message.
    #[schemars(range(min = 1))]
    pub attempt: u32,
    /// The worker process's identity, unique per process start (for example
    /// `hostname/pid-random`): together with the attempt it fences off events of workers that
    /// lost the attempt.
    pub worker: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened to the attempt. Serialized with a `type` field naming the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The worker took the job and is about to run it. Starts the attempt's lease.
    Started,
    /// The attempt is still running: renews its lease. Send one every `heartbeat_interval_ms` of
    /// the job message (every 10 s if the message lacks the field); an attempt whose lease runs
    /// out is considered lost and retried elsewhere.
    Heartbeat,
    /// The model ran to completion; `result` is returned to the client verbatim.
    Succeeded {
        /// The model's output, any JSON value.
        result: Value,
    },
    /// The attempt failed.
    Failed {
        /// Why it failed.
        error: FailureInfo,
        /// Whether running the job again might succeed (a transient fault, not a bad input).
        retryable: bool,
    },
}

/// A failure as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureInfo {
    /// A short stable machine-readable code, for example `input_unreadable` or `model_error`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl WorkerEvent {
    /// The event's type as a string: `started`, `heartbeat`, `succeeded` or `failed`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Started => "started",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Succeeded { .. } => "succeeded",
            EventKind::Failed { .. } => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_flat_json_with_a_type_tag() {
        let event = WorkerEvent {
            version: 1,
            job_id: Uuid::nil(),
            attempt: 2,
            worker: "w1".into(),
            kind: EventKind::Failed {
                error: FailureInfo {
                    code: "model_error".into(),
                    message: "out of memory".into(),
                },
                retryable: true,
            },
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({
                "version": 1,
                "job_id": "00000000-0000-0000-0000-000000000000",
                "attempt": 2,
                "worker": "w1",
                "type": "failed",
                "error": {"code": "model_error", "message": "out of memory"},
                "retryable": true
            })
        );
        let back: WorkerEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let event: WorkerEvent = serde_json::from_value(json!({
            "version": 1, "job_id": Uuid::nil(), "attempt": 1, "worker": "w",
            "type": "started", "gpu": "A100"
        }))
        .unwrap();
        assert_eq!(event.kind, EventKind::Started);
    }
}
