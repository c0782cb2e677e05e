//! Queue names and arguments shared by Baton and workers.
//!
//! Job queues are durable quorum queues declared with exactly [`job_queue_arguments`]; a client
//! that declares a queue with different arguments is refused by RabbitMQ (`PRECONDITION_FAILED`).
//! They dead-letter any message that is returned to them (`x-delivery-limit` 0): a worker that
//! crashes, rejects, or nacks a job hands it back to Baton through the dead-letter queue, and
//! Baton decides whether and when to run it again, counting attempts. RabbitMQ never redelivers
//! a job by itself.

use serde_json::{Value, json};

/// The `x-queue-type` argument of every Baton queue.
pub const QUEUE_TYPE: &str = "quorum";

/// Default prefix of every queue and exchange name. Deployments sharing a RabbitMQ vhost pick
/// distinct ones.
pub const DEFAULT_PREFIX: &str = "baton.";

/// The queue holding jobs for `model`: `{prefix}jobs.{model}`.
pub fn job_queue(prefix: &str, model: &str) -> String {
    format!("{prefix}jobs.{model}")
}

/// The queue workers report [`WorkerEvent`](crate::WorkerEvent)s to: `{prefix}events`. Workers
/// should use the job message's `reply_to` property rather than computing this name.
pub fn events_queue(prefix: &str) -> String {
    format!("{prefix}events")
}

/// The fanout exchange job queues dead-letter to: `{prefix}dead-letter`.
pub fn dead_letter_exchange(prefix: &str) -> String {
    format!("{prefix}dead-letter")
}

/// The queue Baton consumes dead-lettered job messages from: `{prefix}dead`.
pub fn dead_letter_queue(prefix: &str) -> String {
    format!("{prefix}dead")
}

/// The fanout exchange carrying [`ControlMessage`](crate::ControlMessage)s to every worker:
/// `{prefix}control`.
pub fn control_exchange(prefix: &str) -> String {
    format!("{prefix}control")
}

/// The arguments of every job queue, as JSON: `x-queue-type` `quorum`, `x-delivery-limit` 0,
/// `x-dead-letter-exchange` [`dead_letter_exchange`], `x-dead-letter-strategy` `at-least-once`
/// and `x-overflow` `reject-publish` (which at-least-once dead-lettering requires). Integers are
/// AMQP long integers, strings are long strings.
pub fn job_queue_arguments(prefix: &str) -> Value {
    json!({
        "x-queue-type": QUEUE_TYPE,
        "x-delivery-limit": 0,
        "x-dead-letter-exchange": dead_letter_exchange(prefix),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    })
}

/// Whether `model` is a valid model name: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn is_valid_model(model: &str) -> bool {
    let bytes = model.as_bytes();
    (1..=64).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_follow_the_documented_pattern() {
        for good in ["example", "yolo-v8", "whisper_large.v3", "0", &"a".repeat(64)] {
            assert!(is_valid_model(good), "{good:?}");
        }
        for bad in ["", "Example", "-x", ".x", "a b", "a/b", "ü", &"a".repeat(65)] {
            assert!(!is_valid_model(bad), "{bad:?}");
        }
    }

    #[test]
    fn job_queues_dead_letter_everything_returned_to_them() {
        let arguments = job_queue_arguments("p.");
        assert_eq!(arguments["x-delivery-limit"], 0);
        assert_eq!(arguments["x-dead-letter-exchange"], "p.dead-letter");
        assert_eq!(arguments["x-queue-type"], "quorum");
    }
}
