//! The run's parts, in the order they run: `baton-bench all --only <part>` picks some.

pub mod celery;
pub mod e2e;
pub mod large;
pub mod medium;
pub mod slow;
pub mod small;
pub mod small_auth;
pub mod stores;
