//! The one shape of Baton's background services (dispatcher, sweeper, reconciler, cleaner,
//! consumers, control publisher).
//!
//! Each has a documented `Config` with defaults and a `validate` that names the setting at
//! fault, a `run_once` that does one round and returns what it did in numbers (tests call it on
//! prepared rows instead of waiting on the wall clock), and a [`Service::run`] loop that repeats
//! rounds, each bounded by a timeout and inside a tracing span, with jittered pauses, until
//! cancelled. [`Services`] is the list `app` builds and spawns.

use std::{future::Future, ops::ControlFlow, time::Duration};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::future::BoxFuture;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

/// A long-running background task.
pub trait Service: Send + 'static {
    /// For logs: which service this is.
    fn name(&self) -> &'static str;

    /// Runs rounds until `cancel` fires. A round in progress finishes or stops at a point where
    /// what it did so far is consistent.
    fn run(self, cancel: CancellationToken) -> impl Future<Output = ()> + Send;
}

type Start = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// The services of one Baton, built (and their configs validated) before anything runs.
#[derive(Default)]
pub struct Services {
    list: Vec<(&'static str, Start)>,
}

impl Services {
    pub fn push(&mut self, service: impl Service) {
        let name = service.name();
        self.list
            .push((name, Box::new(move |cancel| Box::pin(service.run(cancel)))));
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|(name, _)| *name).collect()
    }

    /// Spawns every service on `tasks`, each stopped by a child of `cancel`.
    pub fn spawn(self, tasks: &TaskTracker, cancel: &CancellationToken) {
        for (name, start) in self.list {
            let run = start(cancel.child_token());
            tasks.spawn(
                async move {
                    tracing::debug!("started");
                    run.await;
                    tracing::debug!("stopped");
                }
                .instrument(tracing::info_span!("service", name)),
            );
        }
    }
}

/// A config value that cannot work, named by its setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct InvalidConfig {
    pub setting: &'static str,
    pub reason: String,
}

impl InvalidConfig {
    /// `Err` naming `setting` unless `value` is positive.
    pub fn positive(setting: &'static str, value: Duration) -> Result<(), Self> {
        if value.is_zero() {
            return Err(Self {
                setting,
                reason: "must be more than zero".to_owned(),
            });
        }
        Ok(())
    }

    /// `Err` naming `setting` unless `value` is at least one.
    pub fn at_least_one(setting: &'static str, value: u64) -> Result<(), Self> {
        if value == 0 {
            return Err(Self {
                setting,
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

/// `interval` give or take 20%, so replicas started together do not run their rounds in step.
pub fn jittered(interval: Duration) -> Duration {
    spread(interval, 0.2)
}

/// `duration` scaled by a random factor in `1 ± fraction`.
pub fn spread(duration: Duration, fraction: f64) -> Duration {
    duration.mul_f64(1.0 - fraction + fastrand::f64() * 2.0 * fraction)
}

/// Waits `duration` unless `cancel` fires first (`Break`).
pub async fn pause(cancel: &CancellationToken, duration: Duration) -> ControlFlow<()> {
    tokio::select! {
        () = cancel.cancelled() => ControlFlow::Break(()),
        () = tokio::time::sleep(duration) => ControlFlow::Continue(()),
    }
}

/// Delays between retries after consecutive failures: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    builder: ExponentialBuilder,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::new()
                .with_min_delay(first)
                .with_max_delay(max)
                .with_factor(2.0)
                .without_max_times(),
        }
    }

    /// The delay after the `failures`-th failure in a row (the first for 0 or 1).
    pub fn delay(&self, failures: u32) -> Duration {
        // The cap is reached long before 64 doublings.
        let skip = usize::try_from(failures.clamp(1, 64) - 1).unwrap_or_default();
        self.delays().nth(skip).unwrap_or_default()
    }

    /// The delays in order, for a loop that counts its own failures.
    pub fn delays(&self) -> ExponentialBackoff {
        self.builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_its_first_delay_up_to_its_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let near = |d: Duration, ms: u64| d.abs_diff(Duration::from_millis(ms)) < Duration::from_millis(2);
        assert!(near(backoff.delay(0), 100));
        assert!(near(backoff.delay(1), 100));
        assert!(near(backoff.delay(2), 200));
        assert!(near(backoff.delay(7), 5000), "{:?}", backoff.delay(7));
        assert!(near(backoff.delay(60), 5000));
    }

    struct Rounds(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Service for Rounds {
        fn name(&self) -> &'static str {
            "rounds"
        }

        async fn run(self, cancel: CancellationToken) {
            while pause(&cancel, Duration::from_millis(1)).await.is_continue() {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[tokio::test]
    async fn spawned_services_run_until_cancelled_and_the_tracker_waits_for_them() {
        let rounds = std::sync::Arc::default();
        let mut services = Services::default();
        services.push(Rounds(std::sync::Arc::clone(&rounds)));
        assert_eq!(services.names(), ["rounds"]);
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        services.spawn(&tasks, &cancel);
        while rounds.load(std::sync::atomic::Ordering::Relaxed) < 3 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .unwrap();
    }

    #[test]
    fn jitter_stays_within_a_fifth_of_the_interval() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12), "{d:?}");
        }
    }
}
