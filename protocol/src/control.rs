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
        #[schemars(range(min = 1))]
        attempt: u32,
        /// Only this worker should stop (its id as sent in its events); absent means every
        /// worker running the attempt. Set when one copy of an attempt is refused while another
        /// worker legitimately runs it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        /// Why: `cancelled`, `run_timeout`, `queue_timeout`, `lease_expired`, `worker_lost`,
        /// `superseded` (another worker or attempt is current), or the job's final status
        /// (`succeeded`, `failed`, `cancelled`) when a worker reports on a finished job.
        reason: String,
    },
}
