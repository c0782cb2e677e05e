//! Whether a connection has a request in progress, and for how long it has had none.
//!
//! A request is in progress from the moment its headers are complete (the service is called)
//! until its response body has been handed to the socket; a download that streams for an hour
//! is not idle.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::{Body, Bytes, HttpBody};
use tokio::time::Instant;

pub struct Activity {
    opened: Instant,
    in_progress: AtomicUsize,
    /// Milliseconds after `opened` when the last request ended.
    idle_from_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_from_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request in progress until the guard drops.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        RequestGuard(Arc::clone(self))
    }

    /// How long the connection has had no request in progress (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let idle_from = self.opened + Duration::from_millis(self.idle_from_ms.load(Ordering::Acquire));
        Instant::now().saturating_duration_since(idle_from)
    }

    /// When the connection will have been idle for `timeout`, if nothing happens before.
    pub fn idle_deadline(&self, timeout: Duration) -> Instant {
        Instant::now() + timeout.saturating_sub(self.idle_for())
    }
}

pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let since_open = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_from_ms.store(since_open, Ordering::Release);
        activity.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in progress until it is done or dropped.
pub fn guard_body(body: Body, guard: RequestGuard) -> Body {
    Body::new(Guarded {
        inner: body,
        _guard: guard,
    })
}

struct Guarded {
    inner: Body,
    _guard: RequestGuard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_between_requests() {
        let activity = Activity::new();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(activity.idle_for(), Duration::from_secs(5));
        let guard = activity.begin();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(activity.idle_for(), Duration::ZERO);
        drop(guard);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(activity.idle_for(), Duration::from_secs(2));
        assert_eq!(
            activity.idle_deadline(Duration::from_secs(30)),
            Instant::now() + Duration::from_secs(28)
        );
    }
}
