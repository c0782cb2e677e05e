//! What happens to jobs: committing a submission, applying what workers report, retries,
//! cancellation, and the background sweep of leases and timeouts.

pub mod cancel;
pub mod events;
pub mod lifecycle;
pub mod retry;
pub mod submit;
pub mod sweep;
