//! What happens to jobs: committing a submission, and applying what workers report.

pub mod events;
pub mod retry;
pub mod submit;
