//! The request body of an upload, metered as it arrives: a total size, a bound on the bytes
//! between parts, and a minimum rate. A client that breaks a rule gets a [`Cut`] instead of more
//! bytes, and the form reader turns that into its error.
//!
//! The rate rule: every window of `window`, the client must have sent `min_rate × window`
//! bytes. Time Baton itself spends between reads (writing a batch to disk) is not counted
//! against the client, so a slow disk never cuts a fast client.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep};

use super::close_delimiter::CloseDelimiter;

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum Cut {
    #[error("the body arrived slower than {min_rate} bytes/s over {window:?}")]
    TooSlow { min_rate: u64, window: Duration },
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("more than {0} bytes arrived before a part's content")]
    PartHeadersTooLarge(u64),
    #[error("the body ended before the form did, or could not be read: {0}")]
    Read(axum::Error),
}

/// The rules a body is held to.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub max_bytes: u64,
    pub max_overhead: u64,
    pub min_rate: u64,
    pub window: Duration,
}

/// What the form reader tells the meter: whether bytes now arriving are overhead (preamble,
/// boundaries, part headers) rather than a part's content.
#[derive(Debug, Default)]
pub struct Phase {
    overhead: AtomicBool,
    fed: AtomicU64,
    overhead_from: AtomicU64,
}

impl Phase {
    /// Bytes from here until [`Phase::content`] count against the overhead bound.
    pub fn overhead(&self) {
        self.overhead_from
            .store(self.fed.load(Ordering::Relaxed), Ordering::Relaxed);
        self.overhead.store(true, Ordering::Relaxed);
    }

    pub fn content(&self) {
        self.overhead.store(false, Ordering::Relaxed);
    }
}

/// Length of the tail kept to check how the body ends: a boundary (at most 70 bytes), its
/// dashes and a line break.
pub const TAIL_BYTES: usize = 80;

pub struct MeteredBody<S> {
    inner: S,
    rules: Rules,
    phase: Arc<Phase>,
    total: u64,
    window_bytes: u64,
    window_start: Instant,
    /// Time since `window_start` spent by Baton, not waiting on the client.
    excused: Duration,
    returned_at: Option<Instant>,
    deadline: Pin<Box<Sleep>>,
    tail: Vec<u8>,
    ended: bool,
    /// Set when overhead passed its bound: the total at that moment.
    stalled_at: Option<u64>,
    close: Option<CloseDelimiter>,
}

impl<S> MeteredBody<S> {
    pub fn new(inner: S, rules: Rules, phase: Arc<Phase>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            rules,
            phase,
            total: 0,
            window_bytes: 0,
            window_start: now,
            excused: Duration::ZERO,
            returned_at: None,
            deadline: Box::pin(tokio::time::sleep_until(now + rules.window)),
            tail: Vec::with_capacity(TAIL_BYTES * 2),
            ended: false,
            stalled_at: None,
            close: None,
        }
    }

    /// Also watches for the form's close delimiter, to tell what follows it.
    pub fn with_boundary(mut self, boundary: &str) -> Self {
        self.close = Some(CloseDelimiter::new(boundary));
        self
    }

    /// Bytes of the body after the first close delimiter (`None` if there was none).
    pub fn after_close(&self) -> Option<u64> {
        let end = self.close.as_ref()?.end()?;
        Some(self.total - end)
    }

    /// The unmetered body, to discard what is left of it.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The last bytes of the body (up to [`TAIL_BYTES`]).
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Whether the body has been read to its end.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes the client owed in `client_time` at the minimum rate.
    fn owed(&self, client_time: Duration) -> u64 {
        let millis = u64::try_from(client_time.as_millis()).unwrap_or(u64::MAX);
        self.rules.min_rate.saturating_mul(millis) / 1000
    }

    /// Judges the window that ended, if one did, and registers the waker for the next end.
    /// Only called while the client owes bytes (the body is pending).
    fn poll_window(&mut self, cx: &mut Context<'_>) -> Result<(), Cut> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let client_time = now.duration_since(self.window_start).saturating_sub(self.excused);
            if client_time < self.rules.window {
                // Part of the window was Baton's own time: give the client the rest.
                let rest = self.rules.window - client_time;
                self.deadline.as_mut().reset(now + rest);
                continue;
            }
            if self.window_bytes < self.owed(client_time) {
                return Err(Cut::TooSlow {
                    min_rate: self.rules.min_rate,
                    window: self.rules.window,
                });
            }
            self.window_start = now;
            self.window_bytes = 0;
            self.excused = Duration::ZERO;
            self.deadline.as_mut().reset(now + self.rules.window);
        }
        Ok(())
    }

    fn record(&mut self, chunk: &Bytes) -> Result<(), Cut> {
        let len = chunk.len() as u64;
        if let Some(close) = &mut self.close {
            close.scan(chunk, self.total);
        }
        self.total += len;
        self.window_bytes += len;
        self.phase.fed.store(self.total, Ordering::Relaxed);
        if self.total > self.rules.max_bytes {
            return Err(Cut::TooLarge(self.rules.max_bytes));
        }
        if chunk.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL_BYTES..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess);
        }
        Ok(())
    }
}

