//! Leases and heartbeats: how often a worker shows Baton that an attempt is still alive.
//!
//! Baton's lease (`BATON_LEASE`) is its setting, not the worker's, so every job message carries
//! the interval to heartbeat at ([`JobMessage::heartbeat_interval_ms`](crate::JobMessage)),
//! computed here from the lease.

use std::time::Duration;

/// The longest heartbeat interval Baton asks for, and the interval to use for a job message
/// without `heartbeat_interval_ms` (published by a Baton older than that field, whose default
/// lease of 60 s this interval was chosen for).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The heartbeat interval Baton announces for `lease`: a third of it, so that a lost heartbeat
/// or a few late ones do not lose the attempt, but never more than [`HEARTBEAT_INTERVAL`]
/// (a long lease is there to ride out pauses, not to thin out heartbeats, which also keep the
/// job's `heartbeat_at` fresh for clients), and never less than a millisecond.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(1), HEARTBEAT_INTERVAL)
}

/// Whole milliseconds, as durations travel in job messages.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_third_of_the_lease_capped_at_ten_seconds() {
        let interval = |lease_ms: u64| heartbeat_interval(Duration::from_millis(lease_ms));
        assert_eq!(
            interval(60_000),
            HEARTBEAT_INTERVAL,
            "the default lease keeps the old pace"
        );
        assert_eq!(interval(3_600_000), HEARTBEAT_INTERVAL);
        assert_eq!(interval(20_000), Duration::from_nanos(6_666_666_666));
        assert_eq!(millis(interval(20_000)), 6_666);
        assert_eq!(millis(interval(2_000)), 666);
        assert_eq!(interval(1), Duration::from_millis(1), "never zero");
    }
}
