//! Waiting for an asynchronous outcome by polling it, always with a deadline.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::bail;

/// How often [`eventually`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL_INTERVAL`] until it returns true (true) or `deadline` passes
/// (false). `check` runs at least once, and once more at the deadline.
pub async fn eventually<F, Fut>(deadline: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_every(deadline, POLL_INTERVAL, check).await
}

/// [`eventually`] with its own polling interval.
pub async fn eventually_every<F, Fut>(deadline: Duration, interval: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Polls `ready` every `interval` until it returns `Some`, or fails once `deadline` passes.
pub async fn until_some<T, F, Fut>(deadline: Duration, interval: Duration, mut ready: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = ready().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The blocking counterpart of [`eventually`], for code on threads of its own: polls `ready`
/// every 100 ms until it returns true, and fails with "`what` did not happen within …" once
/// `timeout` passes, or `cap` if that comes first. An error from `ready` ends the wait at once.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    cap: Option<Instant>,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut end = Instant::now() + timeout;
    if let Some(cap) = cap {
        end = end.min(cap);
    }
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("{what} did not happen within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The negative counterpart of [`eventually`]: checks every [`POLL_INTERVAL`] that `check`
/// still holds throughout `window`, and returns false as soon as it does not.
pub async fn holds_for<F, Fut>(window: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + window;
    loop {
        if !check().await {
            return false;
        }
        if tokio::time::Instant::now() >= end {
            return true;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
