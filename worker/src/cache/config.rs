//! How the cache of object-stored inputs is set up: where, how big, how objects are read, and how
//! hard a fetch tries.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

/// The cache's settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `BATON_CACHE_DIR`: where fetched inputs are kept, one file per SHA-256 (default
    /// `baton-cache` under the system's temporary directory). One worker process per directory.
    pub dir: PathBuf,
    /// `BATON_CACHE_MAX_BYTES`: the most bytes the cached files (and fetches under way) may take
    /// (default 10 GiB). Accepts a number of bytes or one with a unit: `500MiB`, `10GiB`.
    pub max_bytes: u64,
    /// `BATON_OBJECT_ACCESS`: how object-stored inputs are read.
    pub access: ObjectAccess,
    /// How often, and how patiently, a fetch is tried.
    pub retry: RetryPolicy,
}

/// How a worker reads object-stored inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAccess {
    /// `signed-url` (the default): a plain `GET` of the URL in the job message; the worker needs
    /// no credentials. A URL about to expire before `started` is given back for a fresh one.
    SignedUrl,
    /// `credentials`: the object is read by its `store` and `key` with the worker's own
    /// credentials, taken from the standard variables (`AWS_*`, `AZURE_*`, workload identity).
    Credentials,
}

/// Tries of one fetch: connection failures, timeouts, cut transfers and 5xx answers are tried
/// again after a pause that starts at `first_delay` and doubles.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub tries: u32,
    /// The pause after the first failed try.
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five tries over about 7.5 s of pauses (0.5, 1, 2 and 4 s).
    fn default() -> Self {
        Self {
            tries: 5,
            first_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The pauses between tries, with ±20% jitter so that workers that lost the same store do
    /// not come back at once.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let first = self.first_delay;
        (0..self.tries.saturating_sub(1)).map(move |n| {
            let base = first.saturating_mul(1 << n.min(16));
            base.mul_f64(0.8 + 0.4 * fastrand::f64())
        })
    }
}

/// The default cache bound: 10 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;

impl CacheConfig {
    /// Reads `BATON_CACHE_DIR`, `BATON_CACHE_MAX_BYTES` and `BATON_OBJECT_ACCESS`.
    pub fn from_env() -> anyhow::Result<Self> {
        let dir = std::env::var_os("BATON_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("baton-cache"));
        let max_bytes = match std::env::var("BATON_CACHE_MAX_BYTES") {
            Ok(raw) => parse_bytes(&raw).with_context(|| {
                format!("invalid BATON_CACHE_MAX_BYTES `{raw}`: expected a positive size such as 10737418240 or 10GiB")
            })?,
            Err(_) => DEFAULT_MAX_BYTES,
        };
        let access = match std::env::var("BATON_OBJECT_ACCESS").as_deref() {
            Err(_) | Ok("signed-url") => ObjectAccess::SignedUrl,
            Ok("credentials") => ObjectAccess::Credentials,
            Ok(other) => bail!("invalid BATON_OBJECT_ACCESS `{other}`: expected signed-url or credentials"),
        };
        Ok(Self {
            dir,
            max_bytes,
            access,
            retry: RetryPolicy::default(),
        })
    }
}

/// A positive byte count: digits, optionally followed by `KiB`, `MiB`, `GiB` or `TiB`.
pub fn parse_bytes(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(digits);
    let shift = match unit.trim() {
        "" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("500MiB"), Some(500 << 20));
        assert_eq!(parse_bytes("10 GiB"), Some(10 << 30));
        for bad in ["", "0", "GiB", "10GB", "-1", "1.5GiB", "99999999999TiB"] {
            assert_eq!(parse_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_default_retries_pause_about_7_5_seconds_in_all() {
        let delays: Vec<Duration> = RetryPolicy::default().delays().collect();
        assert_eq!(delays.len(), 4);
        let total: Duration = delays.iter().sum();
        assert!(
            total >= Duration::from_secs(6) && total <= Duration::from_secs(9),
            "{total:?}"
        );
    }
}
