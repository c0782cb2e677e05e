//! The contract between Baton and inference workers.
//!
//! Baton publishes a [`JobMessage`] to a durable quorum queue per model (see [`queue`]). The
//! message carries *references* to input files, never their bytes: a path on a shared volume,
//! which a worker mounts read-only, or (since version 2) an object in object storage, with a
//! signed URL to fetch it. The worker reads the files, runs its model, and reports progress and
//! the outcome as [`WorkerEvent`]s, published to the queue named in the job message's AMQP
//! `reply_to` property.
//!
//! Everything here is plain JSON; `protocol/schema/` holds the JSON Schemas generated from these
//! types and `protocol/README.md` explains the protocol for workers written in any language.

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod control;
pub mod event;
pub mod job;
pub mod lease;
pub mod permissions;
pub mod queue;

pub use control::ControlMessage;
pub use event::{EventKind, FailureInfo, WorkerEvent};
pub use job::{FileRef, JobMessage, Location, LocationError, ObjectRef, is_safe_path};
pub use lease::HEARTBEAT_INTERVAL;

/// Version of the message formats described here. Bumped on incompatible changes only; new
/// optional fields do not change it, so consumers must ignore fields they do not know.
///
/// Version 2 made [`FileRef::path`] optional and added [`FileRef::object`]. Baton still sends
/// version 1 for a message whose files are all on the volume ([`JobMessage::required_version`]),
/// so workers of version 1 keep working where no object storage is used.
pub const PROTOCOL_VERSION: u32 = 2;
