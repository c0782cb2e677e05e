//! The background service that keeps the issuer's keys current: a fetch every
//! `BATON_OIDC_REFRESH`, and after a failure retries that back off from a second to a minute
//! (never longer than the refresh interval), so a Baton that started while the issuer was down
//! gets its keys soon after it comes back.

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    cache::{Fetched, KeyCache},
    fetch::FetchError,
};
use crate::service::{Backoff, Service, jittered, pause};

#[derive(Debug, Clone, Copy)]
pub struct KeyRefresherConfig {
    /// Time between fetches while they succeed (`BATON_OIDC_REFRESH`).
    pub interval: Duration,
    /// First retry after a failure; the delay doubles up to `max_retry` (or `interval`).
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// Longest one round may take (it makes at most two requests, each bounded on its own).
    pub round_timeout: Duration,
}

impl KeyRefresherConfig {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(60),
            round_timeout: Duration::from_secs(30),
        }
    }
}

pub struct KeyRefresher {
    cache: Arc<KeyCache>,
    config: KeyRefresherConfig,
}

impl KeyRefresher {
    pub fn new(cache: Arc<KeyCache>, config: KeyRefresherConfig) -> Self {
        Self { cache, config }
    }

    /// One fetch of the discovery document and the keys.
    pub async fn run_once(&self) -> Result<Fetched, FetchError> {
        self.cache.refresh().await
    }

    fn backoff(&self) -> Backoff {
        let max = self.config.max_retry.min(self.config.interval);
        Backoff::new(self.config.first_retry.min(max), max)
    }
}

impl Service for KeyRefresher {
    fn name(&self) -> &'static str {
        "oidc-keys"
    }

    async fn run(self, cancel: CancellationToken) {
        let backoff = self.backoff();
        // A Baton that could not fetch the keys at start retries soon, not an interval later.
        let mut failures: u32 = if self.cache.has_keys() { 0 } else { 1 };
        loop {
            let wait = if failures == 0 {
                jittered(self.config.interval)
            } else {
                backoff.delay(failures)
            };
            if let ControlFlow::Break(()) = pause(&cancel, wait).await {
                return;
            }
            let round = tokio::time::timeout(self.config.round_timeout, self.run_once())
                .instrument(tracing::info_span!("oidc_key_refresh"));
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = round => outcome,
            };
            match outcome {
                Ok(Ok(fetched)) => {
                    if failures > 0 {
                        tracing::info!(keys = fetched.keys, "fetched the OIDC issuer's keys again");
                    }
                    failures = 0;
                }
                Ok(Err(error)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        %error,
                        failures,
                        "cannot refresh the OIDC issuer's keys; keeping the ones Baton has"
                    );
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        failures,
                        "refreshing the OIDC issuer's keys timed out; keeping the ones Baton has"
                    );
                }
            }
        }
    }
}