impl<S> Stream for MeteredBody<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, Cut>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(at) = this.returned_at.take() {
            this.excused += at.elapsed();
        }
        let phase = &this.phase;
        if phase.overhead.load(Ordering::Relaxed)
            && this.total - phase.overhead_from.load(Ordering::Relaxed) > this.rules.max_overhead
        {
            // The parser reads whatever is available, so the bytes may hold the next part's
            // content too. Let it parse what it has first; if it asks for more without having
            // found the end of the part headers, the bound is broken.
            if this.stalled_at == Some(this.total) {
                return Poll::Ready(Some(Err(Cut::PartHeadersTooLarge(this.rules.max_overhead))));
            }
            this.stalled_at = Some(this.total);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Bytes already here count before the client is judged.
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Err(cut) = this.record(&chunk) {
                    return Poll::Ready(Some(Err(cut)));
                }
                this.returned_at = Some(Instant::now());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Cut::Read(e)))),
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.poll_window(cx) {
                Ok(()) => Poll::Pending,
                Err(cut) => Poll::Ready(Some(Err(cut))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn rules() -> Rules {
        Rules {
            max_bytes: 1000,
            max_overhead: 100,
            min_rate: 10,
            window: Duration::from_secs(10),
        }
    }

    fn body(chunks: Vec<&'static [u8]>) -> impl Stream<Item = Result<Bytes, axum::Error>> + Unpin {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))))
    }

    #[tokio::test]
    async fn keeps_the_tail_across_chunks() {
        let mut metered = MeteredBody::new(body(vec![&[b'a'; 70], b"0123456789", b"xyz"]), rules(), Arc::default());
        while metered.next().await.is_some() {}
        assert!(metered.ended());
        assert_eq!(metered.tail().len(), TAIL_BYTES);
        assert!(metered.tail().ends_with(b"0123456789xyz"));
    }

    #[tokio::test]
    async fn finds_the_first_close_delimiter_even_across_chunks() {
        for split in 0..12 {
            let body = b"xx--b--\r\n--b--";
            let (a, b) = body.split_at(split.min(body.len()));
            let chunks: Vec<&'static [u8]> = vec![a.to_vec().leak(), b.to_vec().leak()];
            let mut metered = MeteredBody::new(self::body(chunks), rules(), Arc::default()).with_boundary("b");
            while metered.next().await.is_some() {}
            assert_eq!(metered.after_close(), Some(7), "split at {split}");
        }
        let mut none = MeteredBody::new(body(vec![b"--b-", b"x--"]), rules(), Arc::default()).with_boundary("b");
        while none.next().await.is_some() {}
        assert_eq!(none.after_close(), None);
    }

    #[tokio::test]
    async fn cuts_a_body_over_its_size() {
        let mut metered = MeteredBody::new(body(vec![&[0; 600], &[0; 600]]), rules(), Arc::default());
        assert!(metered.next().await.unwrap().is_ok());
        assert!(matches!(metered.next().await, Some(Err(Cut::TooLarge(1000)))));
    }

    #[tokio::test]
    async fn bounds_overhead_only_while_the_reader_says_so() {
        let phase = Arc::new(Phase::default());
        let mut metered = MeteredBody::new(body(vec![&[0; 150], &[0; 150], &[0; 10]]), rules(), Arc::clone(&phase));
        assert!(metered.next().await.unwrap().is_ok());
        phase.overhead();
        // One chunk may overshoot (it is already in memory). Then the reader gets one chance to
        // parse it (a pending poll); asking again without progress is refused.
        assert!(metered.next().await.unwrap().is_ok());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut metered).poll_next(&mut cx).is_pending());
        assert!(matches!(metered.next().await, Some(Err(Cut::PartHeadersTooLarge(100)))));
    }

    #[tokio::test]
    async fn content_after_overhead_flows_once_the_reader_moves_on() {
        let phase = Arc::new(Phase::default());
        let mut metered = MeteredBody::new(body(vec![&[0; 150], &[0; 150]]), rules(), Arc::clone(&phase));
        phase.overhead();
        assert!(metered.next().await.unwrap().is_ok());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut metered).poll_next(&mut cx).is_pending());
        phase.content();
        assert!(metered.next().await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_a_trickle_below_the_rate_at_the_end_of_a_window() {
        let trickle = futures::stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Some((Ok::<_, axum::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let mut metered = MeteredBody::new(Box::pin(trickle), rules(), Arc::default());
        let started = Instant::now();
        let mut received = 0;
        let cut = loop {
            match metered.next().await {
                Some(Ok(_)) => received += 1,
                Some(Err(cut)) => break cut,
                None => panic!("a trickle never ends"),
            }
        };
        assert!(matches!(cut, Cut::TooSlow { .. }), "{cut}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(received, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_at_the_rate_is_never_cut() {
        let steady = futures::stream::unfold(0, |n| async move {
            (n < 10).then_some(())?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, axum::Error>(Bytes::from_static(&[0; 10])), n + 1))
        });
        let mut metered = MeteredBody::new(Box::pin(steady), rules(), Arc::default());
        let mut received = 0;
        while let Some(chunk) = metered.next().await {
            received += chunk.expect("not cut").len();
        }
        assert_eq!(received, 100);
    }
}
