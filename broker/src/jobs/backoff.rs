//! Backoff between attempts of a job.

use std::time::Duration;

use crate::service::{Backoff, spread};

/// Exponential backoff with ±25% jitter: about 1 s after the first failure, doubling per
/// attempt, at most 5 minutes. Jitter spreads retries of jobs that failed together.
pub fn backoff(failed_attempt: u32) -> Duration {
    let exponential = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    spread(exponential.delay(failed_attempt), 0.25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
        let third = backoff(3);
        assert!(third >= Duration::from_secs(3) && third <= Duration::from_secs(5));
        assert!(backoff(60) <= Duration::from_secs(375));
    }
}
