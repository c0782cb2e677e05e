//! Worker runtime for Baton.
//!
//! [`Runtime`] consumes a model's queue with a prefetch limit, resolves each job's file
//! references to local files (a path under the worker's read-only mount of the shared volume,
//! or an object fetched into the local [`cache`]), checks them, runs a [`Handler`], publishes
//! the outcome with a publisher confirm, and only then acks the job message. A worker needs
//! AMQP access and the mount or the signed URLs of object-stored inputs; no database
//! credentials.

pub mod cache;
pub mod config;
mod events;
pub mod example;
mod handler;
mod inputs;
mod runtime;

pub use config::WorkerConfig;
pub use handler::{Handler, Input, Job, JobError};
pub use runtime::Runtime;
