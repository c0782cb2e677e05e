//! Per-owner quotas: stored bytes, jobs queued or running, and submissions per second. Each has
//! a configured default (none: unlimited) and per-owner overrides in Postgres.
//!
//! Exactness across replicas: the submission rate is a token bucket row that one atomic
//! statement takes from. Jobs and bytes are checked again inside the submit transaction, under a
//! transaction-scoped advisory lock per owner, against committed rows, so concurrent submits on
//! any number of replicas never overshoot. An owner with no limit set takes no lock.

mod settings;

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

pub use self::settings::{QuotaSettings, parse_rate};
use crate::{
    db::{self, quotas::QuotaRow},
    domain::Owner,
};

/// An owner's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub stored_bytes: Option<u64>,
    pub active_jobs: Option<u64>,
    /// Submissions per second (bursts of up to one second's worth, at least one).
    pub submit_rate: Option<f64>,
}

impl Limits {
    /// Whether submits must take the owner's lock and count.
    pub fn counts(&self) -> bool {
        self.stored_bytes.is_some() || self.active_jobs.is_some()
    }

    /// `overrides` over `self`, column by column.
    pub fn with_overrides(self, overrides: Option<&QuotaRow>) -> Self {
        let Some(row) = overrides else { return self };
        Self {
            stored_bytes: row.stored_bytes.map(|v| v.max(0) as u64).or(self.stored_bytes),
            active_jobs: row.active_jobs.map(|v| v.max(0) as u64).or(self.active_jobs),
            submit_rate: row.submit_rate.or(self.submit_rate),
        }
    }
}

/// A quota a request would break.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Exceeded {
    #[error("the owner stores {used} bytes; its quota is {limit} bytes")]
    StoredBytes { used: u64, limit: u64 },
    #[error("the owner has {limit} jobs queued or running, its quota")]
    ActiveJobs { limit: u64 },
    #[error("the owner may submit {rate} jobs per second")]
    SubmitRate { rate: f64, retry_after: Duration },
}

impl Exceeded {
    pub fn quota(&self) -> &'static str {
        match self {
            Exceeded::StoredBytes { .. } => "stored_bytes",
            Exceeded::ActiveJobs { .. } => "active_jobs",
            Exceeded::SubmitRate { .. } => "submit_rate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Exceeded(#[from] Exceeded),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The defaults, and the queries that apply them.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    defaults: Limits,
}

impl Quotas {
    pub fn new(defaults: Limits) -> Self {
        Self { defaults }
    }

    pub fn defaults(&self) -> Limits {
        self.defaults
    }

    /// The owner's limits: its overrides over the defaults.
    pub async fn limits(&self, db: &PgPool, owner: &Owner) -> sqlx::Result<Limits> {
        let overrides = db::quotas::get(db, owner).await?;
        Ok(self.defaults.with_overrides(overrides.as_ref()))
    }

    /// Before an upload is read: takes one submission from the owner's rate, and refuses an
    /// owner already at its jobs quota or over its bytes quota. The exact check is [`hold`], at
    /// commit: an upload that would cross the bytes quota is read, then refused and removed.
    pub async fn admit(&self, db: &PgPool, owner: &Owner, limits: &Limits) -> Result<(), QuotaError> {
        if let Some(limit) = limits.active_jobs
            && db::quotas::active_jobs(db, owner).await? >= limit
        {
            return Err(Exceeded::ActiveJobs { limit }.into());
        }
        if let Some(limit) = limits.stored_bytes {
            let used = db::quotas::stored_bytes(db, owner).await?;
            // Already over (the quota was lowered): refuse before reading anything.
            if used > limit {
                return Err(Exceeded::StoredBytes { used, limit }.into());
            }
        }
        if let Some(rate) = limits.submit_rate
            && let Some(wait) = db::quotas::take_submission(db, owner, rate).await?
        {
            return Err(Exceeded::SubmitRate {
                rate,
                retry_after: wait,
            }
            .into());
        }
        Ok(())
    }
}

/// Inside the submit transaction, first: serialises this owner's counting commits on every
/// replica (released at commit or rollback). Does nothing for an owner without limits.
pub async fn lock(conn: &mut PgConnection, owner: &Owner, limits: &Limits) -> sqlx::Result<()> {
    if limits.counts() {
        db::quotas::lock_owner(conn, owner).await?;
    }
    Ok(())
}

/// Inside the submit transaction, after the job and its blob rows are written: whether the
/// owner's jobs and bytes, this job's included, still fit.
pub async fn hold(conn: &mut PgConnection, owner: &Owner, limits: &Limits) -> Result<(), QuotaError> {
    if let Some(limit) = limits.active_jobs
        && db::quotas::active_jobs(&mut *conn, owner).await? > limit
    {
        return Err(Exceeded::ActiveJobs { limit }.into());
    }
    if let Some(limit) = limits.stored_bytes {
        let used = db::quotas::stored_bytes(&mut *conn, owner).await?;
        if used > limit {
            return Err(Exceeded::StoredBytes { used, limit }.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_column_by_column() {
        let defaults = Limits {
            stored_bytes: Some(100),
            active_jobs: None,
            submit_rate: Some(5.0),
        };
        let row = QuotaRow {
            owner: "team".into(),
            stored_bytes: None,
            active_jobs: Some(3),
            submit_rate: Some(0.5),
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let limits = defaults.with_overrides(Some(&row));
        assert_eq!(limits.stored_bytes, Some(100));
        assert_eq!(limits.active_jobs, Some(3));
        assert_eq!(limits.submit_rate, Some(0.5));
        assert!(limits.counts());
        assert_eq!(defaults.with_overrides(None), defaults);
        assert!(!Limits::default().counts(), "no limit, no lock");
    }

    #[test]
    fn rates_are_positive_finite_numbers() {
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert_eq!(parse_rate("20"), Ok(20.0));
        for bad in ["0", "-1", "NaN", "inf", "fast", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
