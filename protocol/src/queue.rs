//! Queue names and arguments shared by Baton and workers.
//!
//! Every queue is a durable quorum queue declared with exactly [`QUEUE_TYPE`]; a client that
//! declares a queue with different arguments is refused by RabbitMQ (`PRECONDITION_FAILED`).

/// The `x-queue-type` argument of every Baton queue.
pub const QUEUE_TYPE: &str = "quorum";

/// Default prefix of every queue name. Deployments sharing a RabbitMQ vhost pick distinct ones.
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

/// Whether `model` is a valid model name: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn is_valid_model(model: &str) -> bool {
    let bytes = model.as_bytes();
    (1..=64).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_follow_the_documented_pattern() {
        for good in [
            "example",
            "yolo-v8",
            "whisper_large.v3",
            "0",
            &"a".repeat(64),
        ] {
            assert!(is_valid_model(good), "{good:?}");
        }
        for bad in [
            "",
            "Example",
            "-x",
            ".x",
            "a b",
            "a/b",
            "ü",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_model(bad), "{bad:?}");
        }
    }
}
