//! Messages Baton sends to all workers on the control exchange.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A message on the control exchange ([`control_exchange`](crate::queue::control_exchange)), a
/// fanout exchange every worker process binds a private, exclusive queue to. Control messages
/// are hints: a worker that misses one (it was disconnected) only wastes work, because Baton
/// ignores events of attempts it has cancelled or given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Stop running this attempt: the job was cancelled, timed out, or the attempt lost its
    /// lease. A worker running it should abandon the work and ack the job message; no outcome
    /// event is needed.
    Cancel {
        /// The job.
        job_id: Uuid,
        /// The attempt to stop.
        attempt: u32,
        /// Why: `cancelled`, `run_timeout`, `lease_expired` or `superseded`.
        reason: String,
    },
}
