//! Step 1: finished jobs past their retention are deleted, with their files and timelines.

use std::time::Duration;

use super::{Cleaner, CleanupError, CleanupReport, Mode, Step};
use crate::{db, domain::JobStatus};

const TERMINAL: [JobStatus; 3] = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

impl Cleaner {
    pub(super) async fn expire_jobs(&self, mode: Mode, report: &mut CleanupReport) -> Result<(), CleanupError> {
        for status in TERMINAL {
            let Some(retention) = self.config.retention.of(status) else {
                continue;
            };
            match mode {
                Mode::DryRun => {
                    let (jobs, files) = db::jobs::count_expired(&self.db, status, retention).await?;
                    report.add_jobs(status, count(jobs));
                    report.files += count(files);
                }
                Mode::Apply => self.delete_expired(status, retention, report).await?,
            }
        }
        Ok(())
    }

    /// Batches of at most `batch` jobs, one short transaction each, so that no lock is held
    /// long. Jobs locked by someone else (a retry, a late worker event) are skipped this time.
    async fn delete_expired(
        &self,
        status: JobStatus,
        retention: Duration,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let batch = i64::from(self.config.batch);
        loop {
            self.checkpoint.check()?;
            let mut tx = self.db.begin().await?;
            let ids = db::jobs::lock_expired(&mut tx, status, retention, batch).await?;
            if ids.is_empty() {
                break;
            }
            let files = db::jobs::delete(&mut tx, &ids).await?;
            tx.commit().await?;
            tracing::debug!(
                status = status.as_str(),
                jobs = ids.len(),
                files,
                "deleted expired jobs"
            );
            report.add_jobs(status, ids.len() as u64);
            report.files += count(files);
            self.checkpoint.reached(Step::JobsDeleted).await?;
            if (ids.len() as i64) < batch {
                break;
            }
        }
        Ok(())
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}
