//! The issuer's keys, held in memory: refreshed on a schedule (by [`super::KeyRefresher`]) and
//! when a token names a key id Baton does not know, at most once per `BATON_OIDC_MIN_REFETCH` so
//! that tokens with made-up ids cannot make Baton hammer the issuer. One fetch runs at a time:
//! requests that need one while it runs wait for it instead of starting their own. A failed
//! fetch keeps the keys Baton had.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use reqwest::Url;

use super::fetch::{FetchError, Fetcher, KeySet, SigningKey};
use crate::auth::AuthError;

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Usable keys now held.
    pub keys: usize,
    /// Whether the discovery document was read too (else the known JWKS URL was used).
    pub discovered: bool,
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch started, whatever its outcome.
    last_attempt: Option<Instant>,
    /// From the last discovery document read.
    jwks_uri: Option<Url>,
}

pub struct KeyCache {
    fetcher: Fetcher,
    min_refetch: Duration,
    /// `None` until a fetch first succeeds.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held for the whole of a fetch: at most one runs.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl KeyCache {
    pub fn new(fetcher: Fetcher, min_refetch: Duration) -> Self {
        Self {
            fetcher,
            min_refetch,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// Whether a fetch ever succeeded.
    pub fn has_keys(&self) -> bool {
        self.keys.read().expect("keys lock").is_some()
    }

    fn lookup(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.read().expect("keys lock").as_ref()?.get(kid).cloned()
    }

    /// The key `kid` names. An unknown one causes a fetch unless one started less than
    /// `min_refetch` ago; it is then looked up again.
    pub async fn key(&self, kid: &str) -> Result<Arc<SigningKey>, AuthError> {
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        {
            let mut state = self.fetch.lock().await;
            // A fetch that ran while this request waited may have brought the key.
            if let Some(key) = self.lookup(kid) {
                return Ok(key);
            }
            let due = state.last_attempt.is_none_or(|at| at.elapsed() >= self.min_refetch);
            if due {
                tracing::info!(kid, "a token names an unknown signing key; fetching the issuer's keys");
                if let Err(error) = self.fetch_locked(&mut state, false).await {
                    tracing::warn!(%error, "cannot fetch the OIDC issuer's keys; keeping the ones Baton has");
                }
            }
        }
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        if self.has_keys() {
            Err(AuthError::Invalid(
                "the token's signing key (`kid`) is not one of the issuer's keys".into(),
            ))
        } else {
            Err(AuthError::Unavailable(
                "Baton cannot fetch the OIDC issuer's signing keys right now; retry shortly".into(),
            ))
        }
    }

    /// A scheduled fetch: reads the discovery document again, then the JWKS it names.
    pub async fn refresh(&self) -> Result<Fetched, FetchError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state, true).await
    }

    async fn fetch_locked(&self, state: &mut FetchState, rediscover: bool) -> Result<Fetched, FetchError> {
        state.last_attempt = Some(Instant::now());
        let (jwks_uri, discovered) = match &state.jwks_uri {
            Some(uri) if !rediscover => (uri.clone(), false),
            _ => {
                let uri = self.fetcher.jwks_uri().await?;
                state.jwks_uri = Some(uri.clone());
                (uri, true)
            }
        };
        let keys = self.fetcher.keys(&jwks_uri).await?;
        let fetched = Fetched {
            keys: keys.len(),
            discovered,
        };
        *self.keys.write().expect("keys lock") = Some(Arc::new(keys));
        tracing::debug!(keys = fetched.keys, discovered, "fetched the OIDC issuer's keys");
        Ok(fetched)
    }
}
