//! The default quotas: `BATON_QUOTA_*`, unlimited when unset.

use clap::Args;

use super::Limits;
use crate::config::parse_bytes;

#[derive(Debug, Clone, Args)]
pub struct QuotaSettings {
    /// Default most bytes an owner may store (distinct content; e.g. `500GiB`) [default: unlimited].
    #[arg(long, env = "BATON_QUOTA_STORED_BYTES", value_parser = parse_bytes)]
    pub quota_stored_bytes: Option<u64>,

    /// Default most jobs an owner may have queued or running at once [default: unlimited].
    #[arg(long, env = "BATON_QUOTA_ACTIVE_JOBS")]
    pub quota_active_jobs: Option<u64>,

    /// Default most submissions per second per owner, in bursts of up to one second's worth
    /// [default: unlimited].
    #[arg(long, env = "BATON_QUOTA_SUBMIT_RATE", value_parser = parse_rate)]
    pub quota_submit_rate: Option<f64>,
}

impl QuotaSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            stored_bytes: self.quota_stored_bytes,
            active_jobs: self.quota_active_jobs,
            submit_rate: self.quota_submit_rate,
        }
    }
}

/// A rate: a positive number (fractions allowed: `0.5` is one every two seconds).
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e6 => Ok(rate),
        _ => Err(format!("`{raw}` is not a rate such as 10 or 0.5 (per second)")),
    }
}
